//! Puts one stream's packets back in sequence order.
//!
//! Packets arrive reordered (and retransmitted late) on real uplinks. The
//! buffer holds out-of-order packets until the gap fills, or until it has
//! waited `max_wait` or holds `max_held` packets; then it gives up on the
//! missing ones and says so, so the frame assembler can drop a broken frame.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::seq::Unwrapper;

/// A packet released in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<T> {
    /// The extended sequence number.
    pub seq: i64,
    /// Packets before this one were given up on.
    pub after_gap: bool,
    /// The packet.
    pub item: T,
}

/// The reorder buffer of one stream.
#[derive(Debug)]
pub struct Reorder<T> {
    unwrap: Unwrapper,
    next: Option<i64>,
    held: BTreeMap<i64, (Instant, T)>,
    max_held: usize,
    max_wait: Duration,
}

impl<T> Reorder<T> {
    /// A buffer that waits at most `max_wait` for a missing packet, holding at
    /// most `max_held` packets meanwhile.
    pub fn new(max_wait: Duration, max_held: usize) -> Self {
        Self {
            unwrap: Unwrapper::default(),
            next: None,
            held: BTreeMap::new(),
            max_held: max_held.max(1),
            max_wait,
        }
    }

    /// Takes a packet received at `now`; returns the packets now in order.
    /// Duplicates and packets older than what was already released are dropped.
    pub fn push(&mut self, seq: u16, item: T, now: Instant) -> Vec<Released<T>> {
        let seq = self.unwrap.seq(seq);
        let next = *self.next.get_or_insert(seq);
        if seq >= next {
            self.held.entry(seq).or_insert((now, item));
        }
        self.release(now)
    }

    /// Releases what waited too long (call when no packet came for a while).
    pub fn release(&mut self, now: Instant) -> Vec<Released<T>> {
        let mut out = Vec::new();
        let mut after_gap = false;
        while let Some(next) = self.next {
            if let Some((_, item)) = self.held.remove(&next) {
                out.push(Released {
                    seq: next,
                    after_gap,
                    item,
                });
                after_gap = false;
                self.next = Some(next + 1);
                continue;
            }
            let Some((&first, &(arrived, _))) = self.held.iter().next() else {
                break;
            };
            let waited = now.saturating_duration_since(arrived) >= self.max_wait;
            if waited || self.held.len() > self.max_held {
                self.next = Some(first);
                after_gap = true;
                continue;
            }
            break;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(released: &[Released<u16>]) -> Vec<(u16, bool)> {
        released.iter().map(|r| (r.item, r.after_gap)).collect()
    }

    #[test]
    fn a_swapped_pair_comes_out_in_order_without_a_gap() {
        let now = Instant::now();
        let mut r = Reorder::new(Duration::from_millis(200), 64);
        assert_eq!(seqs(&r.push(10, 10, now)), [(10, false)]);
        assert!(r.push(12, 12, now).is_empty());
        assert_eq!(seqs(&r.push(11, 11, now)), [(11, false), (12, false)]);
        assert!(r.push(11, 11, now).is_empty(), "a duplicate is dropped");
        assert!(r.push(9, 9, now).is_empty(), "too late");
    }

    #[test]
    fn a_lost_packet_is_given_up_after_the_wait_and_flagged() {
        let start = Instant::now();
        let mut r = Reorder::new(Duration::from_millis(200), 64);
        r.push(1, 1, start);
        assert!(r.push(3, 3, start).is_empty());
        assert!(r.release(start + Duration::from_millis(100)).is_empty());
        let later = r.release(start + Duration::from_millis(250));
        assert_eq!(seqs(&later), [(3, true)]);
        assert_eq!(seqs(&r.push(4, 4, start)), [(4, false)]);
    }

    #[test]
    fn a_full_buffer_gives_up_at_once_and_order_survives_the_wrap() {
        let now = Instant::now();
        let mut r = Reorder::new(Duration::from_secs(10), 2);
        r.push(65_534, 65_534, now);
        assert!(r.push(0, 0, now).is_empty());
        assert!(r.push(1, 1, now).is_empty());
        assert_eq!(
            seqs(&r.push(2, 2, now)),
            [(0, true), (1, false), (2, false)]
        );
    }
}
