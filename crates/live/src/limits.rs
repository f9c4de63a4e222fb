//! Who may post now: the per-person rate limit, slow mode and the flood mute.
//! Sans-I/O: every method takes `now` (Unix milliseconds).

use crate::config::LiveConfig;
use domain::UnixMillis;
use std::collections::VecDeque;
use std::time::Duration;

/// Why a message may not be posted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateRefusal {
    /// Muted for flooding until `until` (this refusal may be the one that
    /// started the mute: see `just_muted`).
    Flooding { until: UnixMillis, just_muted: bool },
    /// Over the rate limit; try again in `retry_after_ms`.
    RateLimited { retry_after_ms: u64 },
    /// Slow mode: this person posted less than the slow-mode interval ago.
    SlowMode { retry_after_ms: u64 },
}

/// The rate limits that apply to everyone in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateRules {
    pub burst: u32,
    pub per_minute: u32,
    pub flood_strikes: u32,
    pub flood_window: Duration,
    pub flood_mute: Duration,
}

impl GateRules {
    pub fn from_config(c: &LiveConfig) -> GateRules {
        GateRules {
            burst: c.chat_burst.max(1),
            per_minute: c.chat_per_minute.max(1),
            flood_strikes: c.flood_strikes.max(1),
            flood_window: c.flood_window,
            flood_mute: c.flood_mute,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_millis((60_000 / u64::from(self.per_minute)).max(1))
    }
}

/// One person's chat gate in one room.
///
/// The rate limit is a GCRA token bucket: `burst` messages at once, then one
/// every `60 s / per_minute`. Each refusal for rate is a strike; `flood_strikes`
/// strikes within `flood_window` mute the person for `flood_mute`, so a
/// flooding client gets told and stopped rather than silently dropped.
#[derive(Clone, Debug, Default)]
pub struct ChatGate {
    /// Theoretical arrival time of the next message (GCRA).
    tat: UnixMillis,
    last_post: Option<UnixMillis>,
    strikes: VecDeque<UnixMillis>,
    muted_until: Option<UnixMillis>,
}

impl ChatGate {
    /// Decides whether a message may go out at `now`; when it may, the
    /// message is counted. `slow_mode` is zero when slow mode is off or the
    /// sender is exempt.
    pub fn check(
        &mut self,
        rules: &GateRules,
        slow_mode: Duration,
        now: UnixMillis,
    ) -> Result<(), GateRefusal> {
        if let Some(until) = self.muted_until {
            if now < until {
                return Err(GateRefusal::Flooding {
                    until,
                    just_muted: false,
                });
            }
            self.muted_until = None;
            self.strikes.clear();
        }

        let interval = rules.interval();
        let tolerance = interval.saturating_mul(rules.burst - 1);
        let tat = self.tat.max(now);
        let earliest = tat.saturating_sub(tolerance);
        if earliest > now {
            while self
                .strikes
                .front()
                .is_some_and(|t| *t <= now.saturating_sub(rules.flood_window))
            {
                self.strikes.pop_front();
            }
            self.strikes.push_back(now);
            if self.strikes.len() >= rules.flood_strikes as usize {
                let until = now.saturating_add(rules.flood_mute);
                self.muted_until = Some(until);
                return Err(GateRefusal::Flooding {
                    until,
                    just_muted: true,
                });
            }
            return Err(GateRefusal::RateLimited {
                retry_after_ms: millis(earliest.since(now)),
            });
        }

        if !slow_mode.is_zero()
            && let Some(last) = self.last_post
            && now < last.saturating_add(slow_mode)
        {
            return Err(GateRefusal::SlowMode {
                retry_after_ms: millis(last.saturating_add(slow_mode).since(now)),
            });
        }

        self.tat = tat.saturating_add(interval);
        self.last_post = Some(now);
        Ok(())
    }

    pub fn muted_until(&self, now: UnixMillis) -> Option<UnixMillis> {
        self.muted_until.filter(|until| *until > now)
    }

    /// Nothing here affects a decision any more: the entry can be dropped.
    pub fn is_idle(&self, rules: &GateRules, slow_mode: Duration, now: UnixMillis) -> bool {
        self.muted_until(now).is_none()
            && self.tat <= now
            && self
                .strikes
                .back()
                .is_none_or(|t| *t <= now.saturating_sub(rules.flood_window))
            && self
                .last_post
                .is_none_or(|t| t.saturating_add(slow_mode) <= now)
    }
}

/// Counts events (malformed frames) in a sliding window; `hit` says whether
/// the limit is now exceeded.
#[derive(Clone, Debug)]
pub struct StrikeCounter {
    limit: usize,
    window: Duration,
    hits: VecDeque<UnixMillis>,
}

impl StrikeCounter {
    pub fn new(limit: u32, window: Duration) -> StrikeCounter {
        StrikeCounter {
            limit: limit.max(1) as usize,
            window,
            hits: VecDeque::new(),
        }
    }

