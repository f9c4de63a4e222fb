//! Sans-I/O pieces of the media scenario: what a datagram is, the clear RTP
//! header of an SRTP packet, per-stream accounting (packets, bytes, loss,
//! frames) from headers alone, the synthetic payload format, and the
//! publisher's frame schedule. No sockets, no clocks: callers pass `now`.

use std::time::{Duration, Instant};

/// What a datagram on a WebRTC 5-tuple carries (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// ICE (STUN).
    Stun,
    /// DTLS.
    Dtls,
    /// SRTP media.
    Rtp,
    /// SRTCP.
    Rtcp,
    /// Anything else.
    Other,
}

/// Classifies by the first two bytes.
pub fn classify(b: &[u8]) -> Datagram {
    let Some(&first) = b.first() else {
        return Datagram::Other;
    };
    match first {
        0..=3 => Datagram::Stun,
        20..=63 => Datagram::Dtls,
        128..=191 => match b.get(1) {
            // RFC 5761: RTCP packet types 192–223 occupy this byte in full.
            Some(192..=223) => Datagram::Rtcp,
            Some(_) => Datagram::Rtp,
            None => Datagram::Other,
        },
        _ => Datagram::Other,
    }
}

/// The fields of an RTP header the generator needs. SRTP encrypts only the
/// payload, so these are readable without keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

/// Parses the fixed RTP header (`None` if too short or not version 2).
pub fn parse_rtp(b: &[u8]) -> Option<RtpHeader> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    Some(RtpHeader {
        marker: b[1] & 0x80 != 0,
        pt: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    })
}

/// Accounting of one received RTP stream, from headers only: distinct
/// packets, bytes, expected packets (from the extended sequence number),
/// duplicates, frames (distinct timestamps), and the counts at the last
/// receiver report for its `fraction lost`.
#[derive(Debug, Clone, Default)]
pub struct StreamAccount {
    /// SSRC of the stream (the SFU's, on a viewer leg).
    pub ssrc: Option<u32>,
    first_ext: Option<i64>,
    highest: i64,
    /// Distinct packets received.
    pub received: u64,
    /// Packets received again (the same sequence number within the window).
    pub duplicates: u64,
    /// Datagram bytes received (SRTP, as on the wire above UDP).
    pub bytes: u64,
    /// Frames started (RTP timestamp changes).
    pub frames: u64,
    last_ts: Option<u32>,
    /// Recently seen sequence numbers, to tell duplicates and late packets.
    seen: Box<[u64; 16]>,
    /// First and last packet arrival.
    pub first_at: Option<Instant>,
    /// Last packet arrival.
    pub last_at: Option<Instant>,
    rr_expected: u64,
    rr_received: u64,
}

/// What one packet meant for its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounted {
    /// Not seen before.
    pub new: bool,
    /// How far the highest sequence number moved forward (0 for late or
    /// duplicate packets): packets the sender must have sent meanwhile.
    pub advanced: u64,
    /// Begins a new frame (its timestamp differs from the previous packet's).
    pub new_frame: bool,
}

impl StreamAccount {
    const WINDOW: i64 = 1024;

