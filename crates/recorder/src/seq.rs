//! Unwrapping RTP's wrapping counters (16-bit sequence numbers, 32-bit
//! timestamps) into monotonic 64-bit values.

/// Extends a wrapping counter: each value is taken as the one nearest to the
/// previous (so a step back of less than half the range is a reordering, not a
/// wrap).
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    /// A 16-bit sequence number, extended.
    pub fn seq(&mut self, seq: u16) -> i64 {
        self.extend(i64::from(seq), 1 << 16)
    }

    /// A 32-bit RTP timestamp, extended.
    pub fn timestamp(&mut self, ts: u32) -> i64 {
        self.extend(i64::from(ts), 1 << 32)
    }

    fn extend(&mut self, value: i64, range: i64) -> i64 {
        let extended = match self.last {
            None => value,
            Some(last) => {
                let mut diff = (value - last).rem_euclid(range);
                if diff >= range / 2 {
                    diff -= range;
                }
                last + diff
            }
        };
        // Only forward steps move the reference: a late packet must not drag it back.
        if self.last.is_none_or(|last| extended > last) {
            self.last = Some(extended);
        }
        extended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_forward_and_late_ones_stay_behind() {
        let mut u = Unwrapper::default();
        assert_eq!(u.seq(65_534), 65_534);
        assert_eq!(u.seq(65_535), 65_535);
        assert_eq!(u.seq(0), 65_536);
        assert_eq!(u.seq(65_535), 65_535, "a late packet from before the wrap");
        assert_eq!(u.seq(2), 65_538);
    }

    #[test]
    fn timestamps_wrap_at_32_bits() {
        let mut u = Unwrapper::default();
        assert_eq!(u.timestamp(u32::MAX - 1_500), i64::from(u32::MAX) - 1_500);
        assert_eq!(u.timestamp(1_500), (1 << 32) + 1_500);
        assert_eq!(u.timestamp(u32::MAX), i64::from(u32::MAX), "reordered");
    }
}
