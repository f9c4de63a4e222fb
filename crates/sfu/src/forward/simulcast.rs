//! A small, explained bandwidth estimator per viewer and the simulcast layer selector.
//!
//! webrtc-rs gives the SFU no estimate of a viewer's downlink, so we build one from
//! the feedback viewers already send:
//!
//! * **REMB** (`goog-remb`, which the SFU negotiates with viewers instead of
//!   transport-wide-cc): the receiver's own delay-based estimate. Taken as a hard cap.
//! * **Receiver reports** (`fraction lost`, every ~1 s): the loss-based half of GCC
//!   (draft-ietf-rmcat-gcc §6): loss > 10% ⇒ `rate × (1 − loss/2)`; loss < 2% ⇒
//!   grow 8% per report; in between hold. Growth is capped at 1.5× what we actually
//!   sent (an app-limited link says nothing about capacity above that).
//!
//! The estimate is `min(loss_based, remb)`. The selector then maps it onto layers.

use std::time::{Duration, Instant};

/// Loss- and REMB-based downlink estimate for one viewer.
#[derive(Debug, Clone)]
pub struct BandwidthEstimator {
    loss_based_bps: f64,
    remb: Option<(u64, Instant)>,
    min_bps: f64,
    max_bps: f64,
    sent_bytes_window: u64,
    window_start: Option<Instant>,
    sent_rate_bps: f64,
    last_loss: f64,
}

/// How long a REMB value stays authoritative without being refreshed.
const REMB_TTL: Duration = Duration::from_secs(5);

impl BandwidthEstimator {
    /// Start at `initial_bps` (clamped into `[min_bps, max_bps]`).
    pub fn new(initial_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        Self {
            loss_based_bps: initial_bps.clamp(min_bps, max_bps) as f64,
            remb: None,
            min_bps: min_bps as f64,
            max_bps: max_bps as f64,
            sent_bytes_window: 0,
            window_start: None,
            sent_rate_bps: 0.0,
            last_loss: 0.0,
        }
    }

    /// Account bytes sent to this viewer (media + retransmissions).
    #[inline]
    pub fn on_sent(&mut self, bytes: usize, now: Instant) {
        self.sent_bytes_window += bytes as u64;
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_millis(500) {
            let rate = self.sent_bytes_window as f64 * 8.0 / elapsed.as_secs_f64();
            self.sent_rate_bps = if self.sent_rate_bps == 0.0 {
                rate
            } else {
                0.5 * self.sent_rate_bps + 0.5 * rate
            };
            self.sent_bytes_window = 0;
            self.window_start = Some(now);
        }
    }

    /// The viewer's REMB.
    pub fn on_remb(&mut self, bps: u64, now: Instant) {
        self.remb = Some((bps, now));
    }

    /// A receiver report block about our stream: `fraction_lost` is the RFC 3550
    /// 8-bit fixed-point fraction.
    pub fn on_fraction_lost(&mut self, fraction_lost: u8, _now: Instant) {
        let loss = fraction_lost as f64 / 256.0;
        self.last_loss = loss;
        if loss > 0.10 {
            self.loss_based_bps *= 1.0 - 0.5 * loss;
        } else if loss < 0.02 {
            let grown = self.loss_based_bps * 1.08;
            let cap = (self.sent_rate_bps * 1.5).max(self.loss_based_bps);
            self.loss_based_bps = grown.min(cap.max(self.min_bps));
        }
        self.loss_based_bps = self.loss_based_bps.clamp(self.min_bps, self.max_bps);
    }

    /// Current estimate in bit/s.
    pub fn estimate(&self, now: Instant) -> u64 {
        let mut est = self.loss_based_bps;
        if let Some((remb, at)) = self.remb
            && now.saturating_duration_since(at) <= REMB_TTL
        {
            est = est.min(remb as f64);
        }
        est.max(0.0) as u64
    }

