//! The generator's own user-space work per unit of load, to show it costs
//! far less than what it measures (the kernel's receive path comes on top and
//! is reported by every run as "generator CPU per packet/delivery").
//!
//! * `viewer/packet`: what a light viewer does with one SRTP datagram:
//!   classify it, read the clear RTP header, account it (sequence, loss,
//!   frames, bytes).
//! * `chat/frame`: what a chat receiver does with one `chat` frame: read its
//!   type and the send time inside the text through the borrowed `ws::Frame`.
//!
//! Run: `cargo bench -p loadgen --bench generator`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loadgen::media::rtp::{Datagram, StreamAccount, classify, parse_rtp};
use loadgen::ws;
use std::hint::black_box;
use std::time::Instant;

fn viewer(c: &mut Criterion) {
    let mut g = c.benchmark_group("viewer");
    g.throughput(Throughput::Elements(1));
    let mut datagram = vec![0xabu8; 12 + 1100 + 16];
    datagram[0] = 0x80;
    datagram[1] = 96;
    let mut account = StreamAccount::default();
    let now = Instant::now();
    let mut seq: u16 = 0;
    let mut ts: u32 = 0;
    g.bench_function("packet", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            if seq.is_multiple_of(6) {
                ts = ts.wrapping_add(3000);
            }
            datagram[2..4].copy_from_slice(&seq.to_be_bytes());
            datagram[4..8].copy_from_slice(&ts.to_be_bytes());
            let d = black_box(&datagram[..]);
            if classify(d) == Datagram::Rtp
                && let Some(h) = parse_rtp(d)
            {
                black_box(account.on_packet(&h, d.len(), now));
            }
        })
    });
    g.finish();
}

fn chat(c: &mut Criterion) {
    let mut g = c.benchmark_group("chat");
    g.throughput(Throughput::Elements(1));
    let frame = format!(
        r#"{{"seq":1780300800000131,"type":"chat","id":"msg_6t2k9m4p8x3q7r5v","author":{{"subject":"gst_8d3k5m2p9x4q7r6t","name":"chat17","role":"viewer"}},"text":"{}","at":"2026-06-01T08:01:02.345Z"}}"#,
        ws::chat_text(123_456_789, 17, 42)
    );
    g.bench_function("frame", |b| {
        b.iter(|| {
            let f = ws::Frame::parse(black_box(frame.as_str())).unwrap();
            black_box((f.kind().map(str::len), f.chat_send_time()))
        })
    });
    g.finish();
}

criterion_group!(benches, viewer, chat);
criterion_main!(benches);
