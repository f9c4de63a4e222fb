//! What a video decoder could make of the packets a viewer received: a frame
//! buffer that counts decodable frames, so a test can say "the viewer saw N
//! frames", not just "packets arrived".
//!
//! The model is that of a VP8 or H.264 decoder without temporal layers, which is
//! what phones and GStreamer publish: every frame refers to the frame before it.
//! A frame (all packets of one RTP timestamp) is *complete* when its first packet
//! (VP8 `S=1` partition 0 start; H.264 anything that is not an FU-A middle or end)
//! through its marker packet all arrived, in any order; it is *decodable* when it
//! is complete and either a keyframe or the next frame after the last decoded one
//! (its first sequence number follows that frame's last). A lost packet thus
//! freezes the picture until a keyframe, as in a player; a retransmission that
//! arrives while the frame is still waiting un-freezes it.

use crate::forward::{VideoCodec, is_keyframe};
use std::collections::BTreeMap;

/// Frames still waiting to become decodable are forgotten this far behind the
/// newest packet: no player waits that long.
const WINDOW: i64 = 2048;

#[derive(Debug, Default, Clone)]
struct Frame {
    /// Extended sequence number of the frame's first packet, once seen.
    first: Option<i64>,
    /// Extended sequence number of its marker packet, once seen.
    last: Option<i64>,
    /// Distinct packets received (duplicates are filtered by the caller).
    packets: i64,
    keyframe: bool,
}

impl Frame {
    fn complete(&self) -> bool {
        matches!((self.first, self.last), (Some(f), Some(l)) if l >= f && l - f + 1 == self.packets)
    }
}

/// Counts the frames a decoder would show (sans-I/O; feed it every distinct
/// packet of one video stream).
#[derive(Debug)]
pub struct FrameTracker {
    codec: VideoCodec,
    highest: Option<i64>,
    /// Frames by RTP timestamp, not yet decoded.
    pending: BTreeMap<u32, Frame>,
    /// Last sequence number of the last decoded frame.
    decoded_to: Option<i64>,
    decoded: u64,
    keyframes_decoded: u64,
}

impl FrameTracker {
    /// A frame buffer for one stream of `codec`.
    pub fn new(codec: VideoCodec) -> Self {
        Self {
            codec,
            highest: None,
            pending: BTreeMap::new(),
            decoded_to: None,
            decoded: 0,
            keyframes_decoded: 0,
        }
    }

    /// Frames decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Keyframes among them.
    pub fn keyframes_decoded(&self) -> u64 {
        self.keyframes_decoded
    }

    fn starts_frame(&self, payload: &[u8]) -> bool {
        let Some(&b0) = payload.first() else {
            return false;
        };
        match self.codec {
            VideoCodec::Vp8 => b0 & 0x10 != 0 && b0 & 0x07 == 0,
            VideoCodec::H264 => match b0 & 0x1f {
                28 => payload.get(1).is_some_and(|fu| fu & 0x80 != 0),
                _ => true,
            },
        }
    }

    /// One distinct packet (a duplicate must not be fed twice).
    pub fn on_packet(&mut self, seq: u16, ts: u32, marker: bool, payload: &[u8]) {
        let ext = match self.highest {
            None => seq as i64 + (1 << 20),
            Some(h) => h + seq.wrapping_sub(h as u16) as i16 as i64,
        };
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        if self.decoded_to.is_some_and(|d| ext <= d) {
            return; // part of a frame already decoded or given up on
        }
        let starts = self.starts_frame(payload);
        let keyframe = is_keyframe(self.codec, payload);
        let frame = self.pending.entry(ts).or_default();
        frame.packets += 1;
        if starts {
            frame.first = Some(frame.first.map_or(ext, |f: i64| f.min(ext)));
        }
        if marker {
            frame.last = Some(ext);
        }
        frame.keyframe |= keyframe;
        self.decode_what_can_be();
        self.forget_old();
    }