    /// Last reported loss fraction (0..1).
    pub fn last_loss(&self) -> f64 {
        self.last_loss
    }

    /// Smoothed rate actually sent to the viewer, bit/s.
    pub fn sent_rate(&self) -> u64 {
        self.sent_rate_bps as u64
    }
}

/// What a viewer should receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Video layer index (0 = lowest) plus audio.
    Layer(usize),
    /// No video at all: the link cannot carry even the lowest layer.
    AudioOnly,
}

/// Picks a simulcast layer for one viewer from its bandwidth estimate.
///
/// * Down-switches happen at once when the current layer no longer fits
///   (`layer_bps × 1.1 + audio > estimate`).
/// * Up-switches need headroom (`× 1.3`) held for `upgrade_hold`, so a noisy
///   estimate does not flap between layers (every switch costs a keyframe).
/// * If even the lowest layer does not fit (`× 0.8` tolerance, since the lowest layer is
///   the last resort) the viewer falls back to audio only, and comes back with the
///   same hysteresis.
///
/// The forwarder performs the actual switch at the next keyframe of the new layer.
#[derive(Debug, Clone)]
pub struct SimulcastSelector {
    current: Option<Selection>,
    upgrade_since: Option<(Selection, Instant)>,
    upgrade_hold: Duration,
}

impl SimulcastSelector {
    /// A selector that waits `upgrade_hold` before moving up.
    pub fn new(upgrade_hold: Duration) -> Self {
        Self {
            current: None,
            upgrade_since: None,
            upgrade_hold,
        }
    }

    /// The current selection, if any was made.
    pub fn current(&self) -> Option<Selection> {
        self.current
    }

