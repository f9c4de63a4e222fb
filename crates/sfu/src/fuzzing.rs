//! Entry points for fuzzing: each takes arbitrary bytes and runs them through a
//! path a remote peer can reach, the way the SFU does. None may panic, whatever
//! the input. The cargo-fuzz targets in `fuzz/` are one call each, and
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same
//! functions, so CI checks them without libFuzzer.

use crate::dtls_order::DtlsOrder;
use crate::forward::{
    BandwidthEstimator, DownlinkLoss, KeyframeDetector, RepairWatch, TrackForwarder, VideoCodec,
};
use crate::sdp::{self, OfferedCodec, PublisherChoice};
use bytes::BytesMut;
use rtc::shared::marshal::Unmarshal;
use std::time::{Duration, Instant};

/// An SDP offer from a WHIP or WHEP client: the SFU's own checks and codec
/// choice, then, for what passes them, rtc's parser and offer handling as
/// `Sfu::publish` runs them (a publisher peer connection, no sockets).
pub fn sdp_offer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(summary) = sdp::inspect_offer(text) else {
        return;
    };
    for publisher in [vp8_publisher(), h264_publisher()] {
        let _ = sdp::choose_viewer(&summary, &publisher);
    }
    let Ok(choice) = sdp::choose_publisher(&summary) else {
        return;
    };
    if let Ok(mut pc) = crate::build_publisher_pc(&choice, "fuzzfuzzfuzzfuzz") {
        let _ = crate::negotiate(&mut pc, text, &[], |_| Ok(()));
    }
}

/// A trickle-ICE fragment (WHIP/WHEP `PATCH` body).
pub fn trickle(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sdp::parse_sdpfrag(text);
    }
}

/// One datagram as the shared UDP port and the room see it before any peer
/// connection: the STUN username that routes it, and the DTLS record walk that
/// orders a handshake.
pub fn demux(data: &[u8]) {
    let _ = crate::net::stun_local_ufrag(data);
    let mut order = DtlsOrder::default();
    // Twice: the second pass meets the state the first one left.
    for _ in 0..2 {
        order.push(BytesMut::from(data), |_| {});
    }
}

/// A decrypted RTP packet from a publisher, through everything the room does with
/// one: keyframe detection for both codecs, the uplink repair watch, and a
/// viewer leg's forwarding decision and rewrite.
pub fn rtp(data: &[u8]) {
    let mut buf = data;
    let Ok(pkt) = rtc::rtp::Packet::unmarshal(&mut buf) else {
        return;
    };
    let t0 = Instant::now();
    let (seq, ts) = (pkt.header.sequence_number, pkt.header.timestamp);
    let mut fwd = TrackForwarder::new(90_000, true, 1, 1);
    fwd.set_target(Some(pkt.header.ssrc));
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let _ = KeyframeDetector::new(codec).on_packet(&pkt.payload, ts);
    }
    let _ = fwd.forward(pkt.header.ssrc, seq, ts, true, t0);
    let _ = fwd.forward_padding(pkt.header.ssrc, seq.wrapping_add(1), ts);
    let _ = fwd.forward(pkt.header.ssrc, seq.wrapping_sub(3), ts, false, t0);
    let _ = fwd.lookup(seq);
    let _ = fwd.sent_between(seq.wrapping_sub(100), seq);
    let mut watch = RepairWatch::new();
    watch.on_packet(seq.wrapping_sub(2), t0);
    watch.on_packet(seq, t0);
    watch.on_keyframe(seq);
    let _ = watch.poll(t0 + Duration::from_secs(2));
}

/// A decrypted RTCP compound packet from a viewer, through what the room does
/// with it: NACKed sequence numbers mapped back through the leg's history,
/// receiver reports into the downlink loss and the estimate, REMB into the
/// estimate.
pub fn rtcp(data: &[u8]) {
    use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    let mut buf = data;
    let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut buf) else {
        return;
    };
    let t0 = Instant::now();
    let mut fwd = TrackForwarder::new(90_000, true, 0, 0);
    fwd.set_target(Some(7));
    for seq in 0..64u16 {
        let _ = fwd.forward(7, seq, 0, true, t0);
    }
    let mut est = BandwidthEstimator::new(1_000_000, 50_000, 50_000_000);
    let mut loss = DownlinkLoss::new();
    for p in &packets {
        let any = p.as_any();
        if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            // Bounded like the room's loop: a NACK names at most 17 packets a pair.
            for seq in nack.nacks.iter().take(1_000).flat_map(|n| n.packet_list()) {
                let _ = fwd.lookup(seq);
            }
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            est.on_remb(remb.bitrate.max(0.0) as u64, t0);
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            for rep in &rr.reports {
                if let Some(own) =
                    loss.on_report(rep.last_sequence_number, rep.total_lost, |a, b| {
                        fwd.sent_between(a, b)
                    })
                {
                    est.on_fraction_lost(own, t0);
                }
            }
        }
    }
    let _ = est.for_selection(500_000, 40_000, t0);
}

fn codec(mime: &str, pt: u8, clock_rate: u32, fmtp: &str) -> OfferedCodec {
    OfferedCodec {
        pt,
        mime: mime.to_owned(),
        clock_rate,
        channels: 0,
        fmtp: fmtp.to_owned(),
        feedback: Vec::new(),
    }
}

fn vp8_publisher() -> PublisherChoice {
    PublisherChoice {
        video: Some(codec("video/VP8", 96, 90_000, "")),
        audio: Some(codec("audio/opus", 111, 48_000, "")),
        rids: Vec::new(),
    }
}

fn h264_publisher() -> PublisherChoice {
    PublisherChoice {
        video: Some(codec(
            "video/H264",
            102,
            90_000,
            "packetization-mode=1;profile-level-id=42e01f",
        )),
        audio: None,
        rids: vec!["q".into(), "h".into(), "f".into()],
    }
}