    /// Account one packet of `len` bytes.
    pub fn on_packet(&mut self, h: &RtpHeader, len: usize, now: Instant) -> Accounted {
        self.ssrc = Some(h.ssrc);
        self.bytes += len as u64;
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        let new_frame = self.last_ts != Some(h.ts);
        let ext = match self.first_ext {
            None => {
                let ext = i64::from(h.seq);
                self.first_ext = Some(ext);
                self.highest = ext;
                self.mark(ext);
                self.received = 1;
                self.frames = 1;
                self.last_ts = Some(h.ts);
                return Accounted {
                    new: true,
                    advanced: 1,
                    new_frame: true,
                };
            }
            Some(_) => self.highest + i64::from(h.seq.wrapping_sub(self.highest as u16) as i16),
        };
        if ext > self.highest {
            // Forget marks that the window slid past.
            let from = (self.highest + 1).max(ext - Self::WINDOW + 1);
            for s in from..=ext {
                self.unmark(s);
            }
            let advanced = (ext - self.highest) as u64;
            self.highest = ext;
            self.mark(ext);
            self.received += 1;
            if new_frame {
                self.frames += 1;
                self.last_ts = Some(h.ts);
            }
            return Accounted {
                new: true,
                advanced,
                new_frame,
            };
        }
        if self.highest - ext >= Self::WINDOW || self.first_ext.is_some_and(|f| ext < f) {
            // Too old to tell; count it as a duplicate rather than inflate.
            self.duplicates += 1;
            return Accounted {
                new: false,
                advanced: 0,
                new_frame: false,
            };
        }
        if self.is_marked(ext) {
            self.duplicates += 1;
            Accounted {
                new: false,
                advanced: 0,
                new_frame: false,
            }
        } else {
            self.mark(ext);
            self.received += 1;
            Accounted {
                new: true,
                advanced: 0,
                new_frame: false,
            }
        }
    }

    fn slot(ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(Self::WINDOW) as usize;
        (i / 64, 1u64 << (i % 64))
    }
    fn mark(&mut self, ext: i64) {
        let (w, b) = Self::slot(ext);
        self.seen[w] |= b;
    }
    fn unmark(&mut self, ext: i64) {
        let (w, b) = Self::slot(ext);
        self.seen[w] &= !b;
    }
    fn is_marked(&self, ext: i64) -> bool {
        let (w, b) = Self::slot(ext);
        self.seen[w] & b != 0
    }

    /// Packets the sender sent from the first one received to the highest.
    pub fn expected(&self) -> u64 {
        match self.first_ext {
            Some(f) => (self.highest - f + 1) as u64,
            None => 0,
        }
    }

    /// Packets never received.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Highest extended sequence number (for receiver reports).
    pub fn highest_ext(&self) -> u32 {
        self.highest as u32
    }

    /// RFC 3550 `fraction lost` since the previous call, and cumulative loss.
    pub fn report(&mut self) -> (u8, u32) {
        let expected = self.expected() - self.rr_expected;
        let received = self.received - self.rr_received;
        self.rr_expected = self.expected();
        self.rr_received = self.received;
        let lost = expected.saturating_sub(received);
        let fraction = ((lost << 8).checked_div(expected).unwrap_or(0)).min(255) as u8;
        (fraction, self.lost().min(0x7f_ffff) as u32)
    }
}

/// The synthetic payloads carry the publisher's send time in their last 8
/// bytes: microseconds since the UNIX epoch (the kernel's receive timestamps
/// use the same clock).
pub fn stamp(payload: &mut [u8], send_us: u64) {
    let n = payload.len();
    if n >= 8 {
        payload[n - 8..].copy_from_slice(&send_us.to_be_bytes());
    }
}

/// The send time a payload carries (see [`stamp`]).
pub fn send_time(payload: &[u8]) -> Option<u64> {
    let n = payload.len();
    (n >= 8).then(|| u64::from_be_bytes(payload[n - 8..].try_into().unwrap_or([0; 8])))
}

/// Whether a (decrypted) VP8 RTP payload starts a keyframe (RFC 7741: S bit,
/// partition 0, then the frame tag's inverse keyframe bit). The generator's
/// own payloads never use the descriptor's extensions.
pub fn vp8_keyframe_start(p: &[u8]) -> bool {
    matches!(p, [b0, tag, ..] if b0 & 0x10 != 0 && b0 & 0x07 == 0 && b0 & 0x80 == 0 && tag & 0x01 == 0)
}

