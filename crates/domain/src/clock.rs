//! Time, one way: [`UnixMillis`] inside (and in the database),
//! [`Timestamp`] on the wire (RFC 3339, UTC, milliseconds), and the one
//! [`Clock`] every service reads "now" from.

use crate::Invalid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, UTC: portable across SQLite and
/// PostgreSQL (a BIGINT) and cheap to compare. Serialized as the integer.
/// Arithmetic goes through [`Duration`] so a span is never mistaken for a
/// moment.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const EPOCH: UnixMillis = UnixMillis(0);

    pub const fn from_millis(millis: i64) -> UnixMillis {
        UnixMillis(millis)
    }

    /// The integer, for the database and for arithmetic on the wire.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The real time now, straight from the system. Services read
    /// [`Clock::now`] instead, so tests can stop and advance time.
    pub fn wall_now() -> UnixMillis {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn saturating_add(self, span: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_add(whole_millis(span)))
    }

    pub fn saturating_sub(self, span: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_sub(whole_millis(span)))
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        u64::try_from(self.0.saturating_sub(earlier.0))
            .map(Duration::from_millis)
            .unwrap_or(Duration::ZERO)
    }
}

fn whole_millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl std::fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A moment on the wire: RFC 3339 UTC with milliseconds
/// (`2026-06-01T08:00:00.000Z`), what every browser's `Date` parses; any RFC
/// 3339 offset is accepted on the way in. The same type for the HTTP API,
/// the live channel and the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, format = DateTime, example = "2026-10-08T06:30:00.000Z")
)]
pub struct Timestamp(pub UnixMillis);

const RFC3339_MILLIS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

impl Timestamp {
    pub fn millis(self) -> UnixMillis {
        self.0
    }

    /// `None` for instants outside the calendar `time` can represent.
    pub fn to_rfc3339(self) -> Option<String> {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0.0) * 1_000_000)
            .ok()?;
        at.format(RFC3339_MILLIS).ok()
    }

    pub fn parse(raw: &str) -> Result<Timestamp, Invalid> {
        time::OffsetDateTime::parse(raw, &Rfc3339)
            .ok()
            .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
            .map(|ms| Timestamp(UnixMillis(ms)))
            .ok_or_else(|| {
                Invalid::new(
                    crate::FieldCode::InvalidTime,
                    "must be an RFC 3339 time such as 2026-10-08T06:30:00Z",
                )
            })
    }
}

impl From<UnixMillis> for Timestamp {
    fn from(at: UnixMillis) -> Timestamp {
        Timestamp(at)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_rfc3339() {
            Some(text) => s.serialize_str(&text),
            None => Err(serde::ser::Error::custom("timestamp out of range")),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Timestamp::parse(&raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// `#[serde(with = "domain::rfc3339")]`: a [`UnixMillis`] field written as a
/// [`Timestamp`], for records whose JSON shows times to people.
pub mod rfc3339 {
    use super::{Timestamp, UnixMillis};
    use serde::{Serialize, Serializer};

    pub fn serialize<S: Serializer>(at: &UnixMillis, s: S) -> Result<S::Ok, S::Error> {
        Timestamp(*at).serialize(s)
    }

    /// The same for an `Option<UnixMillis>` (`null` when absent).
    pub mod option {
        use super::{Timestamp, UnixMillis};
        use serde::{Serialize, Serializer};

        pub fn serialize<S: Serializer>(at: &Option<UnixMillis>, s: S) -> Result<S::Ok, S::Error> {
            at.map(Timestamp).serialize(s)
        }
    }
}

/// Wall-clock time driven by tokio's clock: `wall_at_start + elapsed tokio
/// time`, so with `tokio::time::pause()` a test stops the "wall" clock or
/// moves it exactly as far as it says. The one clock of the order service
/// and the room hub.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_at_start: UnixMillis,
    started: tokio::time::Instant,
}

impl Clock {
    /// The real time now, advancing with tokio's clock from here on.
    pub fn system() -> Clock {
        Clock::starting_at(UnixMillis::wall_now())
    }

    /// A clock that reads `wall` now (tests use this to continue a timeline
    /// across a restart).
    pub fn starting_at(wall: UnixMillis) -> Clock {
        Clock {
            wall_at_start: wall,
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> UnixMillis {
        self.wall_at_start.saturating_add(self.started.elapsed())
    }

    /// The tokio instant at which this clock will read `at` (now, if `at`
    /// has passed).
    pub fn instant_at(&self, at: UnixMillis) -> tokio::time::Instant {
        self.started + at.since(self.wall_at_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = Timestamp(UnixMillis::from_millis(1_780_300_800_123));
        let text = t.to_rfc3339().unwrap();
        assert_eq!(text, "2026-06-01T08:00:00.123Z");
        assert_eq!(Timestamp::parse(&text), Ok(t));
        assert_eq!(Timestamp::parse("2026-06-01T16:00:00.123+08:00"), Ok(t));
        let whole = Timestamp::parse("2026-10-08T06:30:00Z").unwrap();
        assert_eq!(whole.to_rfc3339().unwrap(), "2026-10-08T06:30:00.000Z");
        assert!(Timestamp::parse("yesterday").is_err());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-06-01T08:00:00.123Z\""
        );
    }

    #[test]
    fn millis_serialize_as_the_integer_and_move_by_durations() {
        let at = UnixMillis::from_millis(1_000);
        assert_eq!(serde_json::to_string(&at).unwrap(), "1000");
        let later = at.saturating_add(Duration::from_millis(250));
        assert_eq!(later.millis(), 1_250);
        assert_eq!(later.since(at), Duration::from_millis(250));
        assert_eq!(at.since(later), Duration::ZERO);
        assert_eq!(later.saturating_sub(Duration::from_secs(1)).millis(), 250);
        let end = UnixMillis::from_millis(i64::MAX).saturating_add(Duration::from_secs(1));
        assert_eq!(end.millis(), i64::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let clock = Clock::starting_at(UnixMillis::from_millis(10_000));
        assert_eq!(clock.now().millis(), 10_000);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now().millis(), 11_500);
        let due = clock.instant_at(UnixMillis::from_millis(12_000));
        assert_eq!(
            due - tokio::time::Instant::now(),
            Duration::from_millis(500)
        );
    }
}
