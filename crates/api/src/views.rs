//! JSON shapes shared by several routes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// A moment in time, RFC 3339 UTC on the wire (`2026-10-08T06:30:00Z`),
/// Unix milliseconds inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-10-08T06:30:00Z")]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }

    pub fn parse(raw: &str) -> Result<Self, domain::Invalid> {
        OffsetDateTime::parse(raw, &Rfc3339)
            .map(|t| Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
            .map_err(|_| {
                domain::Invalid::new(
                    domain::FieldCode::InvalidTime,
                    "must be an RFC 3339 time such as 2026-10-08T06:30:00Z",
                )
            })
    }
}

/// An optional RFC 3339 time field of a request, as Unix milliseconds.
pub fn optional_time(name: &str, raw: Option<&str>) -> Result<Option<i64>, domain::FieldError> {
    domain::optional(name, raw.map(Timestamp::parse)).map(|t| t.map(Timestamp::millis))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Timestamp::parse(&raw).map_err(serde::de::Error::custom)
    }
}

pub fn ts(ms: i64) -> Timestamp {
    Timestamp(ms)
}

pub fn ts_opt(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp)
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

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = Timestamp::parse("2026-10-08T06:30:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-08T06:30:00Z");
        assert_eq!(Timestamp::parse("2026-10-08T14:30:00+08:00").unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }

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