/// The VP8 payload of packet `i` of a frame, `len` bytes in all, stamped.
pub fn vp8_payload(key: bool, i: usize, len: usize, send_us: u64) -> Vec<u8> {
    let mut p = vec![0xab; len.max(20)];
    p[0] = if i == 0 { 0x10 } else { 0x00 };
    if i == 0 {
        // Frame tag (P = 0 on keyframes), then the keyframe start code.
        p[1..7].copy_from_slice(if key {
            &[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]
        } else {
            &[0x01, 0x00, 0x00, 0xab, 0xab, 0xab]
        });
    }
    stamp(&mut p, send_us);
    p
}

/// How big each video frame is: a rate-controlled encoder at `bitrate_bps`
/// and `fps`, a keyframe every `keyframe_interval` (or when asked), keyframes
/// about 4.5 times an average frame, and the delta frames that follow
/// smaller so the average holds.
#[derive(Debug, Clone)]
pub struct FrameSchedule {
    packet_bytes: usize,
    avg_frame_bytes: f64,
    key_packets: usize,
    keyframe_every: u64,
    frame: u64,
    credit: f64,
}

impl FrameSchedule {
    /// A schedule of `packet_bytes`-byte RTP payloads.
    pub fn new(
        bitrate_bps: u64,
        fps: u32,
        keyframe_interval: Duration,
        packet_bytes: usize,
    ) -> Self {
        let fps = fps.max(1);
        let avg_frame_bytes = bitrate_bps as f64 / 8.0 / f64::from(fps);
        let avg_packets = avg_frame_bytes / packet_bytes as f64;
        Self {
            packet_bytes,
            avg_frame_bytes,
            key_packets: (avg_packets * 4.5).round().max(1.0) as usize,
            keyframe_every: (keyframe_interval.as_secs_f64() * f64::from(fps))
                .round()
                .max(1.0) as u64,
            frame: 0,
            credit: 0.0,
        }
    }

    /// The next frame: (keyframe?, packets). `force` asks for a keyframe
    /// (a PLI from the SFU); the periodic cycle restarts from it.
    pub fn next_frame(&mut self, force: bool) -> (bool, usize) {
        let key = force || self.frame.is_multiple_of(self.keyframe_every);
        if force {
            self.frame = 0;
        }
        self.frame += 1;
        self.credit += self.avg_frame_bytes;
        let packets = if key {
            self.key_packets
        } else {
            let max = (2.0 * self.avg_frame_bytes / self.packet_bytes as f64).ceil() as usize;
            ((self.credit / self.packet_bytes as f64).round() as usize).clamp(1, max.max(1))
        };
        self.credit -= (packets * self.packet_bytes) as f64;
        // A burst of forced keyframes must not leave a debt that starves
        // video for seconds: an encoder recovers within about a second.
        self.credit = self.credit.max(-self.avg_frame_bytes * 30.0);
        (key, packets)
    }

