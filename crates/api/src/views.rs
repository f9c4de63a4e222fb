//! JSON shapes shared by several routes.

use domain::UnixMillis;
use serde::{Deserialize, Deserializer};

/// A moment in time on the wire: RFC 3339 UTC with milliseconds
/// (`2026-10-08T06:30:00.000Z`), the same type the live channel sends.
pub use domain::Timestamp;

/// An optional RFC 3339 time field of a request, as Unix milliseconds.
pub fn optional_time(
    name: &str,
    raw: Option<&str>,
) -> Result<Option<UnixMillis>, domain::FieldError> {
    domain::optional(name, raw.map(Timestamp::parse)).map(|t| t.map(Timestamp::millis))
}

pub fn ts(at: UnixMillis) -> Timestamp {
    Timestamp(at)
}

pub fn ts_opt(at: Option<UnixMillis>) -> Option<Timestamp> {
    at.map(Timestamp)
}

/// Distinguishes "field absent" (keep) from "field is null" (clear) in
/// PATCH bodies: use as `#[serde(default)] field: Patch<T>`.
#[derive(Debug, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Clear,
            Some(v) => Patch::Set(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        date: Patch<String>,
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let keep: Body = serde_json::from_str("{}").unwrap();
        assert!(matches!(keep.date, Patch::Keep));
        let clear: Body = serde_json::from_str(r#"{"date":null}"#).unwrap();
        assert!(matches!(clear.date, Patch::Clear));
        let set: Body = serde_json::from_str(r#"{"date":"x"}"#).unwrap();
        assert!(matches!(set.date, Patch::Set(ref s) if s == "x"));
    }
}
