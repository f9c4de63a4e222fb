//! Stock arithmetic for a live offer: the counts, where units go when they
//! come back, what state viewers see, and the per-buyer limit.
//!
//! Everything here is pure; the order service's ledger drives it.

use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// The most units one product holds in stock, and so one offer sells: far
/// above any farm's harvest, low enough that totals stay exact. The one
/// stock cap; products and offers are checked against it.
pub const MAX_STOCK: u32 = 1_000_000;

/// A product's stock: 0 to [`MAX_STOCK`] units. Holding one means the cap
/// was checked, so services that take it need not check again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Stock(u32);

impl Stock {
    pub fn parse(raw: i64) -> Result<Stock, crate::Invalid> {
        if raw < 0 {
            return Err(crate::Invalid::new(
                crate::FieldCode::TooSmall,
                "stock cannot be negative",
            )
            .with("min", 0));
        }
        match u32::try_from(raw) {
            Ok(units) if units <= MAX_STOCK => Ok(Stock(units)),
            _ => Err(crate::Invalid::new(
                crate::FieldCode::TooLarge,
                format!("stock must be at most {MAX_STOCK}"),
            )
            .with("max", MAX_STOCK.into())),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// The units of one live offer.
///
/// Invariant, always: `available + held + sold == allotted`. Counts are
/// unsigned, so "none negative" is a property of the type; every operation
/// that would break the balance is refused with [`StockError`] instead of
/// wrapping or panicking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StockCounts {
    /// Units taken from the product's stock for this offer and not (yet)
    /// given back. Shrinks when the offer ends and unsold units return.
    pub allotted: u32,
    /// Free to reserve right now.
    pub available: u32,
    /// Reserved by a buyer who is entering an address.
    pub held: u32,
    /// Confirmed into an order (and not cancelled).
    pub sold: u32,
}

/// Where units go when a reservation is released or an unshipped order is
/// cancelled: back to the offer while it still sells (so another viewer can
/// buy them during the broadcast), or back to the product's stock once the
/// offer has ended. Units are never counted in both places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitsReturn {
    ToOffer,
    ToProduct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// Fewer units are free than asked for.
    #[error("only {available} available")]
    Insufficient { available: u32 },
    /// The operation would make a count negative: a bug in the caller, which
    /// the arithmetic refuses rather than hides.
    #[error("stock counts would go out of balance")]
    Unbalanced,
}

impl StockCounts {
    /// A fresh offer: everything allotted is available.
    pub fn allot(units: u32) -> Self {
        StockCounts {
            allotted: units,
            available: units,
            held: 0,
            sold: 0,
        }
    }

    /// `available + held + sold == allotted` (computed without overflow).
    pub fn is_balanced(&self) -> bool {
        u64::from(self.available) + u64::from(self.held) + u64::from(self.sold)
            == u64::from(self.allotted)
    }

    /// A viewer tapped "buy": `available -> held`.
    pub fn hold(&mut self, quantity: u32) -> Result<(), StockError> {
        if quantity > self.available {
            return Err(StockError::Insufficient {
                available: self.available,
            });
        }
        self.held = self
            .held
            .checked_add(quantity)
            .ok_or(StockError::Unbalanced)?;
        self.available -= quantity;
        Ok(())
    }

    /// A reservation expired or was cancelled.
    pub fn release(&mut self, quantity: u32, to: UnitsReturn) -> Result<(), StockError> {
        if quantity > self.held {
            return Err(StockError::Unbalanced);
        }
        self.give_back(quantity, to)?;
        self.held -= quantity;
        Ok(())
    }

    /// A reservation became an order: `held -> sold`.
    pub fn sell(&mut self, quantity: u32) -> Result<(), StockError> {
        if quantity > self.held {
            return Err(StockError::Unbalanced);
        }
        self.sold = self
            .sold
            .checked_add(quantity)
            .ok_or(StockError::Unbalanced)?;
        self.held -= quantity;
        Ok(())
    }

    /// An unshipped order was cancelled.
    pub fn unsell(&mut self, quantity: u32, to: UnitsReturn) -> Result<(), StockError> {
        if quantity > self.sold {
            return Err(StockError::Unbalanced);
        }
        self.give_back(quantity, to)?;
        self.sold -= quantity;
        Ok(())
    }

