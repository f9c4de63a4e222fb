//! Per-viewer, per-kind RTP header rewriting.

use std::time::Instant;

/// Identifies one incoming publisher stream (its SSRC). Publisher SSRCs are random
/// 32-bit values; a reconnecting publisher gets new ones.
pub type SourceId = u32;

/// The header fields a forwarded packet gets on a viewer leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Viewer-leg sequence number.
    pub seq: u16,
    /// Viewer-leg RTP timestamp.
    pub ts: u32,
}

/// Why a packet was not forwarded (for counters and for the caller to react, e.g.
/// ask for a keyframe when [`Drop::WaitingForKeyframe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// The packet belongs to a source this viewer does not (want to) follow.
    NotSelected,
    /// A switch to this source is wanted but it may only happen at a keyframe.
    WaitingForKeyframe,
    /// Older than the point where the viewer switched onto this source, or so late
    /// that where it belongs in the viewer's sequence is no longer known.
    BeforeSwitch,
    /// A padding-only packet, left out: the viewer's sequence closes over it.
    Padding,
}

const HISTORY: usize = 2048;

/// Padding packets remembered for placing late packets (see [`TrackForwarder`]).
/// Chromium pads a simulcast top layer with up to ~200 packets/s, so this covers
/// packets arriving up to ~2.5 s late, beyond any useful retransmission.
const SKIPS: usize = 512;

#[derive(Clone, Copy, Default)]
struct Mapping {
    out_seq: u16,
    valid: bool,
    source: SourceId,
    src_seq: u16,
    ts_offset: u32,
}

/// Rewrites SSRC-independent header fields (sequence number, timestamp) of one
/// viewer's audio or video track so that the viewer sees one continuous stream,
/// whatever happens upstream: a simulcast layer switch, a publisher reconnect (new
/// SSRCs, new random sequence/timestamp bases), or a pause (audio-only fallback).
///
/// The SSRC and payload type are constant per viewer leg and set by the caller.
///
/// Rules:
/// * The viewer follows one *current* source. [`set_target`](Self::set_target)
///   names the source it should follow next. For video the switch happens only on
///   a keyframe of the target (so the decoder never sees a P-frame without its
///   reference); audio switches on the next packet.
/// * On a switch, the next output sequence number is `last + 1` and the output
///   timestamp advances by the wall-clock time since the last forwarded packet, so
///   the player sees neither a gap (which it would NACK) nor a jump in time.
/// * Out-of-order and retransmitted packets of the current source keep their
///   relative position; packets from before the switch point are dropped.
/// * Every forwarded packet records `(out_seq -> source, src_seq)` in a small ring
///   so a viewer's NACK can be answered from the shared [`NackCache`](super::NackCache).
/// * Padding-only packets ([`forward_padding`](Self::forward_padding)) are left out
///   and the viewer's sequence closes over them: the next packet takes the number.
///   A publisher's congestion control pads to probe its uplink (Chromium pads a
///   simulcast top layer up to the bitrate the layer needs, often more packets
///   than media); the viewer has no use for them, and a hole in its sequence is
///   worse than a waste: it NACKs what nobody can resend, counts it as loss, and an
///   H.264 receiver (whose frames reference each other by sequence continuity)
///   stops decoding at the hole until the next keyframe. A packet that arrives
///   after later padding was left out is placed by counting the left-out padding
///   before it.
///
/// `forward` is allocation-free and does no locking: it is the per-packet,
/// per-viewer hot path.
pub struct TrackForwarder {
    clock_rate: u32,
    video: bool,
    target: Option<SourceId>,
    current: Option<SourceId>,
    seq_offset: u16,
    ts_offset: u32,
    /// Extended (wrap-free) source sequence number of the switch point and of the
    /// highest packet since: "before the switch" must hold across 16-bit wraps, or a
    /// long broadcast would stall for 32768 packets every 65536.
    switch_src_ext: i64,
    highest_src_ext: i64,
    last_out_seq: u16,
    last_out_ts: u32,
    last_out_at: Option<Instant>,
    started: bool,
    /// Padding packets of the current source left out so far, and the extended
    /// sequence numbers of the most recent ones (ascending). A packet's output
    /// number is `seq + seq_offset - (left out before it)`.
    skipped: u16,
    skips: std::collections::VecDeque<i64>,
    /// Extended sequence number of the newest padding forgotten from `skips`:
    /// where packets up to it belong is no longer known.
    skips_forgotten_to: i64,
    history: Box<[Mapping]>,
    packets: u64,
    switches: u64,
}

