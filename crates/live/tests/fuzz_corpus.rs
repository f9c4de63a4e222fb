//! Replays `fuzz/corpus/client_frame/` through the function the cargo-fuzz
//! target calls.

#[test]
fn client_frame_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/client_frame");
    domain::fuzzing::replay_corpus(&dir, live::fuzzing::client_frame);
}