    /// The offer ends: every available unit goes back to the product.
    /// Returns how many.
    pub fn withdraw_available(&mut self) -> Result<u32, StockError> {
        let returned = self.available;
        self.allotted = self
            .allotted
            .checked_sub(returned)
            .ok_or(StockError::Unbalanced)?;
        self.available = 0;
        Ok(returned)
    }

    /// Checked: on counts that were balanced neither can fail, so a failure
    /// is a caller's bug and changes nothing.
    fn give_back(&mut self, quantity: u32, to: UnitsReturn) -> Result<(), StockError> {
        let count = match to {
            UnitsReturn::ToOffer => self.available.checked_add(quantity),
            UnitsReturn::ToProduct => self.allotted.checked_sub(quantity),
        }
        .ok_or(StockError::Unbalanced)?;
        match to {
            UnitsReturn::ToOffer => self.available = count,
            UnitsReturn::ToProduct => self.allotted = count,
        }
        Ok(())
    }
}

/// What a viewer sees on the pinned offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    /// Has a start time in the future: viewers see a countdown.
    Upcoming,
    Open,
    /// Nothing available right now. Not final: held units that expire or
    /// cancelled orders make it open again.
    SoldOut,
    /// Ended by the owner, by its end time or with its broadcast. Final.
    Ended,
}

impl OfferState {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferState::Upcoming => "upcoming",
            OfferState::Open => "open",
            OfferState::SoldOut => "sold_out",
            OfferState::Ended => "ended",
        }
    }

    /// The state at `now`. `ended_at` is when the offer was ended (by the
    /// owner or the system); an `ends_at` in the past ends it as well, even
    /// before anything has recorded that.
    pub fn at(
        now: UnixMillis,
        starts_at: Option<UnixMillis>,
        ends_at: Option<UnixMillis>,
        ended_at: Option<UnixMillis>,
        counts: &StockCounts,
    ) -> OfferState {
        if ended_at.is_some() || ends_at.is_some_and(|end| now >= end) {
            OfferState::Ended
        } else if starts_at.is_some_and(|start| now < start) {
            OfferState::Upcoming
        } else if counts.available == 0 {
            OfferState::SoldOut
        } else {
            OfferState::Open
        }
    }
}

/// Who may buy an offer. A per-buyer limit holds per person only as far as
/// a person can be told apart: anyone may start as many guests as they
/// like, but a mobile account is one number, so a farmer who wants the
/// limit to bite on a scarce offer lets accounts only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Buyers {
    /// Guests (a nickname) and accounts.
    #[default]
    Anyone,
    /// Only buyers signed in with a mobile account.
    AccountsOnly,
}

impl Buyers {
    pub fn as_str(self) -> &'static str {
        match self {
            Buyers::Anyone => "anyone",
            Buyers::AccountsOnly => "accounts_only",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "anyone" => Some(Buyers::Anyone),
            "accounts_only" => Some(Buyers::AccountsOnly),
            _ => None,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, crate::Invalid> {
        Self::from_db(raw.trim()).ok_or_else(|| {
            crate::Invalid::new(
                crate::FieldCode::InvalidChoice,
                "must be anyone or accounts_only",
            )
        })
    }

    pub fn is_anyone(&self) -> bool {
        *self == Buyers::Anyone
    }

    /// Whether a buyer who is (`account`) or is not signed in with an
    /// account may buy.
    pub fn admits(self, account: bool) -> bool {
        account || self == Buyers::Anyone
    }
}

/// What one buyer has of one offer: units held right now plus units bought
/// (confirmed and not cancelled). Their sum never exceeds the offer's
/// per-buyer limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuyerTally {
    pub held: u32,
    pub bought: u32,
}

/// Returned when a tap would take a buyer past the per-buyer limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limit is {limit} per buyer and {already} are already yours")]
pub struct OverLimit {
    pub limit: u32,
    pub already: u32,
}

impl BuyerTally {
    pub fn total(&self) -> u32 {
        self.held.saturating_add(self.bought)
    }

