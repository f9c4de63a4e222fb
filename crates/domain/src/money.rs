use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of renminbi in fen (1 yuan = 100 fen). Integer arithmetic only:
/// prices are never floats anywhere in fieldcast.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fen(i64);

impl Fen {
    /// Upper bound for a single price: ¥1,000,000. Large enough for any bag of
    /// grain, small enough that `price * quantity` can never overflow.
    pub const MAX_PRICE: i64 = 100_000_000;

    pub const ZERO: Fen = Fen(0);

    /// A price a farmer typed in: positive and at most [`Fen::MAX_PRICE`].
    pub fn price(fen: i64) -> Result<Self, crate::Invalid> {
        if fen <= 0 {
            return Err(crate::Invalid::new(
                crate::FieldCode::TooSmall,
                "price must be more than 0 fen",
            ));
        }
        if fen > Self::MAX_PRICE {
            return Err(crate::Invalid::new(
                crate::FieldCode::TooLarge,
                "price must be at most ¥1,000,000",
            ));
        }
        Ok(Fen(fen))
    }

    pub fn from_trusted(fen: i64) -> Self {
        Fen(fen)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// Total for `quantity` units. Saturates rather than wraps; with prices
    /// capped at [`Fen::MAX_PRICE`] and u32 quantities it cannot reach i64::MAX.
    pub fn times(self, quantity: u32) -> Fen {
        Fen(self.0.saturating_mul(i64::from(quantity)))
    }
}

impl fmt::Display for Fen {
    /// `¥12.50`, the way a price tag reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}¥{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_must_be_positive_and_bounded() {
        assert!(Fen::price(0).is_err());
        assert!(Fen::price(-5).is_err());
        assert!(Fen::price(Fen::MAX_PRICE + 1).is_err());
        assert_eq!(Fen::price(6800).unwrap().get(), 6800);
    }

    #[test]
    fn displays_as_yuan() {
        assert_eq!(Fen::from_trusted(6800).to_string(), "¥68.00");
        assert_eq!(Fen::from_trusted(5).to_string(), "¥0.05");
        assert_eq!(Fen::from_trusted(6800).times(3).to_string(), "¥204.00");
    }
}
