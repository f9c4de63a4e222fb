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

#[cfg(test)]
mod tests {
    use super::*;

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