    /// Whether `quantity` more fits under `limit`.
    pub fn check(&self, limit: u32, quantity: u32) -> Result<(), OverLimit> {
        let already = self.total();
        if u64::from(already) + u64::from(quantity) > u64::from(limit) {
            Err(OverLimit { limit, already })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_move_between_counts_and_stay_balanced() {
        let mut c = StockCounts::allot(100);
        c.hold(3).unwrap();
        c.hold(2).unwrap();
        assert_eq!((c.available, c.held, c.sold), (95, 5, 0));
        c.sell(3).unwrap();
        c.release(2, UnitsReturn::ToOffer).unwrap();
        assert_eq!((c.available, c.held, c.sold), (97, 0, 3));
        c.unsell(1, UnitsReturn::ToOffer).unwrap();
        assert_eq!((c.available, c.sold), (98, 2));
        assert!(c.is_balanced());
    }

    #[test]
    fn cannot_hold_more_than_available_or_release_what_is_not_held() {
        let mut c = StockCounts::allot(2);
        assert_eq!(c.hold(3), Err(StockError::Insufficient { available: 2 }));
        c.hold(2).unwrap();
        assert_eq!(c.hold(1), Err(StockError::Insufficient { available: 0 }));
        assert_eq!(
            c.release(3, UnitsReturn::ToOffer),
            Err(StockError::Unbalanced)
        );
        assert_eq!(c.sell(3), Err(StockError::Unbalanced));
        assert_eq!(
            c.unsell(1, UnitsReturn::ToOffer),
            Err(StockError::Unbalanced)
        );
        assert_eq!(
            c,
            StockCounts {
                allotted: 2,
                available: 0,
                held: 2,
                sold: 0
            },
            "refusals change nothing"
        );
    }

    #[test]
    fn ending_returns_available_and_later_returns_go_to_the_product() {
        let mut c = StockCounts::allot(10);
        c.hold(4).unwrap();
        c.sell(1).unwrap();
        assert_eq!(c.withdraw_available(), Ok(6));
        assert_eq!(
            c,
            StockCounts {
                allotted: 4,
                available: 0,
                held: 3,
                sold: 1
            }
        );
        c.release(3, UnitsReturn::ToProduct).unwrap();
        c.unsell(1, UnitsReturn::ToProduct).unwrap();
        assert_eq!(c, StockCounts::default());
        assert!(c.is_balanced());
    }

    #[test]
    fn offer_state_follows_time_and_counts() {
        let ms = UnixMillis::from_millis;
        let open = StockCounts::allot(5);
        let empty = StockCounts {
            allotted: 5,
            available: 0,
            held: 5,
            sold: 0,
        };
        assert_eq!(
            OfferState::at(ms(10), Some(ms(20)), None, None, &open),
            OfferState::Upcoming
        );
        assert_eq!(
            OfferState::at(ms(20), Some(ms(20)), None, None, &open),
            OfferState::Open
        );
        assert_eq!(
            OfferState::at(ms(20), None, None, None, &empty),
            OfferState::SoldOut
        );
        assert_eq!(
            OfferState::at(ms(30), None, Some(ms(30)), None, &open),
            OfferState::Ended
        );
        assert_eq!(
            OfferState::at(ms(10), Some(ms(20)), None, Some(ms(5)), &open),
            OfferState::Ended
        );
    }

    #[test]
    fn per_buyer_limit_counts_held_and_bought() {
        let t = BuyerTally { held: 1, bought: 1 };
        assert!(t.check(3, 1).is_ok());
        assert_eq!(
            t.check(3, 2),
            Err(OverLimit {
                limit: 3,
                already: 2
            })
        );
        assert!(
            BuyerTally::default().check(2, 3).is_err(),
            "one tap above the limit"
        );
        assert!(
            BuyerTally::default().check(u32::MAX, u32::MAX).is_ok(),
            "no overflow"
        );
    }

    #[test]
    fn stock_is_capped_once_here() {
        assert_eq!(Stock::parse(0).unwrap().get(), 0);
        assert_eq!(Stock::parse(i64::from(MAX_STOCK)).unwrap().get(), MAX_STOCK);
        assert_eq!(Stock::parse(-1).unwrap_err().code, "too_small");
        assert_eq!(
            Stock::parse(i64::from(MAX_STOCK) + 1).unwrap_err().code,
            "too_large"
        );
        assert_eq!(Stock::parse(i64::MAX).unwrap_err().code, "too_large");
    }
}
