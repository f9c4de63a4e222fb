//! A small log-linear histogram of non-negative integers (microseconds here).
//!
//! Values below 128 are counted exactly; above, each power of two is split
//! into 64 buckets, so a reported percentile is within 1.6 % of the true
//! value. Fixed memory (≈ 30 KB), O(1) record, mergeable across tasks: a
//! 60-second run at 200,000 deliveries per second would otherwise keep 12
//! million samples.

use serde::Serialize;

const EXACT: u64 = 128;
const SUB: u64 = 64;
const BUCKETS: usize = (EXACT + (64 - 7) * SUB) as usize;

/// Counts of values by bucket, plus exact count, sum, min and max.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .field("max", &self.max)
            .finish()
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let k = 63 - u64::from(v.leading_zeros()); // floor(log2 v), >= 7
    let shift = k - 6;
    let m = v >> shift; // 64..=127
    (EXACT + (k - 7) * SUB + (m - SUB)) as usize
}

/// The smallest and largest value that fall into bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, i);
    }
    let k = (i - EXACT) / SUB + 7;
    let m = (i - EXACT) % SUB + SUB;
    let shift = k - 6;
    let lo = m << shift;
    (lo, lo + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Count one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Add every value counted by `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// Arithmetic mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below which `p` percent of the counted values fall (the
    /// middle of its bucket, clamped to the observed min and max).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return (lo + (hi - lo) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Summary in milliseconds, for reports (values are microseconds).
    pub fn summary_ms(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: self.total,
            p50_ms: ms(self.percentile(50.0)),
            p90_ms: ms(self.percentile(90.0)),
            p99_ms: ms(self.percentile(99.0)),
            max_ms: ms(self.max),
            mean_ms: self.mean() / 1000.0,
        }
    }
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut last_hi = None;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert!(lo <= hi);
            if let Some(prev) = last_hi {
                assert_eq!(lo, prev + 1, "bucket {i} starts right after the previous");
            }
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            last_hi = Some(hi);
        }
        assert_eq!(last_hi, Some(u64::MAX));
    }

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 100_000);
        for (p, want) in [(50.0, 50_000.0), (90.0, 90_000.0), (99.0, 99_000.0)] {
            let got = h.percentile(p) as f64;
            assert!((got - want).abs() / want < 0.02, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.min(), 1);
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in [3, 3, 3, 7] {
            a.record(v);
        }
        b.record(100);
        a.merge(&b);
        assert_eq!(a.count(), 5);
        assert_eq!(a.percentile(50.0), 3);
        assert_eq!(a.percentile(80.0), 7);
        assert_eq!(a.percentile(100.0), 100);
        assert_eq!(Histogram::new().percentile(99.0), 0);
    }

    #[test]
    fn summary_is_in_milliseconds() {
        let mut h = Histogram::new();
        h.record(1_500);
        let s = h.summary_ms();
        assert_eq!(s.count, 1);
        assert!((s.p50_ms - 1.5).abs() < 0.03, "{s:?}");
        assert!((s.max_ms - 1.5).abs() < 1e-9);
    }
}
