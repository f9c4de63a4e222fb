#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| live::fuzzing::client_frame(data));
