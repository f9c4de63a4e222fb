//! Who may post now: the per-person rate limit, slow mode and the flood mute.
//! Sans-I/O: every method takes `now` (Unix milliseconds).

use crate::config::LiveConfig;
use domain::UnixMillis;
use std::collections::VecDeque;

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
    pub flood_window_ms: i64,
    pub flood_mute_ms: i64,
}

impl GateRules {
    pub fn from_config(c: &LiveConfig) -> GateRules {
        GateRules {
            burst: c.chat_burst.max(1),
            per_minute: c.chat_per_minute.max(1),
            flood_strikes: c.flood_strikes.max(1),
            flood_window_ms: c.flood_window.as_millis() as i64,
            flood_mute_ms: c.flood_mute.as_millis() as i64,
        }
    }

    fn interval_ms(&self) -> i64 {
        (60_000 / i64::from(self.per_minute)).max(1)
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
    /// message is counted. `slow_mode_ms` is 0 when slow mode is off or the
    /// sender is exempt.
    pub fn check(
        &mut self,
        rules: &GateRules,
        slow_mode_ms: i64,
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

        let interval = rules.interval_ms();
        let tolerance = interval * (i64::from(rules.burst) - 1);
        let tat = self.tat.max(now);
        if tat - tolerance > now {
            while self
                .strikes
                .front()
                .is_some_and(|t| *t <= now - rules.flood_window_ms)
            {
                self.strikes.pop_front();
            }
            self.strikes.push_back(now);
            if self.strikes.len() >= rules.flood_strikes as usize {
                let until = now + rules.flood_mute_ms;
                self.muted_until = Some(until);
                return Err(GateRefusal::Flooding {
                    until,
                    just_muted: true,
                });
            }
            return Err(GateRefusal::RateLimited {
                retry_after_ms: (tat - tolerance - now) as u64,
            });
        }

        if slow_mode_ms > 0
            && let Some(last) = self.last_post
            && now < last + slow_mode_ms
        {
            return Err(GateRefusal::SlowMode {
                retry_after_ms: (last + slow_mode_ms - now) as u64,
            });
        }

        self.tat = tat + interval;
        self.last_post = Some(now);
        Ok(())
    }

    pub fn muted_until(&self, now: UnixMillis) -> Option<UnixMillis> {
        self.muted_until.filter(|until| *until > now)
    }

    /// Nothing here affects a decision any more: the entry can be dropped.
    pub fn is_idle(&self, rules: &GateRules, slow_mode_ms: i64, now: UnixMillis) -> bool {
        self.muted_until(now).is_none()
            && self.tat <= now
            && self
                .strikes
                .back()
                .is_none_or(|t| *t <= now - rules.flood_window_ms)
            && self.last_post.is_none_or(|t| t + slow_mode_ms <= now)
    }
}

/// Counts events (malformed frames) in a sliding window; `hit` says whether
/// the limit is now exceeded.
#[derive(Clone, Debug)]
pub struct StrikeCounter {
    limit: usize,
    window_ms: i64,
    hits: VecDeque<UnixMillis>,
}

impl StrikeCounter {
    pub fn new(limit: u32, window_ms: i64) -> StrikeCounter {
        StrikeCounter {
            limit: limit.max(1) as usize,
            window_ms,
            hits: VecDeque::new(),
        }
    }