/// `seq` placed in the extended sequence space next to `reference`.
#[inline]
pub(super) fn extend(seq: u16, reference: i64) -> i64 {
    reference + seq.wrapping_sub(reference as u16) as i16 as i64
}

impl TrackForwarder {
    /// A forwarder for a track with this RTP clock rate. `video` forwarders switch
    /// sources only at keyframes. `initial_seq`/`initial_ts` are the viewer leg's
    /// random starting points.
    pub fn new(clock_rate: u32, video: bool, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            video,
            target: None,
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            switch_src_ext: 0,
            highest_src_ext: 0,
            last_out_seq: initial_seq.wrapping_sub(1),
            last_out_ts: initial_ts,
            last_out_at: None,
            started: false,
            skipped: 0,
            skips: std::collections::VecDeque::with_capacity(SKIPS),
            skips_forgotten_to: i64::MIN,
            history: vec![Mapping::default(); HISTORY].into_boxed_slice(),
            packets: 0,
            switches: 0,
        }
    }

    /// Follow `source` from its next keyframe (video) or next packet (audio).
    /// `None` pauses the track (audio-only fallback for video).
    pub fn set_target(&mut self, source: Option<SourceId>) {
        self.target = source;
        if source.is_none() {
            self.current = None;
        }
    }

    /// The source the viewer is asked to follow.
    pub fn target(&self) -> Option<SourceId> {
        self.target
    }

    /// The source actually being forwarded right now.
    pub fn current(&self) -> Option<SourceId> {
        self.current
    }

    /// True while a wanted switch waits for a keyframe.
    pub fn switch_pending(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// Packets forwarded so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Source switches performed (layer changes, publisher swaps).
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Decide whether a packet from `source` goes to this viewer, and with which
    /// sequence number and timestamp.
    pub fn forward(
        &mut self,
        source: SourceId,
        seq: u16,
        ts: u32,
        keyframe: bool,
        now: Instant,
    ) -> Result<Rewritten, Drop> {
        if Some(source) != self.current {
            if Some(source) != self.target {
                return Err(Drop::NotSelected);
            }
            if self.video && !keyframe {
                return Err(Drop::WaitingForKeyframe);
            }
            self.switch_to(source, seq, ts, now);
        }
        let ext = extend(seq, self.highest_src_ext);
        let out_seq = self.out_seq(seq, ext)?;
        let out_ts = ts.wrapping_add(self.ts_offset);
        if ext >= self.highest_src_ext {
            self.highest_src_ext = ext;
            self.last_out_seq = out_seq;
            self.last_out_ts = out_ts;
            self.last_out_at = Some(now);
        }
        self.history[out_seq as usize % HISTORY] = Mapping {
            out_seq,
            valid: true,
            source,
            src_seq: seq,
            ts_offset: self.ts_offset,
        };
        self.packets += 1;
        Ok(Rewritten {
            seq: out_seq,
            ts: out_ts,
        })
    }

    /// A padding-only packet of `source`. In order (newer than anything forwarded)
    /// it is left out and the sequence closes over it: `Err(Drop::Padding)`. Late,
    /// its number is already part of the viewer's sequence (later packets went out
    /// around it, and the viewer may be asking for it), so it goes out too, as an
    /// empty packet with this header.
    pub fn forward_padding(
        &mut self,
        source: SourceId,
        seq: u16,
        ts: u32,
    ) -> Result<Rewritten, Drop> {
        if Some(source) != self.current {
            return Err(Drop::NotSelected);
        }
        let ext = extend(seq, self.highest_src_ext);
        if ext <= self.highest_src_ext {
            if self.skips.contains(&ext) {
                return Err(Drop::Padding); // a duplicate of one left out
            }
            let out_seq = self.out_seq(seq, ext)?;
            return Ok(Rewritten {
                seq: out_seq,
                ts: ts.wrapping_add(self.ts_offset),
            });
        }
        if self.skips.len() == SKIPS
            && let Some(oldest) = self.skips.pop_front()
        {
            self.skips_forgotten_to = oldest;
        }
        self.skips.push_back(ext);
        self.skipped = self.skipped.wrapping_add(1);
        self.highest_src_ext = ext;
        // The number the next packet takes is this one's: the last number used
        // (or held for a packet still missing before the padding) is one less.
        self.last_out_seq = seq.wrapping_add(self.seq_offset).wrapping_sub(self.skipped);
        Err(Drop::Padding)
    }

    /// Output sequence number of the current source's packet `seq` (extended `ext`),
    /// counting the padding left out before it.
    #[inline]
    fn out_seq(&self, seq: u16, ext: i64) -> Result<u16, Drop> {
        if ext < self.switch_src_ext || ext <= self.skips_forgotten_to {
            return Err(Drop::BeforeSwitch);
        }
        // Skips after `ext` did not shift it; newest first, so in-order packets
        // (the common case) look at one entry at most.
        let later = self.skips.iter().rev().take_while(|&&s| s > ext).count() as u16;
        Ok(seq
            .wrapping_add(self.seq_offset)
            .wrapping_sub(self.skipped.wrapping_sub(later)))
    }

    fn switch_to(&mut self, source: SourceId, seq: u16, ts: u32, now: Instant) {
        let next_seq = self.last_out_seq.wrapping_add(1);
        let next_ts = match (self.started, self.last_out_at) {
            (true, Some(at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks =
                    (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000).max(1) as u32;
                self.last_out_ts.wrapping_add(ticks)
            }
            _ => self.last_out_ts,
        };
        self.seq_offset = next_seq.wrapping_sub(seq);
        self.ts_offset = next_ts.wrapping_sub(ts);
        // A fresh extended space per source; the margin keeps it positive.
        self.switch_src_ext = (1 << 20) + seq as i64;
        self.highest_src_ext = self.switch_src_ext;
        self.skipped = 0;
        self.skips.clear();
        self.skips_forgotten_to = i64::MIN;
        if self.started {
            self.switches += 1;
        }
        self.started = true;
        self.current = Some(source);
    }

    /// Map a viewer-leg sequence number (from a NACK) back to the publisher packet:
    /// `(source, source seq, timestamp offset to apply)`.
    pub fn lookup(&self, out_seq: u16) -> Option<(SourceId, u16, u32)> {
        let m = self.history[out_seq as usize % HISTORY];
        (m.valid && m.out_seq == out_seq).then_some((m.source, m.src_seq, m.ts_offset))
    }

    /// How many of this leg's sequence numbers in `(after, upto]` (in RTP's
    /// wrapping order) were sent, or `None` if the range reaches further back than
    /// the mapping history remembers. A number skipped because the publisher's
    /// packet never arrived was not sent: the viewer counts it lost, but it was
    /// lost upstream.
    pub fn sent_between(&self, after: u16, upto: u16) -> Option<u32> {
        let span = upto.wrapping_sub(after);
        if span as usize > HISTORY || span > 0x8000 {
            return None;
        }
        Some(
            (1..=span)
                .filter(|i| {
                    let seq = after.wrapping_add(*i);
                    let m = &self.history[seq as usize % HISTORY];
                    m.valid && m.out_seq == seq
                })
                .count() as u32,
        )
    }

    /// Translate a publisher sender-report RTP time of `source` into this viewer's
    /// timestamp space, if `source` is the one being forwarded.
    pub fn translate_rtp_time(&self, source: SourceId, rtp_time: u32) -> Option<u32> {
        (self.current == Some(source)).then(|| rtp_time.wrapping_add(self.ts_offset))
    }

    /// The last forwarded (seq, ts), if anything was forwarded.
    pub fn last_out(&self) -> Option<(u16, u32)> {
        self.started
            .then_some((self.last_out_seq, self.last_out_ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn continuous_across_a_publisher_swap() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(90_000, true, 1000, 5000);
        f.set_target(Some(0xA));
        // waits for a keyframe
        assert_eq!(
            f.forward(0xA, 10, 100, false, t0),
            Err(Drop::WaitingForKeyframe)
        );
        let r = f.forward(0xA, 11, 100, true, t0).unwrap();
        assert_eq!(
            r,
            Rewritten {
                seq: 1000,
                ts: 5000
            }
        );
        let r = f.forward(0xA, 12, 3100, false, ms(t0, 33)).unwrap();
        assert_eq!(
            r,
            Rewritten {
                seq: 1001,
                ts: 8000
            }
        );
        // publisher reconnects: new SSRC, random seq/ts base
        f.set_target(Some(0xB));
        // old publisher's packets still flow until the new one's keyframe
        let r = f.forward(0xA, 13, 6100, false, ms(t0, 66)).unwrap();
        assert_eq!(r.seq, 1002);
        assert_eq!(
            f.forward(0xB, 40000, 777, false, ms(t0, 90)),
            Err(Drop::WaitingForKeyframe)
        );
        let r = f.forward(0xB, 40001, 777, true, ms(t0, 100)).unwrap();
        assert_eq!(r.seq, 1003, "no gap in sequence numbers");
        // 34 ms after the last forwarded packet => 3060 ticks later
        assert_eq!(r.ts, 5000 + 6000 + 3060);
        // old source no longer forwarded
        assert_eq!(
            f.forward(0xA, 14, 9100, false, ms(t0, 101)),
            Err(Drop::NotSelected)
        );
        let r = f
            .forward(0xB, 40002, 777 + 3000, false, ms(t0, 133))
            .unwrap();
        assert_eq!(
            r,
            Rewritten {
                seq: 1004,
                ts: 5000 + 6000 + 3060 + 3000
            }
        );
        assert_eq!(f.switches(), 1);
    }

    #[test]
    fn layer_switch_at_keyframe_and_nack_lookup() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(90_000, true, 65534, 0);
        f.set_target(Some(1));
        for i in 0..4u16 {
            f.forward(1, 100 + i, 3000 * i as u32, i == 0, ms(t0, 33 * i as u64))
                .unwrap();
        }
        // out seqs 65534, 65535, 0, 1 (wrap)
        assert_eq!(f.lookup(0), Some((1, 102, 0u32.wrapping_sub(0))));
        assert_eq!(f.last_out().unwrap().0, 1);
        f.set_target(Some(2));
        assert_eq!(
            f.forward(2, 9, 50, false, ms(t0, 140)),
            Err(Drop::WaitingForKeyframe)
        );
        // the lower layer keeps flowing meanwhile
        assert_eq!(f.forward(1, 104, 12000, false, ms(t0, 132)).unwrap().seq, 2);
        let r = f.forward(2, 10, 50, true, ms(t0, 165)).unwrap();
        assert_eq!(r.seq, 3);
        let (src, sseq, off) = f.lookup(3).unwrap();
        assert_eq!((src, sseq), (2, 10));
        assert_eq!(50u32.wrapping_add(off), r.ts);
        // a late (reordered) packet from before the switch point is dropped
        assert_eq!(
            f.forward(2, 9, 50, false, ms(t0, 166)),
            Err(Drop::BeforeSwitch)
        );
        // reordered packet after the switch point keeps its slot
        assert_eq!(f.forward(2, 12, 50, false, ms(t0, 167)).unwrap().seq, 5);
        assert_eq!(f.forward(2, 11, 50, false, ms(t0, 168)).unwrap().seq, 4);
        assert_eq!(f.last_out().unwrap().0, 5);
        // timestamps move forward monotonically across the switch
        assert!(r.ts.wrapping_sub(12000) < 0x8000_0000);
    }

    #[test]
    fn a_long_broadcast_keeps_flowing_across_sequence_wraps() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(90_000, true, 7, 0);
        f.set_target(Some(1));
        let start = 60_000u16;
        let first = f.forward(1, start, 0, true, t0).unwrap().seq;
        // Three wraps of the 16-bit space (about 20 minutes of 150 packets/s).
        for i in 1..200_000u32 {
            let seq = start.wrapping_add(i as u16);
            let r = f.forward(1, seq, i * 600, false, t0);
            assert_eq!(
                r.map(|r| r.seq),
                Ok(first.wrapping_add(i as u16)),
                "packet {i} after the switch"
            );
        }
        // Reordering still works after the wraps, and a packet from before the
        // switch point is still recognised as such by its distance.
        let last = start.wrapping_add(199_999u32 as u16);
        assert!(f.forward(1, last.wrapping_sub(5), 0, false, t0).is_ok());
        assert_eq!(
            f.last_out().unwrap().0,
            first.wrapping_add(199_999u32 as u16)
        );
    }

    #[test]
    fn padding_is_left_out_and_the_sequence_closes_over_it() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(90_000, true, 1000, 0);
        f.set_target(Some(1));
        assert_eq!(f.forward(1, 10, 0, true, t0).unwrap().seq, 1000);
        assert_eq!(f.forward(1, 11, 0, false, t0).unwrap().seq, 1001);
        // Chromium pads between frames, on the media SSRC.
        assert_eq!(f.forward_padding(1, 12, 0), Err(Drop::Padding));
        assert_eq!(f.forward_padding(1, 13, 0), Err(Drop::Padding));
        let r = f.forward(1, 14, 3000, false, ms(t0, 33)).unwrap();
        assert_eq!(
            r,
            Rewritten {
                seq: 1002,
                ts: 3000
            }
        );
        assert_eq!(f.lookup(1002), Some((1, 14, 0)));
        // Padding after a packet that is still missing: the missing one keeps its
        // number (the viewer NACKs it; the publisher's retransmission fills it).
        assert_eq!(f.forward(1, 15, 3000, false, ms(t0, 34)).unwrap().seq, 1003);
        assert_eq!(f.forward_padding(1, 17, 3000), Err(Drop::Padding));
        assert_eq!(f.forward(1, 18, 6000, false, ms(t0, 66)).unwrap().seq, 1005);
        assert_eq!(f.forward(1, 16, 3000, false, ms(t0, 67)).unwrap().seq, 1004);
        assert_eq!(f.lookup(1004), Some((1, 16, 0)));
        // A padding packet that arrives late already has a number in the viewer's
        // sequence (the packets around it went out): it goes out to fill it.
        assert_eq!(
            f.forward(1, 20, 9000, false, ms(t0, 100)).unwrap().seq,
            1007
        );
        assert_eq!(
            f.forward_padding(1, 19, 6000),
            Ok(Rewritten {
                seq: 1006,
                ts: 6000
            })
        );
        // A duplicate of padding that was left out stays out.
        assert_eq!(f.forward_padding(1, 17, 3000), Err(Drop::Padding));
        // Other sources' padding is not this viewer's business.
        assert_eq!(f.forward_padding(2, 5, 0), Err(Drop::NotSelected));
        assert_eq!(f.last_out().unwrap().0, 1007);
    }

    #[test]
    fn a_switch_after_padding_continues_the_sequence() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(90_000, true, 500, 0);
        f.set_target(Some(1));
        assert_eq!(f.forward(1, 65534, 0, true, t0).unwrap().seq, 500);
        // padding across the wrap of the source's sequence numbers
        for q in [65535u16, 0, 1] {
            assert_eq!(f.forward_padding(1, q, 0), Err(Drop::Padding));
        }
        assert_eq!(f.forward(1, 2, 3000, false, ms(t0, 33)).unwrap().seq, 501);
        assert_eq!(f.forward_padding(1, 3, 3000), Err(Drop::Padding));
        f.set_target(Some(2));
        let r = f.forward(2, 7000, 123, true, ms(t0, 66)).unwrap();
        assert_eq!(r.seq, 502, "no gap and no reuse across the switch");
        // the new source starts with nothing left out
        assert_eq!(f.forward(2, 7001, 123, false, ms(t0, 66)).unwrap().seq, 503);
        assert_eq!(f.forward_padding(1, 4, 3000), Err(Drop::NotSelected));
    }

    #[test]
    fn a_packet_later_than_the_remembered_padding_is_dropped_not_misplaced() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(90_000, true, 0, 0);
        f.set_target(Some(1));
        f.forward(1, 0, 0, true, t0).unwrap();
        // seq 1 goes missing, then a long run of padding
        let n = SKIPS as u16 + 10;
        for q in 2..2 + n {
            assert_eq!(f.forward_padding(1, q, 0), Err(Drop::Padding));
        }
        let next = f.forward(1, 2 + n, 3000, false, ms(t0, 33)).unwrap().seq;
        assert_eq!(next, 2, "seq 1 keeps its number, the padding none");
        // Where seq 1 belongs is no longer known (padding before it was
        // forgotten): better dropped than sent under a wrong number.
        assert_eq!(
            f.forward(1, 1, 0, false, ms(t0, 34)),
            Err(Drop::BeforeSwitch)
        );
        // A packet after the remembered padding is still placed exactly.
        assert_eq!(f.forward_padding(1, 3 + n, 3000), Err(Drop::Padding));
        assert_eq!(f.forward(1, 4 + n, 3000, false, ms(t0, 35)).unwrap().seq, 3);
    }

    #[test]
    fn audio_switches_immediately_and_pause_resume() {
        let t0 = Instant::now();
        let mut f = TrackForwarder::new(48_000, false, 1, 0);
        f.set_target(Some(7));
        assert_eq!(f.forward(7, 500, 960, false, t0).unwrap().seq, 1);
        f.set_target(Some(8));
        let r = f.forward(8, 9000, 123, false, ms(t0, 20)).unwrap();
        assert_eq!(r, Rewritten { seq: 2, ts: 960 });
        f.set_target(None);
        assert_eq!(
            f.forward(8, 9001, 1083, false, ms(t0, 40)),
            Err(Drop::NotSelected)
        );
        f.set_target(Some(8));
        let r = f
            .forward(8, 9050, 123 + 960 * 50, false, ms(t0, 1020))
            .unwrap();
        assert_eq!(r.seq, 3);
        assert_eq!(r.ts, 960 + 48_000);
        assert_eq!(f.translate_rtp_time(8, 123 + 960 * 50), Some(r.ts));
        assert_eq!(f.translate_rtp_time(7, 0), None);
    }
}
