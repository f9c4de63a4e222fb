//! A small, explained bandwidth estimator per viewer and the simulcast layer selector.
//!
//! webrtc-rs gives the SFU no estimate of a viewer's downlink, so we build one from
//! the feedback viewers already send:
//!
//! * **Receiver reports** (`fraction lost`): the loss-based half of GCC
//!   (draft-ietf-rmcat-gcc §6): loss > 10% ⇒ `sent × (1 − loss/2)`; loss < 2% ⇒
//!   grow 8% per second; in between hold. The decrease starts from what we
//!   actually send, not from an estimate that grew while the viewer needed less.
//! * **REMB** (`goog-remb`, which the SFU negotiates with viewers instead of
//!   transport-wide-cc): the receiver's delay-based estimate, read as a congestion
//!   *signal*, not as a cap. Chromium's receive-side estimator starts at the rate it
//!   measures coming in and never rises above 1.5× that rate, so on a link with
//!   room to spare REMB just follows what we send: capping the estimate with it
//!   dropped viewers on a perfect link from the top layer at the first REMB, and
//!   made every up-switch impossible (simulcast layers are 2–3× apart). What REMB
//!   does say reliably is *congestion*: when the receiver sees queues building it
//!   asks for `min(its last value, 0.85 × what arrived)`. So the estimate drops to
//!   the REMB when it goes down, and only then. A REMB below what we send says
//!   nothing by itself: Chromium's first REMB is the throughput it measured (under
//!   CPU load 0.74× what was sent, then climbing), and after an up-switch the REMB
//!   lags below the new rate for seconds. (Treating a REMB that stayed below what
//!   we send for 2 s as congestion was tried: it sent a viewer to audio only for
//!   20 s on a link that carried the lowest layer easily, while a receiver under
//!   CPU load held its REMB low. A congested up-switch shows as loss instead.)
//!
//! After a decrease the estimate does not decrease again for [`DECREASE_HOLD`]:
//! the feedback that follows still describes the rate before it (the switch to a
//! lower layer waits for its keyframe, and the bottleneck's queue then drains), so
//! reacting to it again would throw a viewer from the top layer to audio only in a
//! second on a link that carries the middle layer fine (GCC waits likewise).
//! The same holds for a while after video resumes from audio only: the first
//! report about the video stream counts the packets lost before the pause.
//!
//! Growth is capped at 4× what we send (or the starting estimate, if higher): an
//! app-limited link says nothing about the capacity above it, but without some
//! optimism no viewer would ever be moved up (the next layer needs 2–3× the
//! current one). The selector bounds the risk: up one layer at a time, only after
//! the link has allowed it for a while; an up-switch that ends in congestion goes
//! back to the layer it came from and makes the next attempt wait twice as long.

use std::time::{Duration, Instant};

/// Loss- and REMB-based downlink estimate for one viewer.
#[derive(Debug, Clone)]
pub struct BandwidthEstimator {
    bps: f64,
    initial_bps: f64,
    min_bps: f64,
    max_bps: f64,
    /// Last REMB.
    remb: Option<u64>,
    sent_bytes_window: u64,
    window_start: Option<Instant>,
    sent_rate_bps: f64,
    last_loss: f64,
    last_growth: Option<Instant>,
    congested_at: Option<Instant>,
    /// Until then, congestion signals describe the past and are ignored.
    quiet_until: Option<Instant>,
    /// How long the link must be calm before the lowest layer is tried again.
    lowest_retry: Duration,
    /// When the current retry of the lowest layer started, while on probation.
    retry_since: Option<Instant>,
    /// The last congestion signal, acted on or not (an echo inside a hold still
    /// says the link has not been calm).
    signal_at: Option<Instant>,
}

