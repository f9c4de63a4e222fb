//! Replays `fuzz/corpus/normalize/` through the function the cargo-fuzz
//! target calls.

#[test]
fn normalize_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/normalize");
    domain::fuzzing::replay_corpus(&dir, domain::fuzzing::normalize);
}
