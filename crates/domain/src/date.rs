use crate::Invalid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::macros::format_description;

/// A calendar date such as a presale's expected harvest/ship day, written
/// `YYYY-MM-DD` everywhere (wire and database).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ShipDate(time::Date);

const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

impl ShipDate {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        time::Date::parse(raw.trim(), FORMAT)
            .map(Self)
            .map_err(|_| {
                Invalid::new(
                    crate::FieldCode::InvalidDate,
                    "must be a date written YYYY-MM-DD",
                )
            })
    }

    pub fn date(self) -> time::Date {
        self.0
    }
}

impl std::fmt::Display for ShipDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.format(FORMAT).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for ShipDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ShipDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ShipDate::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_iso_dates() {
        let d = ShipDate::parse("2026-10-08").unwrap();
        assert_eq!(d.to_string(), "2026-10-08");
        assert!(ShipDate::parse("2026-13-01").is_err());
        assert!(ShipDate::parse("8 Oct").is_err());
    }
}