    pub fn hit(&mut self, now: UnixMillis) -> bool {
        while self
            .hits
            .front()
            .is_some_and(|t| *t <= now - self.window_ms)
        {
            self.hits.pop_front();
        }
        self.hits.push_back(now);
        self.hits.len() > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GateRules {
        GateRules {
            burst: 3,
            per_minute: 20,
            flood_strikes: 3,
            flood_window_ms: 30_000,
            flood_mute_ms: 60_000,
        }
    }

    #[test]
    fn a_burst_then_one_message_per_interval() {
        let r = rules(); // one every 3 s after a burst of 3
        let mut g = ChatGate::default();
        for _ in 0..3 {
            assert_eq!(g.check(&r, 0, 1_000), Ok(()));
        }
        assert_eq!(
            g.check(&r, 0, 1_000),
            Err(GateRefusal::RateLimited {
                retry_after_ms: 3_000
            })
        );
        assert_eq!(
            g.check(&r, 0, 3_999),
            Err(GateRefusal::RateLimited { retry_after_ms: 1 })
        );
        assert_eq!(g.check(&r, 0, 4_000), Ok(()));
        assert!(g.check(&r, 0, 4_000).is_err());
        // A long pause refills the whole burst, not more.
        let later = 100_000;
        for _ in 0..3 {
            assert_eq!(g.check(&r, 0, later), Ok(()));
        }
        assert!(g.check(&r, 0, later).is_err());
    }

    #[test]
    fn flooding_mutes_with_an_end_time() {
        let r = rules();
        let mut g = ChatGate::default();
        for _ in 0..3 {
            g.check(&r, 0, 0).unwrap();
        }
        assert!(matches!(
            g.check(&r, 0, 10),
            Err(GateRefusal::RateLimited { .. })
        ));
        assert!(matches!(
            g.check(&r, 0, 20),
            Err(GateRefusal::RateLimited { .. })
        ));
        assert_eq!(
            g.check(&r, 0, 30),
            Err(GateRefusal::Flooding {
                until: 60_030,
                just_muted: true
            })
        );
        // Even with tokens back, the mute holds until it ends.
        assert_eq!(
            g.check(&r, 0, 50_000),
            Err(GateRefusal::Flooding {
                until: 60_030,
                just_muted: false
            })
        );
        assert_eq!(g.muted_until(50_000), Some(60_030));
        assert_eq!(g.check(&r, 0, 60_030), Ok(()));
        assert_eq!(g.muted_until(60_030), None);
    }

    #[test]
    fn strikes_outside_the_window_do_not_add_up() {
        let r = rules();
        let mut g = ChatGate::default();
        for _ in 0..3 {
            g.check(&r, 0, 0).unwrap();
        }
        assert!(g.check(&r, 0, 1).is_err()); // strike at 1
        g.check(&r, 0, 3_000).unwrap();
        assert!(g.check(&r, 0, 3_001).is_err()); // strike at 3001
        // The first strike has left the 30 s window by now.
        for t in [40_000, 40_000, 40_000] {
            let _ = g.check(&r, 0, t);
        }
        assert!(
            matches!(g.check(&r, 0, 40_001), Err(GateRefusal::RateLimited { .. })),
            "two strikes in window"
        );
    }

    #[test]
    fn slow_mode_spaces_one_persons_messages() {
        let r = rules();
        let mut g = ChatGate::default();
        assert_eq!(g.check(&r, 10_000, 0), Ok(()));
        assert_eq!(
            g.check(&r, 10_000, 4_000),
            Err(GateRefusal::SlowMode {
                retry_after_ms: 6_000
            })
        );
        assert_eq!(g.check(&r, 10_000, 10_000), Ok(()));
        // A slow-mode refusal is not a flooding strike.
        for t in 10_001..10_010 {
            assert!(matches!(
                g.check(&r, 10_000, t),
                Err(GateRefusal::SlowMode { .. })
            ));
        }
        assert_eq!(g.muted_until(10_010), None);
        assert!(!g.is_idle(&r, 10_000, 15_000));
        assert!(g.is_idle(&r, 10_000, 30_000));
    }

    #[test]
    fn strike_counter_limits_within_window() {
        let mut s = StrikeCounter::new(3, 1_000);
        assert!(!s.hit(0));
        assert!(!s.hit(1));
        assert!(!s.hit(2));
        assert!(s.hit(3), "fourth within the window");
        let mut s = StrikeCounter::new(3, 1_000);
        for t in [0, 500, 1_000, 1_500, 2_000] {
            assert!(!s.hit(t), "spread out at {t}");
        }
    }
}
