//! Per-source packet cache used to answer viewers' NACKs.

use std::time::{Duration, Instant};

/// Ring buffer of recently received packets of one publisher stream, indexed by
/// the publisher's sequence number.
///
/// One cache per incoming SSRC, shared by every viewer of the room (the room task
/// owns it, so no lock). Viewers NACK in *their* sequence space; their
/// [`TrackForwarder`](super::TrackForwarder) maps that back to `(source, seq)`.
///
/// Inserting never allocates after construction: a slot holds the packet by value
/// (`rtp::Packet` clones share the payload `Bytes`, and the room strips header
/// extensions before caching, so the header clone is allocation-free).
pub struct NackCache<P> {
    slots: Vec<Option<Slot<P>>>,
    mask: usize,
    max_age: Duration,
}

struct Slot<P> {
    seq: u16,
    at: Instant,
    packet: P,
}

impl<P> NackCache<P> {
    /// `capacity` is rounded up to a power of two (and at most 32768, half the
    /// sequence space, so a wrapped seq never aliases). `max_age` bounds how old a
    /// packet may be and still be resent (a retransmission later than that is useless
    /// to a player and just costs bandwidth).
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        let cap = capacity.clamp(16, 32768).next_power_of_two();
        let mut slots = Vec::with_capacity(cap);
        slots.resize_with(cap, || None);
        Self {
            slots,
            mask: cap - 1,
            max_age,
        }
    }

    /// Remember a packet.
    pub fn insert(&mut self, seq: u16, now: Instant, packet: P) {
        self.slots[seq as usize & self.mask] = Some(Slot {
            seq,
            at: now,
            packet,
        });
    }

    /// The packet with this sequence number, if still cached and not too old.
    pub fn get(&self, seq: u16, now: Instant) -> Option<&P> {
        match &self.slots[seq as usize & self.mask] {
            Some(s) if s.seq == seq && now.saturating_duration_since(s.at) <= self.max_age => {
                Some(&s.packet)
            }
            _ => None,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// Caps one viewer's retransmissions at a share of its bandwidth estimate.
///
/// On a congested link a viewer NACKs everything the bottleneck dropped, again
/// every round trip, and answering all of it multiplies the congestion: measured
/// with Chromium behind a 400 kbit/s bottleneck, the SFU sent 5.4 Mbit/s, mostly
/// retransmissions, and the viewer froze for 10 s. The budget refills at `share`
/// of the estimate and holds at most `burst` of it (a lost keyframe is a burst);
/// a NACKed packet that does not fit is not resent, and the player recovers with
/// a keyframe (which the lower layer the shrinking estimate selects brings anyway).
#[derive(Debug, Clone)]
pub struct RetransmitBudget {
    share: f64,
    burst: Duration,
    /// Bytes that may be resent now; `None` until first used (starts full).
    tokens: Option<f64>,
    last: Option<Instant>,
}

impl RetransmitBudget {
    /// Refill at `share` (0..1) of the estimate, hold at most `burst` worth.
    pub fn new(share: f64, burst: Duration) -> Self {
        Self {
            share,
            burst,
            tokens: None,
            last: None,
        }
    }

    /// May `bytes` be resent now to a viewer whose estimate is `estimate_bps`?
    /// If so they are taken from the budget.
    pub fn take(&mut self, bytes: usize, estimate_bps: u64, now: Instant) -> bool {
        let rate = self.share * estimate_bps as f64 / 8.0; // bytes per second
        let cap = rate * self.burst.as_secs_f64();
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last = Some(now);
        let tokens = self
            .tokens
            .map_or(cap, |t| t + rate * elapsed.as_secs_f64())
            .min(cap);
        let ok = tokens >= bytes as f64;
        self.tokens = Some(if ok { tokens - bytes as f64 } else { tokens });
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_are_capped_at_a_share_of_the_estimate() {
        let t0 = Instant::now();
        let mut b = RetransmitBudget::new(0.5, Duration::from_secs(1));
        // 400 kbit/s estimate: 25,000 bytes/s, a burst of 25,000 bytes.
        let sent = (0..40).filter(|_| b.take(1_000, 400_000, t0)).count();
        assert_eq!(sent, 25, "a lost keyframe's worth at once");
        assert!(!b.take(1_000, 400_000, t0 + Duration::from_millis(20)));
        // Then 25 packets a second, whatever the viewer asks for.
        let resent = (1..=100u64)
            .filter(|i| b.take(1_000, 400_000, t0 + Duration::from_millis(20 + 10 * i)))
            .count();
        assert_eq!(resent, 25);
        // A higher estimate allows more.
        let mut b = RetransmitBudget::new(0.5, Duration::from_secs(1));
        assert_eq!(
            (0..400).filter(|_| b.take(1_000, 4_000_000, t0)).count(),
            250
        );
    }

    #[test]
    fn hit_miss_age_and_wrap() {
        let t0 = Instant::now();
        let mut c = NackCache::new(1000, Duration::from_secs(1));
        assert_eq!(c.capacity(), 1024);
        for i in 0..2000u32 {
            let seq = (65000 + i) as u16; // wraps through 0
            c.insert(seq, t0, i);
        }
        // the newest 1024 are there, across the wrap
        assert_eq!(c.get((65000u32 + 1999) as u16, t0), Some(&1999));
        assert_eq!(c.get((65000u32 + 976) as u16, t0), Some(&976));
        // overwritten
        assert_eq!(c.get((65000u32 + 975) as u16, t0), None);
        assert_eq!(c.get(65000, t0), None);
        // too old
        assert_eq!(
            c.get((65000u32 + 1999) as u16, t0 + Duration::from_millis(1001)),
            None
        );
        assert_eq!(
            c.get((65000u32 + 1999) as u16, t0 + Duration::from_millis(1000)),
            Some(&1999)
        );
    }
}
