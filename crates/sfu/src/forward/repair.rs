//! Loss on the publisher's uplink: which holes get repaired, and when to stop
//! waiting and ask for a keyframe instead.
//!
//! A video packet lost on the way in breaks the frame it belongs to and, since
//! every frame refers to the one before, everything after it until a keyframe. The
//! SFU NACKs the publisher (rtc's NACK generator on the publisher leg), and the
//! viewers NACK the SFU, which can answer only with what it has. Whether the
//! publisher answers at all depends on the client: Chromium resends on the media
//! SSRC, GStreamer's `whip-client` offers no RTX and resends nothing. Left to the
//! players, the stall lasts until one of them gives up waiting and sends a PLI
//! (Chromium waits up to seconds), and every viewer of the broadcast freezes with
//! it: measured with GStreamer behind 150 ms and 5 % loss each way, a viewer on a
//! clean link decoded under 6 frames a second of 15.
//!
//! So the SFU watches each publisher video stream itself ([`RepairWatch`]): a hole
//! that is not filled within the time the publisher's repairs have taken (or at
//! once, if it has never repaired one) means the stream cannot continue until the
//! next keyframe, and the room asks for one (through the stream's
//! [`KeyframeRequestLimiter`](super::KeyframeRequestLimiter), so however many
//! holes there are, at most one request per interval leaves).

use super::rewrite::extend;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a hole may stay open before it counts as lost, when the publisher has
/// not shown that it repairs: packets overtaken by a few milliseconds of jitter
/// arrive within this.
pub const REORDER_ALLOWANCE: Duration = Duration::from_millis(60);
/// Shortest and longest wait for a repair once the publisher has shown it repairs.
pub const MIN_REPAIR_WAIT: Duration = Duration::from_millis(120);
/// Past this a repair is useless to players anyway.
pub const MAX_REPAIR_WAIT: Duration = Duration::from_secs(1);
/// Holes tracked at once; beyond this the oldest is given up on (a burst that
/// long needs a keyframe anyway).
pub const MAX_HOLES: usize = 512;
/// Repairs remembered to learn how long they take.
const FILLS: usize = 16;

/// Per publisher video stream: holes in its sequence, and whether they were repaired.
#[derive(Debug, Clone, Default)]
pub struct RepairWatch {
    highest: Option<i64>,
    /// Missing extended sequence numbers -> when the gap was seen.
    holes: BTreeMap<i64, Instant>,
    /// How long recent repairs took (ring).
    fills: [Duration; FILLS],
    fill_count: usize,
    repaired: u64,
    given_up: u64,
}

impl RepairWatch {
    /// A watch with nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet of the stream arrived (padding too: it takes a sequence number).
    pub fn on_packet(&mut self, seq: u16, now: Instant) {
        let Some(h) = self.highest else {
            self.highest = Some(seq as i64 + (1 << 20));
            return;
        };
        let ext = extend(seq, h);
        if ext > h {
            // A jump of thousands is a restart, not a burst to wait for.
            if ext - h <= MAX_HOLES as i64 {
                for missing in h + 1..ext {
                    self.holes.insert(missing, now);
                }
            }
            while self.holes.len() > MAX_HOLES {
                self.holes.pop_first();
                self.given_up += 1;
            }
            self.highest = Some(ext);
        } else if let Some(seen) = self.holes.remove(&ext) {
            self.fills[self.fill_count % FILLS] = now.saturating_duration_since(seen);
            self.fill_count += 1;
            self.repaired += 1;
        }
    }

    /// How long a hole is given to be repaired: a little more than the slowest
    /// recent repair, or [`REORDER_ALLOWANCE`] if there was none.
    pub fn repair_wait(&self) -> Duration {
        if self.fill_count == 0 {
            return REORDER_ALLOWANCE;
        }
        let recent = &self.fills[..self.fill_count.min(FILLS)];
        let slowest = recent.iter().max().copied().unwrap_or_default();
        (slowest + slowest / 2).clamp(MIN_REPAIR_WAIT, MAX_REPAIR_WAIT)
    }

    /// A keyframe starts at `seq`: holes before it no longer matter to anyone.
    pub fn on_keyframe(&mut self, seq: u16) {
        if let Some(h) = self.highest {
            let ext = extend(seq, h);
            self.holes.retain(|&s, _| s > ext);
        }
    }

    /// Whether a hole has waited past [`repair_wait`](Self::repair_wait) by `now`:
    /// the stream is broken until the next keyframe. The holes given up on are
    /// forgotten (one keyframe repairs them all).
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.poll_timeout() {
            Some(due) if due <= now => {
                self.given_up += self.holes.len() as u64;
                self.holes.clear();
                true
            }
            _ => false,
        }
    }

    /// When the oldest open hole is due, if there is one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.holes
            .values()
            .min()
            .map(|seen| *seen + self.repair_wait())
    }

    /// Holes filled by a late packet.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Holes given up on.
    pub fn given_up(&self) -> u64 {
        self.given_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_publisher_that_never_repairs_gets_a_keyframe_request_at_once() {
        let t0 = Instant::now();
        let mut w = RepairWatch::new();
        for s in [65534u16, 65535, 1, 2] {
            w.on_packet(s, t0);
        }
        assert_eq!(w.poll_timeout(), Some(t0 + REORDER_ALLOWANCE));
        assert!(!w.poll(ms(t0, 59)));
        assert!(w.poll(ms(t0, 60)), "seq 0 across the wrap is lost");
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.given_up(), 1);
        // Reordering within the allowance is no loss.
        w.on_packet(4, ms(t0, 70));
        w.on_packet(3, ms(t0, 75));
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn once_it_repairs_the_wait_follows_its_repair_time() {
        let t0 = Instant::now();
        let mut w = RepairWatch::new();
        w.on_packet(10, t0);
        w.on_packet(12, t0);
        // The repair comes 300 ms later (one round trip on a 150 ms path).
        w.on_packet(11, ms(t0, 300));
        assert_eq!(w.repaired(), 1);
        assert_eq!(w.repair_wait(), Duration::from_millis(450));
        w.on_packet(14, ms(t0, 400));
        assert!(!w.poll(ms(t0, 849)));
        assert!(w.poll(ms(t0, 850)));
        // Bounded both ways.
        let mut fast = RepairWatch::new();
        fast.on_packet(1, t0);
        fast.on_packet(3, t0);
        fast.on_packet(2, ms(t0, 5));
        assert_eq!(fast.repair_wait(), MIN_REPAIR_WAIT);
        let mut slow = RepairWatch::new();
        slow.on_packet(1, t0);
        slow.on_packet(3, t0);
        slow.on_packet(2, ms(t0, 5000));
        assert_eq!(slow.repair_wait(), MAX_REPAIR_WAIT);
    }

    #[test]
    fn a_keyframe_makes_earlier_holes_moot_and_holes_are_bounded() {
        let t0 = Instant::now();
        let mut w = RepairWatch::new();
        w.on_packet(100, t0);
        w.on_packet(105, t0);
        w.on_keyframe(105);
        assert_eq!(w.poll_timeout(), None);
        // A burst longer than the bound keeps only the newest holes.
        w.on_packet(405, t0);
        w.on_packet(705, t0);
        assert_eq!(w.given_up(), 598 - MAX_HOLES as u64);
        assert!(w.poll(ms(t0, 100)));
        // A restart (a jump of thousands) opens no holes.
        w.on_packet(30_000, ms(t0, 200));
        assert_eq!(w.poll_timeout(), None);
    }
}