    fn decode_what_can_be(&mut self) {
        loop {
            // The next frame in the chain, or failing that the newest complete
            // keyframe (a decoder jumps to it and drops what came before).
            let next = self.pending.iter().find_map(|(ts, f)| {
                let follows =
                    matches!((self.decoded_to, f.first), (Some(d), Some(first)) if first == d + 1);
                (f.complete()
                    && (follows
                        || (f.keyframe
                            && self
                                .decoded_to
                                .is_none_or(|d| f.first.is_some_and(|x| x > d)))))
                .then_some((*ts, follows))
            });
            let Some((ts, _)) = next else { return };
            let Some(f) = self.pending.remove(&ts) else {
                return;
            };
            let last = f.last.unwrap_or_default();
            self.decoded_to = Some(last);
            self.decoded += 1;
            if f.keyframe {
                self.keyframes_decoded += 1;
            }
            // Frames wholly before the one just decoded can no longer be shown.
            self.pending
                .retain(|_, p| p.first.or(p.last).is_none_or(|s| s > last));
        }
    }

    fn forget_old(&mut self) {
        let Some(h) = self.highest else { return };
        self.pending
            .retain(|_, p| p.last.or(p.first).is_none_or(|s| h - s < WINDOW));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VP8 payloads: frame start (S=1), keyframe bit per the VP8 header.
    fn vp8(start: bool, key: bool) -> Vec<u8> {
        if start {
            vec![0x10, if key { 0x00 } else { 0x01 }, 0x9d, 0x01, 0x2a]
        } else {
            vec![0x00, 0xab]
        }
    }

    /// Feeds frame `n` (3 packets, seqs 3n..3n+2, ts 100n), skipping `lose`.
    fn feed(t: &mut FrameTracker, n: u16, key: bool, lose: Option<u16>) {
        for i in 0..3u16 {
            let seq = 3 * n + i;
            if Some(seq) == lose {
                continue;
            }
            t.on_packet(seq, 100 * n as u32, i == 2, &vp8(i == 0, key));
        }
    }

    #[test]
    fn a_lost_packet_freezes_until_the_next_keyframe() {
        let mut t = FrameTracker::new(VideoCodec::Vp8);
        feed(&mut t, 0, true, None);
        feed(&mut t, 1, false, None);
        assert_eq!(t.decoded(), 2);
        // Frame 2 loses a packet: it and every frame after it wait.
        feed(&mut t, 2, false, Some(7));
        feed(&mut t, 3, false, None);
        feed(&mut t, 4, false, None);
        assert_eq!(t.decoded(), 2);
        // A keyframe resumes the picture.
        feed(&mut t, 5, true, None);
        feed(&mut t, 6, false, None);
        assert_eq!(t.decoded(), 4);
        assert_eq!(t.keyframes_decoded(), 2);
        // The lost packet arriving now is too late to matter.
        t.on_packet(7, 200, false, &vp8(false, false));
        assert_eq!(t.decoded(), 4);
    }

    #[test]
    fn a_retransmission_in_time_unfreezes_the_chain() {
        let mut t = FrameTracker::new(VideoCodec::Vp8);
        feed(&mut t, 0, true, None);
        feed(&mut t, 1, false, Some(4));
        feed(&mut t, 2, false, None);
        assert_eq!(t.decoded(), 1);
        t.on_packet(4, 100, false, &vp8(false, false));
        assert_eq!(
            t.decoded(),
            3,
            "frames 1 and 2 decode once the hole is filled"
        );
        // Reordered packets of one frame are fine too.
        t.on_packet(11, 300, true, &vp8(false, false));
        t.on_packet(9, 300, false, &vp8(true, false));
        t.on_packet(10, 300, false, &vp8(false, false));
        assert_eq!(t.decoded(), 4);
    }

    #[test]
    fn nothing_decodes_before_the_first_keyframe() {
        let mut t = FrameTracker::new(VideoCodec::Vp8);
        feed(&mut t, 0, false, None);
        feed(&mut t, 1, false, None);
        assert_eq!(t.decoded(), 0);
        feed(&mut t, 2, true, None);
        assert_eq!(t.decoded(), 1);
    }
}