/// Growth per second of a clean link (GCC's multiplicative increase).
const GROWTH_PER_SEC: f64 = 1.08;
/// The estimate grows to at most this multiple of what we send.
const GROWTH_CAP_OVER_SENT: f64 = 4.0;
/// A clean report grows the estimate for at most this much time since the last:
/// after a long silence there is no evidence to grow on.
const MAX_GROWTH_STEP: Duration = Duration::from_secs(5);
/// A REMB this much below the previous one is the receiver backing off.
const REMB_DROP: f64 = 0.95;
/// After a decrease, further congestion signals are ignored this long.
const DECREASE_HOLD: Duration = Duration::from_secs(2);
/// After this long without congestion a viewer may have the lowest video
/// layer whatever its estimate says (see [`BandwidthEstimator::for_selection`]):
/// a short loss burst costs a viewer its picture for about this long.
const LOWEST_LAYER_RETRY: Duration = Duration::from_secs(2);
/// Each retry that ends in congestion within [`RETRY_PROBATION`] doubles the
/// wait, up to this: a link that cannot carry the lowest layer is not flooded
/// every two seconds.
const MAX_LOWEST_LAYER_RETRY: Duration = Duration::from_secs(16);
/// A retry of the lowest layer that sees no congestion this long has held.
const RETRY_PROBATION: Duration = Duration::from_secs(8);
/// Headroom the selector wants before moving up to a layer.
const UP_HEADROOM: f64 = 1.3;
/// After video resumes from audio only, loss reports are ignored this long
/// (a report interval, plus the keyframe wait, with margin).
const RESUME_QUIET: Duration = Duration::from_secs(3);

