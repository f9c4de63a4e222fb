//! Latest-value slots: state that changes often (viewer counts, stock) goes
//! out at most once per interval, always with its newest value, and at once
//! when the change matters (an offer selling out). Sans-I/O.

use domain::UnixMillis;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct LatestSlot<T> {
    interval: Duration,
    last_emit: Option<UnixMillis>,
    pending: Option<T>,
}

impl<T> LatestSlot<T> {
    pub fn new(interval: Duration) -> LatestSlot<T> {
        LatestSlot {
            interval,
            last_emit: None,
            pending: None,
        }
    }

    /// A new value. Returns it when it should go out now (first value, the
    /// interval has passed, or `urgent`); otherwise keeps it, replacing any
    /// older pending value, for [`LatestSlot::poll`].
    pub fn offer(&mut self, value: T, now: UnixMillis, urgent: bool) -> Option<T> {
        let due = urgent || self.last_emit.is_none_or(|t| now.since(t) >= self.interval);
        if due {
            self.pending = None;
            self.last_emit = Some(now);
            Some(value)
        } else {
            self.pending = Some(value);
            None
        }
    }

    /// The pending value, once its interval has passed.
    pub fn poll(&mut self, now: UnixMillis) -> Option<T> {
        if self.pending.is_some() && self.last_emit.is_none_or(|t| now.since(t) >= self.interval) {
            self.last_emit = Some(now);
            return self.pending.take();
        }
        None
    }

    /// When [`LatestSlot::poll`] will have something, if ever.
    pub fn next_due(&self) -> Option<UnixMillis> {
        self.pending.as_ref()?;
        Some(
            self.last_emit
                .map_or(UnixMillis::EPOCH, |t| t.saturating_add(self.interval)),
        )
    }

    pub fn pending(&self) -> Option<&T> {
        self.pending.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    #[test]
    fn at_most_one_per_interval_with_the_latest_value() {
        let mut s = LatestSlot::new(Duration::from_secs(1));
        assert_eq!(
            s.offer(1, ms(0), false),
            Some(1),
            "first value goes at once"
        );
        assert_eq!(s.offer(2, ms(100), false), None);
        assert_eq!(s.offer(3, ms(200), false), None);
        assert_eq!(s.next_due(), Some(ms(1_000)));
        assert_eq!(s.poll(ms(999)), None);
        assert_eq!(s.poll(ms(1_000)), Some(3), "only the newest survives");
        assert_eq!(s.poll(ms(5_000)), None, "nothing pending");
        assert_eq!(s.next_due(), None);
        assert_eq!(
            s.offer(4, ms(2_500), false),
            Some(4),
            "interval passed: at once"
        );
    }

    #[test]
    fn urgent_values_skip_the_wait_and_replace_pending() {
        let mut s = LatestSlot::new(Duration::from_secs(1));
        s.offer("stock 9", ms(0), false);
        assert_eq!(s.offer("stock 8", ms(10), false), None);
        assert_eq!(s.offer("sold out", ms(20), true), Some("sold out"));
        assert_eq!(s.pending(), None, "the stale stock number is gone");
        assert_eq!(s.poll(ms(2_000)), None);
    }
}
