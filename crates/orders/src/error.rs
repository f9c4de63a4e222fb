//! The one error type of the order service, with the stable code of each
//! variant. It knows nothing about HTTP: `api` maps it to statuses, and
//! the live channel to its refusals, each in one exhaustive match.

use domain::{FieldCode, FieldError, OrderTransitionError, UnixMillis};
use std::sync::Arc;

/// Why something an order-service caller asked for did not happen.
///
/// `Clone` because one outcome can answer several callers (an idempotent
/// repeat waiting on the first attempt).
#[derive(Clone, Debug, thiserror::Error)]
pub enum OrdersError {
    /// Fewer units are available than asked for; `available` may be more
    /// than 0 when the buyer asked for several.
    #[error("sold out ({available} available)")]
    SoldOut { available: u32 },
    /// The buyer's held and bought units plus this request exceed the limit.
    #[error("limit is {limit} per buyer and {already} are already yours")]
    OverLimit { limit: u32, already: u32 },
    /// The offer is for buyers signed in with a mobile account; a guest
    /// must sign in (or sign up) first.
    #[error("this offer is for buyers signed in with a mobile account")]
    AccountRequired,
    /// The shop banned this buyer from its broadcasts, and so from buying
    /// there: refused the same way over HTTP and in the live channel.
    #[error("this shop has banned you from its broadcasts")]
    Banned,
    #[error("the offer starts at {starts_at}")]
    NotStarted { starts_at: UnixMillis },
    #[error("the offer has ended")]
    Ended,
    /// The idempotency key was used before by this buyer for a different
    /// request (another offer or quantity).
    #[error("this idempotency key was used for a different request")]
    IdempotencyMismatch,
    #[error("not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error("{0}")]
    InvalidState(StateConflict),
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// Shutting down, or an offer's writer is recovering from a database
    /// error: try again shortly.
    #[error("temporarily unavailable")]
    Unavailable,
    /// The database failed; details are for logs only.
    #[error("storage error: {0}")]
    Store(Arc<store::StoreError>),
}

/// The thing exists but is in a state where the action makes no sense.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum StateConflict {
    #[error("the reservation has expired")]
    ReservationExpired,
    #[error("the reservation was cancelled")]
    ReservationCancelled,
    #[error("the reservation is already confirmed")]
    ReservationConfirmed,
    #[error("the broadcast has ended")]
    BroadcastEnded,
    #[error(transparent)]
    Order(#[from] OrderTransitionError),
}

impl StateConflict {
    pub fn code(&self) -> &'static str {
        match self {
            StateConflict::ReservationExpired => "reservation_expired",
            StateConflict::ReservationCancelled => "reservation_cancelled",
            StateConflict::ReservationConfirmed => "reservation_confirmed",
            StateConflict::BroadcastEnded => "broadcast_ended",
            StateConflict::Order(_) => "invalid_order_transition",
        }
    }
}

impl OrdersError {
    /// A stable, machine-readable code for problem documents and the live
    /// channel. Never changes meaning once published.
    pub fn code(&self) -> &'static str {
        match self {
            OrdersError::SoldOut { available: 0 } => "sold_out",
            // Fewer left than asked for: the buyer may take `available`.
            OrdersError::SoldOut { .. } => "insufficient_stock",
            // The live channel's word, so HTTP and websocket say one thing.
            OrdersError::OverLimit { .. } => "limit_reached",
            OrdersError::AccountRequired => "account_required",
            OrdersError::Banned => "banned",
            OrdersError::NotStarted { .. } => "not_started",
            OrdersError::Ended => "offer_ended",
            OrdersError::IdempotencyMismatch => "idempotency_key_reused",
            OrdersError::NotFound => "not_found",
            OrdersError::Forbidden => "forbidden",
            OrdersError::InvalidState(c) => c.code(),
            OrdersError::Validation(_) => "validation_failed",
            OrdersError::Unavailable => "unavailable",
            OrdersError::Store(_) => "internal",
        }
    }

    pub(crate) fn field(field: &str, code: FieldCode, message: impl Into<String>) -> OrdersError {
        OrdersError::Validation(vec![FieldError::new(field, code, message)])
    }
}

impl From<store::StoreError> for OrdersError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::NotFound => OrdersError::NotFound,
            other => OrdersError::Store(Arc::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    #[test]
    fn every_variant_has_a_distinct_code() {
        let all = [
            OrdersError::SoldOut { available: 0 },
            OrdersError::SoldOut { available: 1 },
            OrdersError::OverLimit {
                limit: 2,
                already: 2,
            },
            OrdersError::AccountRequired,
            OrdersError::Banned,
            OrdersError::NotStarted { starts_at: ms(1) },
            OrdersError::Ended,
            OrdersError::IdempotencyMismatch,
            OrdersError::NotFound,
            OrdersError::Forbidden,
            OrdersError::InvalidState(StateConflict::ReservationExpired),
            OrdersError::Validation(vec![]),
            OrdersError::Unavailable,
            OrdersError::Store(Arc::new(store::StoreError::Corrupt("x".into()))),
        ];
        let mut codes: Vec<_> = all.iter().map(OrdersError::code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