    /// RTP payload bytes per packet.
    pub fn packet_bytes(&self) -> usize {
        self.packet_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            pt: 96,
            seq,
            ts,
            ssrc: 7,
        }
    }

    #[test]
    fn datagrams_are_told_apart_by_their_first_bytes() {
        assert_eq!(classify(&[0x00, 0x01]), Datagram::Stun);
        assert_eq!(classify(&[22, 0xfe]), Datagram::Dtls);
        assert_eq!(classify(&[0x80, 96]), Datagram::Rtp);
        assert_eq!(classify(&[0x80, 96 | 0x80]), Datagram::Rtp);
        assert_eq!(classify(&[0x80, 200]), Datagram::Rtcp);
        assert_eq!(classify(&[0x81, 201]), Datagram::Rtcp);
        assert_eq!(classify(&[0x80, 111]), Datagram::Rtp);
        assert_eq!(classify(&[]), Datagram::Other);
        assert_eq!(classify(&[0xff]), Datagram::Other);
    }

    #[test]
    fn rtp_header_fields() {
        let b = [
            0x80, 0xe0, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0xaa,
        ];
        let h = parse_rtp(&b).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                pt: 96,
                seq: 0x1234,
                ts: 256,
                ssrc: 0xdead_beef
            }
        );
        assert!(parse_rtp(&b[..11]).is_none());
        assert!(parse_rtp(&[0x40; 12]).is_none(), "version 1");
    }

    #[test]
    fn loss_duplicates_reordering_and_wrap() {
        let t = Instant::now();
        let mut a = StreamAccount::default();
        for seq in [65530u16, 65531, 65533, 65534, 65535, 0, 1] {
            assert!(a.on_packet(&hdr(seq, 1), 100, t).new);
        }
        assert_eq!(a.expected(), 8);
        assert_eq!(a.received, 7);
        assert_eq!(a.lost(), 1, "65532 never came");
        // it comes late: not new progress, but received
        let late = a.on_packet(&hdr(65532, 1), 100, t);
        assert_eq!(
            late,
            Accounted {
                new: true,
                advanced: 0,
                new_frame: false
            }
        );
        assert_eq!(a.lost(), 0);
        // twice: a duplicate
        assert!(!a.on_packet(&hdr(65532, 1), 100, t).new);
        assert_eq!(a.duplicates, 1);
        assert_eq!(a.bytes, 900);
        // a jump forward of 3 (2 lost)
        assert_eq!(a.on_packet(&hdr(4, 2), 100, t).advanced, 3);
        assert_eq!(a.lost(), 2);
        assert_eq!(a.frames, 2);
    }

    #[test]
    fn fraction_lost_is_per_report_interval() {
        let t = Instant::now();
        let mut a = StreamAccount::default();
        for seq in 0..100u16 {
            if seq % 4 != 0 || seq == 0 {
                a.on_packet(&hdr(seq, 0), 10, t);
            }
        }
        let (fraction, total) = a.report();
        assert_eq!(total, 24);
        assert_eq!(fraction, (24u64 * 256 / 100) as u8);
        for seq in 100..200u16 {
            a.on_packet(&hdr(seq, 0), 10, t);
        }
        assert_eq!(a.report(), (0, 24), "no new loss in the second interval");
    }

    #[test]
    fn sliding_window_forgets_old_marks() {
        let t = Instant::now();
        let mut a = StreamAccount::default();
        a.on_packet(&hdr(0, 0), 1, t);
        a.on_packet(&hdr(2000, 0), 1, t);
        // 1024 is within the window of 2000 and was never received
        assert!(a.on_packet(&hdr(1500, 0), 1, t).new);
        // 0 is too old to tell
        assert!(!a.on_packet(&hdr(0, 0), 1, t).new);
    }

    #[test]
    fn payload_stamp_and_keyframe_bits() {
        let p = vp8_payload(true, 0, 1100, 123_456_789);
        assert_eq!(p.len(), 1100);
        assert!(vp8_keyframe_start(&p));
        assert_eq!(send_time(&p), Some(123_456_789));
        assert!(!vp8_keyframe_start(&vp8_payload(false, 0, 1100, 1)));
        assert!(!vp8_keyframe_start(&vp8_payload(true, 1, 1100, 1)));
    }

    #[test]
    fn frame_schedule_holds_the_bitrate_with_keyframes_every_two_seconds() {
        let mut s = FrameSchedule::new(1_500_000, 30, Duration::from_secs(2), 1100);
        let mut bytes = 0usize;
        let mut keys = 0;
        for f in 0..600 {
            let (key, n) = s.next_frame(false);
            if key {
                keys += 1;
                assert_eq!(f % 60, 0, "periodic keyframe every 60 frames");
                assert!(n >= 20, "keyframes are big: {n}");
            }
            bytes += n * 1100;
        }
        assert_eq!(keys, 10);
        let bps = bytes as f64 * 8.0 / 20.0;
        assert!((bps - 1_500_000.0).abs() / 1_500_000.0 < 0.02, "{bps}");
        // A forced keyframe restarts the cycle.
        assert!(s.next_frame(true).0);
        for _ in 0..59 {
            assert!(!s.next_frame(false).0);
        }
        assert!(s.next_frame(false).0);
    }
}
