//! Per-packet forwarding cost.
//!
//! * `forward/*` — the sans-I/O decision and header rewrite of one packet for one
//!   viewer leg (`TrackForwarder::forward` + the rewritten header).
//! * `send_path/*` — the whole per-viewer send path as the room runs it: decision,
//!   rewrite, rtc's RTP write path with SRTP encryption for that viewer, marshal, and
//!   the datagram handed to a sink that copies it into a buffer (where the room
//!   would `send_to`). One packet to one viewer, and one packet fanned out to 100.
//!   `send_path/1_viewer_udp` adds a real non-blocking `send_to` on loopback.
//!
//! Run: `cargo bench -p sfu --features testkit --bench forwarding`.
//! Instruction counts: build with `cargo bench --no-run`, then
//! `valgrind --tool=callgrind <bench binary> --bench --profile-time 2 send_path/1_viewer`.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtc::rtp as sfu_rtp;
use sfu::TrackForwarder;
use sfu::testkit::LoopbackViewer;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SRC: u32 = 0x5eed_0001;
/// A 1.5 Mbit/s stream at 30 fps is ~6 KB/frame: 5–6 packets of ~1100 bytes.
const PAYLOAD: usize = 1100;

fn packet(seq: u16, ts: u32, keyframe: bool) -> sfu_rtp::Packet {
    let mut payload = vec![0xab; PAYLOAD];
    payload[0] = 0x10;
    payload[1] = if keyframe { 0x00 } else { 0x01 };
    sfu_rtp::Packet {
        header: sfu_rtp::header::Header {
            version: 2,
            payload_type: 100,
            sequence_number: seq,
            timestamp: ts,
            ssrc: SRC,
            marker: false,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

/// A stream of publisher packets: seq +1 each, 6 packets per 3000-tick frame.
struct Stream {
    pkt: sfu_rtp::Packet,
    n: u32,
    base_ts: u32,
}

impl Stream {
    fn new() -> Self {
        Self {
            pkt: packet(1000, 5000, true),
            n: 0,
            base_ts: 5000,
        }
    }
    #[inline]
    fn next(&mut self) -> &sfu_rtp::Packet {
        self.n += 1;
        let h = &mut self.pkt.header;
        h.sequence_number = h.sequence_number.wrapping_add(1);
        h.timestamp = self.base_ts.wrapping_add(3000 * (self.n / 6));
        &self.pkt
    }
}

fn forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1));
    let now = Instant::now();

    let mut f = TrackForwarder::new(90_000, true, 1, 2);
    f.set_target(Some(SRC));
    let mut s = Stream::new();
    let _ = f.forward(SRC, 999, 5000, true, now);
    g.bench_function("decision", |b| {
        b.iter(|| {
            let p = s.next();
            black_box(f.forward(
                SRC,
                p.header.sequence_number,
                p.header.timestamp,
                false,
                now,
            ))
        })
    });

    let mut f = TrackForwarder::new(90_000, true, 1, 2);
    f.set_target(Some(SRC));
    let _ = f.forward(SRC, 999, 5000, true, now);
    let mut s = Stream::new();
    g.bench_function("decision_and_rewrite", |b| {
        b.iter(|| {
            let p = s.next();
            let rw = f
                .forward(
                    SRC,
                    p.header.sequence_number,
                    p.header.timestamp,
                    false,
                    now,
                )
                .unwrap();
            let mut out = p.clone();
            out.header.ssrc = 0x1234;
            out.header.payload_type = 96;
            out.header.sequence_number = rw.seq;
            out.header.timestamp = rw.ts;
            black_box(out)
        })
    });
    g.finish();
}

fn viewers(n: u16) -> Vec<LoopbackViewer> {
    (0..n)
        .map(|i| {
            let mut v = LoopbackViewer::connect(i).expect("loopback viewer connects");
            v.follow(SRC);
            v
        })
        .collect()
}

fn send_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_path");
    g.measurement_time(Duration::from_secs(4));
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut sink = |d: &[u8]| {
        buf.clear();
        buf.extend_from_slice(d);
        black_box(&buf);
    };

    // One packet to one viewer.
    let mut one = viewers(1);
    let now = one[0].now;
    let mut s = Stream::new();
    one[0].send_video(&packet(999, 5000, true), SRC, true, now, &mut sink);
    g.throughput(Throughput::Elements(1));
    g.bench_function("1_viewer", |b| {
        b.iter(|| {
            let p = s.next();
            assert!(one[0].send_video(p, SRC, false, now, &mut sink));
        })
    });

    // A frame's six packets found queued together: one drain for the burst.
    g.throughput(Throughput::Elements(6));
    g.bench_function("1_viewer_burst6", |b| {
        b.iter(|| {
            let burst: [(sfu_rtp::Packet, bool); 6] =
                std::array::from_fn(|_| (s.next().clone(), false));
            assert_eq!(one[0].send_video_burst(&burst, SRC, now, &mut sink), 6);
        })
    });
    g.throughput(Throughput::Elements(1));

    // The same with a real non-blocking send_to on loopback (the kernel's share).
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.set_nonblocking(true).unwrap();
    let to = rx.local_addr().unwrap();
    let mut udp_sink = |d: &[u8]| {
        let _ = tx.send_to(d, to);
    };
    g.bench_function("1_viewer_udp", |b| {
        b.iter(|| {
            let p = s.next();
            assert!(one[0].send_video(p, SRC, false, now, &mut udp_sink));
        })
    });
    drop(rx);

    // One packet fanned out to 100 viewers (per-element time = per viewer).
    let mut many = viewers(100);
    let now = many[0].now;
    let kf = packet(999, 5000, true);
    for v in &mut many {
        v.send_video(&kf, SRC, true, now, &mut sink);
    }
    g.throughput(Throughput::Elements(100));
    g.bench_function("fanout_100", |b| {
        b.iter(|| {
            let p = s.next();
            for v in &mut many {
                v.send_video(p, SRC, false, now, &mut sink);
            }
        })
    });

    // A frame's six packets found queued together, fanned out to 100 viewers: per
    // viewer the whole burst, then one drain (what the room does under load), against
    // the packet-by-packet order (every packet walks all 100 viewers' state).
    g.throughput(Throughput::Elements(600));
    g.bench_function("fanout_100_burst6", |b| {
        b.iter(|| {
            let burst: [(sfu_rtp::Packet, bool); 6] =
                std::array::from_fn(|_| (s.next().clone(), false));
            for v in &mut many {
                v.send_video_burst(&burst, SRC, now, &mut sink);
            }
        })
    });
    g.bench_function("fanout_100_burst6_packet_by_packet", |b| {
        b.iter(|| {
            let burst: [(sfu_rtp::Packet, bool); 6] =
                std::array::from_fn(|_| (s.next().clone(), false));
            for (p, _) in &burst {
                for v in &mut many {
                    v.send_video(p, SRC, false, now, &mut sink);
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, forward, send_path);
criterion_main!(benches);
