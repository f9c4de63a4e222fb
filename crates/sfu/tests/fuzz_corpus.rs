//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! `sfu::fuzzing` functions the cargo-fuzz targets call, so CI checks every input
//! found so far without libFuzzer. A panic fails the test and names the file.

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    domain::fuzzing::replay_corpus(&dir, run);
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
