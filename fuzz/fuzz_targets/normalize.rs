#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| domain::fuzzing::normalize(data));
