//! Keyframe detection from RTP payloads and the upstream keyframe-request limiter.

use std::time::{Duration, Instant};

/// Video codecs the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (RFC 7741 payload format).
    Vp8,
    /// H.264, packetization-mode 1 (RFC 6184).
    H264,
}

/// Does this RTP payload start (or carry) a keyframe?
///
/// * VP8: the first packet of a frame (`S=1`, `PID=0`) whose VP8 header has the
///   inverse keyframe bit `P` cleared.
/// * H.264: an IDR slice (NAL 5) or a sequence parameter set (NAL 7, which encoders
///   send right before an IDR), alone, inside a STAP-A, or as the first fragment of
///   an FU-A.
///
/// Never panics on short or hostile payloads; anything unparseable is "not a keyframe".
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_is_keyframe(payload),
        VideoCodec::H264 => h264_is_keyframe(payload),
    }
}

fn vp8_is_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let start = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    if !start || pid != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        // X: extension byte
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // I: picture id, 1 or 2 bytes
            let Some(&pic) = p.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // L: TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // T or K: TID/Y/KEYIDX
        }
    }
    match p.get(i) {
        Some(&hdr) => hdr & 0x01 == 0,
        None => false,
    }
}

fn h264_is_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            // STAP-A: [hdr][size16][nal]...
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                i += 2;
                if size == 0 || i >= p.len() {
                    return false;
                }
                if matches!(p[i] & 0x1f, 5 | 7) {
                    return true;
                }
                i += size;
            }
            false
        }
        28 => match p.get(1) {
            Some(&fu) => fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7),
            None => false,
        },
        _ => false,
    }
}

/// Finds the packet where a keyframe *starts* in one publisher stream: the place a
/// viewer can switch onto the stream.
///
/// [`is_keyframe`] looks at one payload. An H.264 keyframe is usually several
/// packets that each look like one: Chromium sends the SPS and PPS in a STAP-A and
/// then the IDR slice as FU-A fragments, and the first fragment carries the IDR
/// type too. A switch at that fragment would hand the decoder an IDR without the
/// parameter sets that went before it (a simulcast layer's SPS differs from the
/// other layers' in resolution, under the same id), so only the first packet of an
/// access unit (one RTP timestamp) that carries an SPS or IDR counts. VP8 marks
/// exactly one packet per keyframe already.
#[derive(Debug, Clone)]
pub struct KeyframeDetector {
    codec: VideoCodec,
    /// RTP timestamp of the last access unit already reported as a keyframe start.
    last: Option<u32>,
}

impl KeyframeDetector {
    /// A detector for one stream of `codec`.
    pub fn new(codec: VideoCodec) -> Self {
        Self { codec, last: None }
    }

    /// Is this packet (payload and RTP timestamp) the start of a keyframe?
    pub fn on_packet(&mut self, payload: &[u8], ts: u32) -> bool {
        if !is_keyframe(self.codec, payload) {
            return false;
        }
        if self.codec == VideoCodec::H264 {
            if self.last == Some(ts) {
                return false; // a later packet of a keyframe already reported
            }
            self.last = Some(ts);
        }
        true
    }
}

/// Coalesces keyframe requests (PLI) towards one publisher stream.
///
/// However many viewers ask (joins, layer switches, their own PLIs), at most one
/// request leaves per `min_interval`. A request that arrives inside the interval is
/// remembered and sent when the interval ends — unless a keyframe arrives first, which
/// satisfies it. So a late joiner waits at most `min_interval` plus one round trip.
#[derive(Debug, Clone)]
pub struct KeyframeRequestLimiter {
    min_interval: Duration,
    last_sent: Option<Instant>,
    pending_since: Option<Instant>,
    sent_total: u64,
    suppressed_total: u64,
}

