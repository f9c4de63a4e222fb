//! The sans-I/O forwarding core: every per-packet decision the SFU makes, as plain
//! structs with an explicit `now`, testable without sockets or sleeps and
//! benchmarkable with criterion.
//!
//! * [`TrackForwarder`] — per viewer and kind: follow one source, switch at
//!   keyframes, rewrite sequence numbers and timestamps, remember the mapping for NACKs.
//! * [`NackCache`] — per publisher stream: recent packets to answer NACKs from;
//!   [`RetransmitBudget`] — per viewer: how much of that it may be sent.
//! * [`KeyframeRequestLimiter`] — per publisher stream: at most one PLI per interval.
//! * [`RepairWatch`] — per publisher video stream: uplink holes that are not
//!   repaired in time, which call for a keyframe.
//! * [`DownlinkLoss`] — per viewer leg: the loss on the viewer's own link, from its
//!   receiver reports less the holes the publisher's uplink made.
//! * [`BandwidthEstimator`] + [`SimulcastSelector`] — per viewer: which layer fits.
//! * [`RateMeter`] — per publisher stream: measured bitrate of each layer.
//! * [`is_keyframe`] — VP8 / H.264 keyframe detection from the RTP payload;
//!   [`KeyframeDetector`] — per publisher stream: where each keyframe starts.

mod keyframe;
mod loss;
mod nack;
mod repair;
mod rewrite;
mod simulcast;

pub use keyframe::{KeyframeDetector, KeyframeRequestLimiter, VideoCodec, is_keyframe};
pub use loss::DownlinkLoss;
pub use nack::{NackCache, RetransmitBudget};
pub use repair::RepairWatch;
pub use rewrite::{Drop, Rewritten, SourceId, TrackForwarder};
pub use simulcast::{BandwidthEstimator, Selection, SimulcastSelector};

use std::time::{Duration, Instant};

/// Bitrate of a stream over a sliding window of about one second (two half-windows),
/// allocation-free.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    cur_start: Option<Instant>,
    cur_bytes: u64,
    prev_bps: u64,
    packets: u64,
    bytes: u64,
}

impl RateMeter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            cur_start: None,
            cur_bytes: 0,
            prev_bps: 0,
            packets: 0,
            bytes: 0,
        }
    }

    /// Count a packet of `bytes`.
    #[inline]
    pub fn add(&mut self, bytes: usize, now: Instant) {
        self.packets += 1;
        self.bytes += bytes as u64;
        let start = *self.cur_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= self.window {
            self.prev_bps = (self.cur_bytes * 8 * 1_000_000) / (elapsed.as_micros().max(1) as u64);
            self.cur_bytes = 0;
            self.cur_start = Some(now);
        }
        self.cur_bytes += bytes as u64;
    }

    /// Bits per second over the last complete window (0 when idle longer than two windows).
    pub fn bps(&self, now: Instant) -> u64 {
        match self.cur_start {
            Some(start) if now.saturating_duration_since(start) <= self.window * 2 => self.prev_bps,
            _ => 0,
        }
    }

    /// Total packets counted.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Total bytes counted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(1));
        for i in 0..=100u64 {
            m.add(1250, t0 + Duration::from_millis(10 * i));
        }
        // 100 packets * 1250 B in 1 s = 1 Mbit/s
        assert_eq!(m.bps(t0 + Duration::from_secs(1)), 1_000_000);
        assert_eq!(m.bps(t0 + Duration::from_secs(4)), 0);
        assert_eq!(m.packets(), 101);
    }
}