    /// Choose given the estimate, the measured bitrate of each video layer (lowest
    /// first; 0 = not measured yet, a default guess is used), and the audio bitrate.
    pub fn select(
        &mut self,
        estimate_bps: u64,
        layer_bps: &[u64],
        audio_bps: u64,
        now: Instant,
    ) -> Selection {
        if layer_bps.is_empty() {
            self.current = Some(Selection::AudioOnly);
            return Selection::AudioOnly;
        }
        let budget = estimate_bps.saturating_sub(audio_bps) as f64;
        let rate = |i: usize| -> f64 {
            let measured = layer_bps[i];
            if measured > 0 {
                measured as f64
            } else {
                // Typical browser simulcast ladder when nothing is measured yet.
                [150_000.0, 500_000.0, 1_500_000.0][i.min(2)]
            }
        };
        // Highest layer that fits without headroom (used for down decisions),
        // and with headroom (used for up decisions).
        let fits = |factor: f64| -> Option<usize> {
            (0..layer_bps.len())
                .rev()
                .find(|&i| rate(i) * factor <= budget)
        };
        let sustainable = match fits(1.1) {
            Some(i) => Selection::Layer(i),
            None if rate(0) * 0.8 <= budget => Selection::Layer(0),
            None => Selection::AudioOnly,
        };
        let with_headroom = match fits(1.3) {
            Some(i) => Selection::Layer(i),
            None => Selection::AudioOnly,
        };
        let rank = |s: Selection| match s {
            Selection::AudioOnly => 0usize,
            Selection::Layer(i) => i + 1,
        };

        let next = match self.current {
            None => {
                self.upgrade_since = None;
                sustainable
            }
            Some(cur) if rank(sustainable) < rank(cur) => {
                self.upgrade_since = None;
                sustainable
            }
            Some(cur) if rank(with_headroom) > rank(cur) => match self.upgrade_since {
                Some((cand, since))
                    if rank(cand) > rank(cur)
                        && now.saturating_duration_since(since) >= self.upgrade_hold =>
                {
                    self.upgrade_since = None;
                    // move up one step at a time
                    match cur {
                        Selection::AudioOnly => Selection::Layer(0),
                        Selection::Layer(i) => Selection::Layer((i + 1).min(layer_bps.len() - 1)),
                    }
                }
                Some((cand, _)) if rank(cand) > rank(cur) => cur,
                _ => {
                    self.upgrade_since = Some((with_headroom, now));
                    cur
                }
            },
            Some(cur) => {
                self.upgrade_since = None;
                // layers may have disappeared (publisher reconnected with fewer)
                match cur {
                    Selection::Layer(i) if i >= layer_bps.len() => {
                        Selection::Layer(layer_bps.len() - 1)
                    }
                    other => other,
                }
            }
        };
        self.current = Some(next);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_loss_and_remb() {
        let t0 = Instant::now();
        let mut e = BandwidthEstimator::new(2_000_000, 50_000, 10_000_000);
        assert_eq!(e.estimate(t0), 2_000_000);
        // 25% loss -> x0.875
        e.on_fraction_lost(64, t0);
        assert_eq!(e.estimate(t0), 1_750_000);
        e.on_remb(300_000, t0);
        assert_eq!(e.estimate(t0), 300_000);
        // REMB expires
        assert_eq!(e.estimate(t0 + Duration::from_secs(6)), 1_750_000);
        // no growth beyond 1.5x sent rate: sent nothing -> capped at current
        e.on_fraction_lost(0, t0);
        assert_eq!(e.estimate(t0 + Duration::from_secs(6)), 1_750_000);
        // sending 2 Mbit/s lets it grow
        for i in 0..=10u64 {
            e.on_sent(25_000, t0 + Duration::from_millis(100 * i));
        }
        e.on_fraction_lost(0, t0);
        assert_eq!(e.estimate(t0 + Duration::from_secs(6)), 1_890_000);
    }

    #[test]
    fn selector_downgrades_at_once_upgrades_after_hold_and_falls_back_to_audio() {
        let t0 = Instant::now();
        let layers = [150_000, 500_000, 1_500_000];
        let mut s = SimulcastSelector::new(Duration::from_secs(2));
        assert_eq!(
            s.select(3_000_000, &layers, 40_000, t0),
            Selection::Layer(2)
        );
        // estimate drops: immediately to the middle layer
        assert_eq!(
            s.select(800_000, &layers, 40_000, t0 + Duration::from_secs(1)),
            Selection::Layer(1)
        );
        // very weak link: audio only
        assert_eq!(
            s.select(120_000, &layers, 40_000, t0 + Duration::from_secs(2)),
            Selection::AudioOnly
        );
        // recovers: needs the hold time before going up, then one step at a time
        let t = t0 + Duration::from_secs(3);
        assert_eq!(
            s.select(5_000_000, &layers, 40_000, t),
            Selection::AudioOnly
        );
        assert_eq!(
            s.select(5_000_000, &layers, 40_000, t + Duration::from_secs(1)),
            Selection::AudioOnly
        );
        assert_eq!(
            s.select(5_000_000, &layers, 40_000, t + Duration::from_secs(2)),
            Selection::Layer(0)
        );
        assert_eq!(
            s.select(5_000_000, &layers, 40_000, t + Duration::from_secs(3)),
            Selection::Layer(0)
        );
        assert_eq!(
            s.select(5_000_000, &layers, 40_000, t + Duration::from_secs(5)),
            Selection::Layer(1)
        );
    }

    #[test]
    fn single_layer_and_no_layers() {
        let t0 = Instant::now();
        let mut s = SimulcastSelector::new(Duration::from_secs(1));
        assert_eq!(
            s.select(2_000_000, &[1_200_000], 40_000, t0),
            Selection::Layer(0)
        );
        // between 0.8x and 1.1x of the only layer: keep it
        assert_eq!(
            s.select(1_100_000, &[1_200_000], 40_000, t0),
            Selection::Layer(0)
        );
        assert_eq!(
            s.select(500_000, &[1_200_000], 40_000, t0),
            Selection::AudioOnly
        );
        assert_eq!(s.select(500_000, &[], 40_000, t0), Selection::AudioOnly);
    }
}