impl KeyframeRequestLimiter {
    /// A limiter that sends at most one request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            pending_since: None,
            sent_total: 0,
            suppressed_total: 0,
        }
    }

    /// Someone wants a keyframe. Returns `true` if a request should be sent now;
    /// otherwise it is deferred (see [`poll`](Self::poll)).
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => {
                self.suppressed_total += 1;
                if self.pending_since.is_none() {
                    self.pending_since = Some(now);
                }
                false
            }
            _ => {
                self.mark_sent(now);
                true
            }
        }
    }

    /// A keyframe arrived from the publisher: deferred requests made before it are satisfied.
    pub fn on_keyframe(&mut self, now: Instant) {
        if self.pending_since.is_some_and(|t| t <= now) {
            self.pending_since = None;
        }
    }

    /// Returns `true` if a deferred request is due now (and records it as sent).
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.poll_timeout() {
            Some(due) if due <= now => {
                self.mark_sent(now);
                true
            }
            _ => false,
        }
    }

    /// When a deferred request becomes due, if one is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_since?;
        Some(match self.last_sent {
            Some(last) => last + self.min_interval,
            None => self.pending_since.unwrap_or_else(Instant::now),
        })
    }

    /// Requests actually sent upstream.
    pub fn sent_total(&self) -> u64 {
        self.sent_total
    }

    /// Requests absorbed (coalesced into an earlier or later one).
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }

    fn mark_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.pending_since = None;
        self.sent_total += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_bits() {
        // S=1, PID=0, no extension; VP8 header P bit 0 => keyframe
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x10, 0x00, 0x9d, 0x01, 0x2a]
        ));
        // P bit 1 => interframe
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x01]));
        // not the start of a partition
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
        // X with I (2-byte picture id), then keyframe header
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0x80, 0x80, 0x01, 0x00]
        ));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0x80, 0x80]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn h264_keyframe_forms() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88])); // IDR
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42])); // SPS
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a])); // non-IDR slice
        // STAP-A with SPS
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        // FU-A start of IDR
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        // FU-A middle of IDR
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        // hostile STAP-A sizes
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0xff, 0xff, 0x41]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x00]));
    }

    #[test]
    fn one_keyframe_start_per_h264_access_unit() {
        let mut d = KeyframeDetector::new(VideoCodec::H264);
        // What Chromium sends: STAP-A [SPS, PPS], then the IDR as FU-A fragments.
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        let idr_start = [0x7c, 0x85, 0x00];
        let idr_middle = [0x7c, 0x05, 0x00];
        assert!(d.on_packet(&stap, 1000));
        assert!(!d.on_packet(&idr_start, 1000), "same access unit");
        assert!(!d.on_packet(&idr_middle, 1000));
        assert!(!d.on_packet(&[0x7c, 0x81, 0x00], 4000), "P-frame");
        // The next keyframe, and one whose parameter sets went out of band
        // (the IDR is its first packet).
        assert!(d.on_packet(&stap, 90_000));
        assert!(d.on_packet(&idr_start, 180_000));
        assert!(!d.on_packet(&idr_middle, 180_000));
        // A retransmitted STAP-A of a keyframe already reported is no new start.
        assert!(!d.on_packet(&stap, 180_000));

        let mut v = KeyframeDetector::new(VideoCodec::Vp8);
        assert!(v.on_packet(&[0x10, 0x00, 0x9d, 0x01, 0x2a], 7));
        assert!(!v.on_packet(&[0x00, 0x00], 7));
    }

    #[test]
    fn limiter_coalesces_a_storm_into_one_deferred_request() {
        let t0 = Instant::now();
        let mut l = KeyframeRequestLimiter::new(Duration::from_secs(1));
        assert!(l.request(t0));
        for i in 1..50 {
            assert!(!l.request(t0 + Duration::from_millis(i)));
        }
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        assert!(!l.poll(t0 + Duration::from_millis(999)));
        assert!(l.poll(t0 + Duration::from_secs(1)));
        assert!(!l.poll(t0 + Duration::from_secs(3)));
        assert_eq!(l.sent_total(), 2);
        assert_eq!(l.suppressed_total(), 49);
    }

    #[test]
    fn keyframe_satisfies_pending_request() {
        let t0 = Instant::now();
        let mut l = KeyframeRequestLimiter::new(Duration::from_secs(1));
        assert!(l.request(t0));
        assert!(!l.request(t0 + Duration::from_millis(100)));
        l.on_keyframe(t0 + Duration::from_millis(200));
        assert_eq!(l.poll_timeout(), None);
        assert!(!l.poll(t0 + Duration::from_secs(2)));
        // after the interval a new request goes straight out
        assert!(l.request(t0 + Duration::from_secs(2)));
    }
}