    pub fn hit(&mut self, now: UnixMillis) -> bool {
        while self
            .hits
            .front()
            .is_some_and(|t| *t <= now.saturating_sub(self.window))
        {
            self.hits.pop_front();
        }
        self.hits.push_back(now);
        self.hits.len() > self.limit
    }
}

fn millis(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    const SLOW: Duration = Duration::from_secs(10);

    fn rules() -> GateRules {
        GateRules {
            burst: 3,
            per_minute: 20,
            flood_strikes: 3,
            flood_window: Duration::from_secs(30),
            flood_mute: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_burst_then_one_message_per_interval() {
        let r = rules(); // one every 3 s after a burst of 3
        let mut g = ChatGate::default();
        for _ in 0..3 {
            assert_eq!(g.check(&r, Duration::ZERO, ms(1_000)), Ok(()));
        }
        assert_eq!(
            g.check(&r, Duration::ZERO, ms(1_000)),
            Err(GateRefusal::RateLimited {
                retry_after_ms: 3_000
            })
        );
        assert_eq!(
            g.check(&r, Duration::ZERO, ms(3_999)),
            Err(GateRefusal::RateLimited { retry_after_ms: 1 })
        );
        assert_eq!(g.check(&r, Duration::ZERO, ms(4_000)), Ok(()));
        assert!(g.check(&r, Duration::ZERO, ms(4_000)).is_err());
        // A long pause refills the whole burst, not more.
        let later = 100_000;
        for _ in 0..3 {
            assert_eq!(g.check(&r, Duration::ZERO, ms(later)), Ok(()));
        }
        assert!(g.check(&r, Duration::ZERO, ms(later)).is_err());
    }

    #[test]
    fn flooding_mutes_with_an_end_time() {
        let r = rules();
        let mut g = ChatGate::default();
        for _ in 0..3 {
            g.check(&r, Duration::ZERO, ms(0)).unwrap();
        }
        assert!(matches!(
            g.check(&r, Duration::ZERO, ms(10)),
            Err(GateRefusal::RateLimited { .. })
        ));
        assert!(matches!(
            g.check(&r, Duration::ZERO, ms(20)),
            Err(GateRefusal::RateLimited { .. })
        ));
        assert_eq!(
            g.check(&r, Duration::ZERO, ms(30)),
            Err(GateRefusal::Flooding {
                until: ms(60_030),
                just_muted: true
            })
        );
        // Even with tokens back, the mute holds until it ends.
        assert_eq!(
            g.check(&r, Duration::ZERO, ms(50_000)),
            Err(GateRefusal::Flooding {
                until: ms(60_030),
                just_muted: false
            })
        );
        assert_eq!(g.muted_until(ms(50_000)), Some(ms(60_030)));
        assert_eq!(g.check(&r, Duration::ZERO, ms(60_030)), Ok(()));
        assert_eq!(g.muted_until(ms(60_030)), None);
    }

    #[test]
    fn strikes_outside_the_window_do_not_add_up() {
        let r = rules();
        let mut g = ChatGate::default();
        for _ in 0..3 {
            g.check(&r, Duration::ZERO, ms(0)).unwrap();
        }
        assert!(g.check(&r, Duration::ZERO, ms(1)).is_err()); // strike at 1
        g.check(&r, Duration::ZERO, ms(3_000)).unwrap();
        assert!(g.check(&r, Duration::ZERO, ms(3_001)).is_err()); // strike at 3001
        // The first strike has left the 30 s window by now.
        for t in [40_000, 40_000, 40_000] {
            let _ = g.check(&r, Duration::ZERO, ms(t));
        }
        assert!(
            matches!(
                g.check(&r, Duration::ZERO, ms(40_001)),
                Err(GateRefusal::RateLimited { .. })
            ),
            "two strikes in window"
        );
    }

    #[test]
    fn slow_mode_spaces_one_persons_messages() {
        let r = rules();
        let mut g = ChatGate::default();
        assert_eq!(g.check(&r, SLOW, ms(0)), Ok(()));
        assert_eq!(
            g.check(&r, SLOW, ms(4_000)),
            Err(GateRefusal::SlowMode {
                retry_after_ms: 6_000
            })
        );
        assert_eq!(g.check(&r, SLOW, ms(10_000)), Ok(()));
        // A slow-mode refusal is not a flooding strike.
        for t in 10_001..10_010 {
            assert!(matches!(
                g.check(&r, SLOW, ms(t)),
                Err(GateRefusal::SlowMode { .. })
            ));
        }
        assert_eq!(g.muted_until(ms(10_010)), None);
        assert!(!g.is_idle(&r, SLOW, ms(15_000)));
        assert!(g.is_idle(&r, SLOW, ms(30_000)));
    }

    #[test]
    fn strike_counter_limits_within_window() {
        let mut s = StrikeCounter::new(3, Duration::from_secs(1));
        assert!(!s.hit(ms(0)));
        assert!(!s.hit(ms(1)));
        assert!(!s.hit(ms(2)));
        assert!(s.hit(ms(3)), "fourth within the window");
        let mut s = StrikeCounter::new(3, Duration::from_secs(1));
        for t in [0, 500, 1_000, 1_500, 2_000] {
            assert!(!s.hit(ms(t)), "spread out at {t}");
        }
    }
}