impl BandwidthEstimator {
    /// Start at `initial_bps` (clamped into `[min_bps, max_bps]`).
    pub fn new(initial_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        let initial = initial_bps.clamp(min_bps, max_bps) as f64;
        Self {
            bps: initial,
            initial_bps: initial,
            min_bps: min_bps as f64,
            max_bps: max_bps as f64,
            remb: None,
            sent_bytes_window: 0,
            window_start: None,
            sent_rate_bps: 0.0,
            last_loss: 0.0,
            last_growth: None,
            congested_at: None,
            quiet_until: None,
            lowest_retry: LOWEST_LAYER_RETRY,
            retry_since: None,
            signal_at: None,
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

    /// What we send by: the measured rate, or the estimate before one is measured.
    fn sending(&self) -> f64 {
        if self.sent_rate_bps > 0.0 {
            self.sent_rate_bps
        } else {
            self.bps
        }
    }

    /// The viewer's REMB: lowers the estimate when it goes down.
    pub fn on_remb(&mut self, bps: u64, now: Instant) {
        let backing_off = self
            .remb
            .is_some_and(|prev| (bps as f64) < prev as f64 * REMB_DROP);
        self.remb = Some(bps);
        if backing_off {
            self.congested(bps as f64, now);
        }
    }

    /// A receiver report block about our stream: `fraction_lost` is the RFC 3550
    /// 8-bit fixed-point fraction.
    pub fn on_fraction_lost(&mut self, fraction_lost: u8, now: Instant) {
        let loss = fraction_lost as f64 / 256.0;
        self.last_loss = loss;
        let since = self
            .last_growth
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(MAX_GROWTH_STEP);
        self.last_growth = Some(now);
        if loss > 0.10 {
            let base = self.bps.min(self.sending());
            self.congested(base * (1.0 - 0.5 * loss), now);
        } else if loss < 0.02 {
            let cap = (self.sent_rate_bps * GROWTH_CAP_OVER_SENT).max(self.initial_bps);
            let grown = (self.bps * GROWTH_PER_SEC.powf(since.as_secs_f64())).min(cap);
            self.bps = self.bps.max(grown).clamp(self.min_bps, self.max_bps);
        }
    }

    /// Video is sent again after audio only: the next reports about it still
    /// count what was lost before the pause.
    pub fn on_video_resumed(&mut self, now: Instant) {
        let until = now + RESUME_QUIET;
        self.quiet_until = Some(self.quiet_until.map_or(until, |q| q.max(until)));
    }

    /// The congestion that lowered the estimate came from trying a higher layer:
    /// the layer the viewer goes back to, which needs `bps`, was carried before.
    pub fn restore(&mut self, bps: u64) {
        self.bps = self.bps.max(bps as f64).clamp(self.min_bps, self.max_bps);
    }

    fn congested(&mut self, bps: f64, now: Instant) {
        // Even an echo says the link is not calm yet (see `for_selection`).
        self.signal_at = Some(now);
        if self.quiet_until.is_some_and(|q| now < q) {
            return; // still the echo of congestion already acted on
        }
        self.bps = self.bps.min(bps).clamp(self.min_bps, self.max_bps);
        self.congested_at = Some(now);
        if let Some(since) = self.retry_since.take()
            && now.saturating_duration_since(since) < RETRY_PROBATION
        {
            // The lowest layer did not fit after all: wait longer next time.
            self.lowest_retry = (self.lowest_retry * 2).min(MAX_LOWEST_LAYER_RETRY);
        }
        self.quiet_until = Some(now + DECREASE_HOLD);
    }

    /// Current estimate in bit/s.
    pub fn estimate(&self, _now: Instant) -> u64 {
        self.bps.max(0.0).round() as u64
    }

    /// The estimate the layer selector should see: never below what the
    /// lowest layer (`lowest_layer_bps`, 0 = not measured yet) needs with the
    /// selector's up-switch headroom, unless the link showed congestion (a
    /// signal acted on, or its echo during a hold) in the
    /// last [`LOWEST_LAYER_RETRY`] (doubled for each retry the link could not
    /// carry, up to [`MAX_LOWEST_LAYER_RETRY`]; back to the start once one holds).
    ///
    /// The estimate starts at a guess and grows only while it carries traffic,
    /// so a guess below a single-layer stream (OBS at 2.5 Mbit/s, a phone at
    /// 1.5) would hold every viewer on audio only with no evidence that its
    /// link is weak, and audio only gives it nothing to grow on. Evidence
    /// (loss, a REMB backing off) still sends a viewer to audio only; after a
    /// quiet spell it tries the lowest layer again.
    pub fn for_selection(&mut self, lowest_layer_bps: u64, audio_bps: u64, now: Instant) -> u64 {
        if self
            .retry_since
            .is_some_and(|t| now.saturating_duration_since(t) >= RETRY_PROBATION)
        {
            self.retry_since = None;
            self.lowest_retry = LOWEST_LAYER_RETRY;
        }
        let estimate = self.estimate(now);
        let calm = self
            .signal_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.lowest_retry);
        if !calm || lowest_layer_bps == 0 {
            return estimate;
        }
        let floor = (lowest_layer_bps as f64 * UP_HEADROOM) as u64 + audio_bps + 1;
        if floor > estimate && self.congested_at.is_some() && self.retry_since.is_none() {
            self.retry_since = Some(now);
        }
        estimate.max(floor)
    }

    /// How long the link must now be calm before the lowest layer is tried again.
    pub fn lowest_layer_retry(&self) -> Duration {
        self.lowest_retry
    }

    /// When the link last showed congestion (loss or a REMB backing off), if ever.
    pub fn congested_at(&self) -> Option<Instant> {
        self.congested_at
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
///   estimate does not flap between layers (every switch costs a keyframe), and go
///   one layer at a time.
/// * An up-switch is on probation for 8 s: if it is followed by a
///   down-switch within that time the link could not carry it. The viewer goes
///   back to the layer it came from, not below, if the estimate is still within
///   65% of what that layer needs: the congestion came from the attempt
///   (typically the new layer's keyframe overflowing the queue), and the
///   receiver's REMB then asks for 0.85× what *arrived*, a little less than the
///   old layer needs. [`take_restore`](Self::take_restore) tells the caller what
///   to restore the estimate to. (Far below that, the link itself collapsed and
///   the usual rule applies.) And the next up-switch waits twice as long (up to
///   16× `upgrade_hold`); one that holds resets the wait. A viewer on a link that
///   cannot take the next layer so tries it ever more rarely.
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
    /// The last up-switch, while on probation: when, and from which selection.
    probation: Option<(Instant, Selection)>,
    failed_upgrades: u32,
    restore: Option<u64>,
}

/// How long after an up-switch a down-switch counts against it.
const PROBATION: Duration = Duration::from_secs(8);

/// After a failed up-switch, an estimate at least this share of what the previous
/// layer needs is the echo of the attempt, not a collapse of the link.
const ECHO_OF_ATTEMPT: f64 = 0.65;

/// Failed up-switches counted: the wait doubles with each, up to 2^4 = 16×.
const MAX_FAILED: u32 = 4;

impl SimulcastSelector {
    /// A selector that waits `upgrade_hold` before moving up.
    pub fn new(upgrade_hold: Duration) -> Self {
        Self {
            current: None,
            upgrade_since: None,
            upgrade_hold,
            probation: None,
            failed_upgrades: 0,
            restore: None,
        }
    }

    /// The current selection, if any was made.
    pub fn current(&self) -> Option<Selection> {
        self.current
    }

    /// After a failed up-switch: the estimate (bit/s) the layer the viewer went
    /// back to needs. Taken once.
    pub fn take_restore(&mut self) -> Option<u64> {
        self.restore.take()
    }

    /// How long the estimate must allow a higher layer before moving up, now.
    pub fn hold(&self) -> Duration {
        self.upgrade_hold * (1u32 << self.failed_upgrades.min(MAX_FAILED))
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
        if self
            .probation
            .is_some_and(|(t, _)| now.saturating_duration_since(t) >= PROBATION)
        {
            // The last up-switch held.
            self.probation = None;
            self.failed_upgrades = 0;
        }
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
        let with_headroom = match fits(UP_HEADROOM) {
            Some(i) => Selection::Layer(i),
            None => Selection::AudioOnly,
        };
        let rank = |s: Selection| match s {
            Selection::AudioOnly => 0usize,
            Selection::Layer(i) => i + 1,
        };
        let hold = self.hold();

        let next = match self.current {
            None => {
                self.upgrade_since = None;
                sustainable
            }
            Some(cur) if rank(sustainable) < rank(cur) => {
                self.upgrade_since = None;
                match self.probation.take() {
                    Some((_, from)) => {
                        self.failed_upgrades = (self.failed_upgrades + 1).min(MAX_FAILED);
                        let need = |i: usize| rate(i) * 1.1 + audio_bps as f64;
                        match from {
                            Selection::Layer(i)
                                if rank(sustainable) < rank(from)
                                    && i < layer_bps.len()
                                    && estimate_bps as f64 >= need(i) * ECHO_OF_ATTEMPT =>
                            {
                                // (+1: the same sum must fit again after rounding)
                                self.restore = Some(need(i).ceil() as u64 + 1);
                                from
                            }
                            _ => sustainable,
                        }
                    }
                    None => sustainable,
                }
            }
            Some(cur) if rank(with_headroom) > rank(cur) => match self.upgrade_since {
                Some((cand, since))
                    if rank(cand) > rank(cur) && now.saturating_duration_since(since) >= hold =>
                {
                    self.upgrade_since = None;
                    self.probation = Some((now, cur));
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
    fn only_congestion_keeps_a_viewer_below_the_lowest_layer() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut e = BandwidthEstimator::new(1_000_000, 50_000, 10_000_000);
        // A 1.5 Mbit/s single layer above the 1 Mbit/s guess: allowed.
        let need = 1_500_000.0 * UP_HEADROOM + 40_000.0;
        assert!(e.for_selection(1_500_000, 40_000, t0) as f64 >= need);
        let mut sel = SimulcastSelector::new(Duration::from_secs(4));
        let est = e.for_selection(1_500_000, 40_000, t0);
        assert_eq!(
            sel.select(est, &[1_500_000], 40_000, t0),
            Selection::Layer(0)
        );
        // Heavy loss: the estimate itself decides, for a while.
        e.on_fraction_lost(128, s(1));
        assert_eq!(e.for_selection(1_500_000, 40_000, s(2)), e.estimate(s(2)));
        assert!((e.estimate(s(2)) as f64) < need);
        // Two quiet seconds later the lowest layer is tried again.
        assert!(e.for_selection(1_500_000, 40_000, s(3)) as f64 >= need);
        // Nothing measured yet: the selector's own guess applies.
        assert_eq!(e.for_selection(0, 40_000, s(3)), e.estimate(s(3)));
    }

    #[test]
    fn a_retry_the_link_cannot_carry_doubles_the_wait_and_one_that_holds_resets_it() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut e = BandwidthEstimator::new(1_000_000, 50_000, 10_000_000);
        let need =
            |e: &mut BandwidthEstimator, t| e.for_selection(1_500_000, 40_000, t) > e.estimate(t);
        e.on_fraction_lost(128, t0);
        assert!(!need(&mut e, ms(1_999)));
        assert!(need(&mut e, ms(2_000)), "retried after 2 s");
        // The retry ends in loss: 4 s next time, then 8 s.
        e.on_fraction_lost(128, ms(3_000));
        assert_eq!(e.lowest_layer_retry(), Duration::from_secs(4));
        assert!(!need(&mut e, ms(6_999)));
        assert!(need(&mut e, ms(7_000)));
        e.on_fraction_lost(128, ms(8_000));
        assert_eq!(e.lowest_layer_retry(), Duration::from_secs(8));
        assert!(need(&mut e, ms(16_000)));
        // This one holds through its probation: back to 2 s.
        assert!(need(&mut e, ms(24_000)));
        assert_eq!(e.lowest_layer_retry(), LOWEST_LAYER_RETRY);
        // Congestion long after a retry held is news, not a failed retry.
        e.on_fraction_lost(128, ms(40_000));
        assert_eq!(e.lowest_layer_retry(), LOWEST_LAYER_RETRY);
    }

    /// Feed `bps` of sent media over `secs` seconds, ending at `t`.
    fn send(e: &mut BandwidthEstimator, bps: u64, t: Instant, secs: u64) {
        let per_100ms = (bps / 80) as usize; // bytes per 100 ms
        let start = t - Duration::from_secs(secs);
        e.on_sent(0, start);
        for i in 1..=secs * 10 {
            e.on_sent(per_100ms, start + Duration::from_millis(100 * i));
        }
    }

    #[test]
    fn remb_pulls_the_estimate_down_only_when_the_receiver_backs_off() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut e = BandwidthEstimator::new(1_000_000, 50_000, 10_000_000);
        send(&mut e, 500_000, t0, 2);
        // Chromium's first REMB is about what arrives, and it climbs slowly after:
        // no reason to move a viewer off the layer that produces it.
        e.on_remb(470_000, t0);
        assert_eq!(e.estimate(t0), 1_000_000);
        e.on_remb(480_000, t0);
        e.on_remb(480_000, t0);
        assert_eq!(e.estimate(t0), 1_000_000);
        assert_eq!(e.congested_at(), None);
        // The receiver saw queues building: it asks for less than before.
        let t1 = t0 + Duration::from_secs(1);
        e.on_remb(400_000, t1);
        assert_eq!(e.estimate(t1), 400_000);
        assert_eq!(e.congested_at(), Some(t1));
        // Holding at that value says nothing new.
        e.on_remb(400_000, t1);
        assert_eq!(e.estimate(t1), 400_000);
        // What follows at once is the echo of the same congestion (the lower
        // layer is not flowing yet, the queue still drains): no second cut.
        e.on_remb(300_000, t1 + Duration::from_millis(500));
        e.on_fraction_lost(64, t1 + Duration::from_millis(700));
        assert_eq!(e.estimate(t1), 400_000);
        // Later, congestion is news again.
        let t2 = t1 + DECREASE_HOLD;
        e.on_remb(250_000, t2);
        assert_eq!(e.estimate(t2), 250_000);
        assert_eq!(e.congested_at(), Some(t2));

        // A REMB below what we send, even far below and for long, is no
        // congestion by itself: after an up-switch it lags for seconds, and a
        // receiver under CPU load holds it low.
        let mut e = BandwidthEstimator::new(1_000_000, 50_000, 10_000_000);
        send(&mut e, 1_000_000, t0, 2);
        for i in 0..40 {
            e.on_remb(300_000, t0 + Duration::from_millis(250 * i));
        }
        assert_eq!(e.congested_at(), None);
        // Chromium's first REMB under CPU load: the throughput it measured, then
        // climbing. Not congestion.
        let mut e = BandwidthEstimator::new(1_000_000, 50_000, 10_000_000);
        send(&mut e, 517_000, t0, 2);
        for (i, remb) in [384_000, 390_000, 397_000, 405_000, 412_000, 412_000]
            .into_iter()
            .enumerate()
        {
            e.on_remb(remb, t0 + Duration::from_millis(250 * i as u64));
        }
        assert_eq!(e.congested_at(), None);
    }

    #[test]
    fn reports_straddling_a_video_pause_do_not_count() {
        let t0 = Instant::now();
        let mut e = BandwidthEstimator::new(200_000, 50_000, 10_000_000);
        e.on_video_resumed(t0);
        // The first report about the resumed video counts the packets lost
        // before the pause.
        e.on_fraction_lost(128, t0 + Duration::from_secs(1));
        assert_eq!(e.estimate(t0), 200_000);
        assert_eq!(e.congested_at(), None);
        // Loss after that is news.
        e.on_fraction_lost(128, t0 + RESUME_QUIET);
        assert_eq!(e.estimate(t0), 150_000);
    }

    #[test]
    fn loss_backs_off_from_what_is_sent_and_a_clean_link_grows_back() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut e = BandwidthEstimator::new(2_000_000, 50_000, 10_000_000);
        send(&mut e, 1_000_000, t0, 2);
        e.on_fraction_lost(0, t0);
        assert_eq!(e.estimate(t0), 2_000_000);
        // 25% loss while sending 1 Mbit/s -> 1 Mbit/s x 0.875
        e.on_fraction_lost(64, s(1));
        assert_eq!(e.estimate(s(1)), 875_000);
        assert_eq!(e.congested_at(), Some(s(1)));
        // 5% loss: hold
        e.on_fraction_lost(13, s(3));
        assert_eq!(e.estimate(s(3)), 875_000);
        // Clean: 8% per second however often the reports come.
        e.on_fraction_lost(0, s(4));
        for i in 0..10 {
            e.on_fraction_lost(0, s(4) + Duration::from_millis(100 * (i + 1)));
        }
        assert_eq!(e.estimate(s(5)), 1_020_600, "2 s since the last report");
        // After a long silence a clean report grows it by at most 5 s' worth.
        e.on_fraction_lost(0, s(60));
        assert_eq!(
            e.estimate(s(60)),
            (1_020_600.0 * 1.08f64.powi(5)).round() as u64
        );
        // Up to 4x what is sent (the next layer must stay reachable, but an idle
        // estimate should not float off).
        for i in 0..100 {
            e.on_fraction_lost(0, s(61 + i));
        }
        assert_eq!(e.estimate(s(200)), 4_000_000);
        // Sending little, it keeps at least the starting estimate's room.
        let mut e = BandwidthEstimator::new(1_000_000, 50_000, 10_000_000);
        send(&mut e, 40_000, t0, 2);
        e.on_fraction_lost(128, t0);
        assert_eq!(e.estimate(t0), 50_000, "audio only at 40 kbit/s, half lost");
        for i in 0..100 {
            e.on_fraction_lost(0, s(1 + i));
        }
        assert_eq!(e.estimate(s(200)), 1_000_000);
    }

    #[test]
    fn a_failed_upgrade_goes_back_to_the_layer_it_came_from() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let layers = [100_000, 230_000, 460_000];
        let mut sel = SimulcastSelector::new(Duration::from_secs(1));
        assert_eq!(
            sel.select(400_000, &layers, 40_000, s(0)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(900_000, &layers, 40_000, s(1)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(900_000, &layers, 40_000, s(2)),
            Selection::Layer(2)
        );
        assert_eq!(sel.take_restore(), None);
        // The top layer's keyframe overflows the queue; the receiver asks for
        // 0.85x what arrived (the middle layer): less than the middle layer needs.
        assert_eq!(
            sel.select(210_000, &layers, 40_000, s(3)),
            Selection::Layer(1)
        );
        let need = sel.take_restore().expect("what to restore");
        assert!((293_000..=293_002).contains(&need), "{need}");
        assert_eq!(sel.take_restore(), None);
        // With the estimate restored, it stays there.
        assert_eq!(sel.select(need, &layers, 40_000, s(4)), Selection::Layer(1));
        // Congestion on the middle layer itself (no probation) goes lower.
        assert_eq!(
            sel.select(200_000, &layers, 40_000, s(5)),
            Selection::Layer(0)
        );
        assert_eq!(sel.take_restore(), None);
        // An up-switch after which the link collapses altogether (far below what
        // the layer before needs) is no echo: down as far as it takes.
        let mut sel = SimulcastSelector::new(Duration::from_secs(1));
        assert_eq!(
            sel.select(400_000, &layers, 40_000, s(0)),
            Selection::Layer(1)
        );
        sel.select(900_000, &layers, 40_000, s(1));
        assert_eq!(
            sel.select(900_000, &layers, 40_000, s(2)),
            Selection::Layer(2)
        );
        assert_eq!(
            sel.select(150_000, &layers, 40_000, s(3)),
            Selection::Layer(0)
        );
        assert_eq!(sel.take_restore(), None);
        assert_eq!(sel.hold(), Duration::from_secs(2), "still a failed attempt");
    }

    #[test]
    fn a_failed_upgrade_doubles_the_wait_and_one_that_holds_resets_it() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let layers = [150_000, 500_000, 1_500_000];
        let mut sel = SimulcastSelector::new(Duration::from_secs(1));
        assert_eq!(
            sel.select(700_000, &layers, 40_000, s(0)),
            Selection::Layer(1)
        );
        // The estimate allows the top layer: up after the hold.
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(1)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(2)),
            Selection::Layer(2)
        );
        // ... but the link could not carry it: down, and the next try waits 2 s.
        assert_eq!(
            sel.select(700_000, &layers, 40_000, s(3)),
            Selection::Layer(1)
        );
        assert_eq!(sel.hold(), Duration::from_secs(2));
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(4)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(5)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(6)),
            Selection::Layer(2)
        );
        assert_eq!(
            sel.select(700_000, &layers, 40_000, s(7)),
            Selection::Layer(1)
        );
        assert_eq!(sel.hold(), Duration::from_secs(4));
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(8)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(11)),
            Selection::Layer(1)
        );
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(12)),
            Selection::Layer(2)
        );
        // This time it holds through the probation: the wait is back to 1 s, and
        // a later down-switch (the link changed) does not count against it.
        assert_eq!(
            sel.select(3_000_000, &layers, 40_000, s(12) + PROBATION),
            Selection::Layer(2)
        );
        assert_eq!(sel.hold(), Duration::from_secs(1));
        assert_eq!(
            sel.select(700_000, &layers, 40_000, s(13) + PROBATION),
            Selection::Layer(1)
        );
        assert_eq!(sel.hold(), Duration::from_secs(1));
        // The wait never exceeds 16x.
        for i in 0..20 {
            let t = s(100 + 100 * i);
            sel.select(3_000_000, &layers, 40_000, t);
            sel.select(3_000_000, &layers, 40_000, t + Duration::from_secs(50));
            sel.select(700_000, &layers, 40_000, t + Duration::from_secs(51));
        }
        assert_eq!(sel.hold(), Duration::from_secs(16));
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
