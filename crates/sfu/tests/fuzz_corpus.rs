//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! `sfu::fuzzing` functions the cargo-fuzz targets call, so CI checks every input
//! found so far without libFuzzer. A panic fails the test and names the file.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no corpus", dir.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} panics", file.display());
    }
}

#[test]
fn sdp_offer_corpus() {
    replay("sdp_offer", sfu::fuzzing::sdp_offer);
}

#[test]
fn trickle_corpus() {
    replay("trickle", sfu::fuzzing::trickle);
}

#[test]
fn demux_corpus() {
    replay("demux", sfu::fuzzing::demux);
}

#[test]
fn rtp_corpus() {
    replay("rtp", sfu::fuzzing::rtp);
}

#[test]
fn rtcp_corpus() {
    replay("rtcp", sfu::fuzzing::rtcp);
}
