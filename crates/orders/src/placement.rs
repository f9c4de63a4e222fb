//! Cluster mode: where each offer's one writer runs, and the calls other
//! nodes hand it.
//!
//! The order service knows nothing of NATS. The server gives it a
//! [`Placement`]: it claims an offer for this node (a lease with a fencing
//! token that every commit checks, see [`store::Store::raise_offer_fence`])
//! and carries calls to the node that holds the claim. What travels is
//! defined here: a [`Call`] is what a writer is asked (a tap, a confirm, a
//! cancel, an end), an answer is what its caller would have heard locally.
//! Every check that needs the writer's memory (stock, limits, idempotency
//! keys, the room) runs on the claiming node, so a tap means the same
//! whichever node took it.

use crate::writer::HoldOutcome;
use crate::{Checkout, OfferSnapshot, OrderRecord, OrdersError, ReservationView, StateConflict};
use async_trait::async_trait;
use domain::{
    BroadcastId, Fen, FieldCode, FieldError, OfferId, OrderId, OrderState, Reason, ReservationId,
    Subject, UnixMillis,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Places offers' writers on the nodes of a cluster.
#[async_trait]
pub trait Placement: Send + Sync + 'static {
    /// Tries to make this node `offer`'s one writer in the cluster.
    /// `Ok(None)`: another node is. While the claim holds, calls other nodes
    /// forward for the offer are answered by `calls`.
    async fn claim(
        &self,
        offer: &OfferId,
        calls: ForwardedCalls,
    ) -> Result<Option<Arc<dyn OfferClaim>>, OrdersError>;

    /// Hands an encoded [`Call`] to the node writing `offer` and returns its
    /// encoded answer.
    async fn forward(&self, offer: &OfferId, call: Vec<u8>) -> Result<Vec<u8>, Unreachable>;
}

/// This node's claim on one offer.
#[async_trait]
pub trait OfferClaim: Send + Sync + 'static {
    /// The fencing token: newer claims have larger ones.
    fn token(&self) -> u64;
    /// Resolves once the claim is gone (taken over, expired, released).
    async fn lost(&self);
    /// Gives the claim back, so another node can take it at once.
    async fn release(&self);
}

/// Why a forwarded call got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Nobody serves the offer right now (its node died, or it is moving):
    /// the call was not done; asking again is safe.
    NoWriter,
    /// The call may or may not have been done (a timeout, a lost
    /// connection): the caller must not repeat it blindly.
    Unknown,
}

/// Answers the calls forwarded to one offer this node claimed.
#[derive(Clone)]
pub struct ForwardedCalls {
    pub(crate) service: std::sync::Weak<crate::service::Inner>,
    pub(crate) offer: OfferId,
}

impl ForwardedCalls {
    /// The encoded answer to an encoded [`Call`].
    pub async fn answer(&self, request: &[u8]) -> Vec<u8> {
        let wire = match serde_json::from_slice::<Call>(request) {
            Err(e) => {
                tracing::warn!(offer = %self.offer, error = %e, "unreadable forwarded call");
                WireAnswer::Unreadable
            }
            Ok(call) => match self.service.upgrade() {
                None => WireAnswer::NotHere,
                Some(inner) => crate::OrderService::from_inner(inner)
                    .answer_forwarded(&self.offer, call)
                    .await
                    .into(),
            },
        };
        serde_json::to_vec(&wire).expect("an answer serializes")
    }
}

/// What an offer's writer is asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub(crate) enum Call {
    Reserve {
        buyer: Subject,
        quantity: u32,
        key: Option<String>,
        /// Sold only in this broadcast's room (the live channel's buys).
        room: Option<BroadcastId>,
    },
    Confirm {
        buyer: Subject,
        reservation: ReservationId,
        checkout: Checkout,
    },
    CancelReservation {
        buyer: Subject,
        reservation: ReservationId,
    },
    CancelOrder {
        order: OrderId,
        person: Subject,
        quantity: u32,
        from: OrderState,
        reason: Reason,
    },
    End,
}

impl Call {
    /// Whether doing it twice is the same as doing it once: a keyed tap
    /// (the writer, and any writer after it, answers a known key with the
    /// reservation it made) and an end.
    pub(crate) fn is_repeatable(&self) -> bool {
        matches!(self, Call::Reserve { key: Some(_), .. } | Call::End)
    }
}

/// What the writer answered, as its caller on this node uses it.
pub(crate) enum Answer {
    Reserved(Result<ReservationView, OrdersError>),
    /// Boxed: an order is large beside the other answers.
    Confirmed(Result<Box<OrderRecord>, HoldOutcome>),
    Cancelled(Result<(), HoldOutcome>),
    OrderCancelled(Result<bool, OrdersError>),
    Ended(Result<OfferSnapshot, OrdersError>),
    /// This node does not write the offer (any more): ask again.
    NotHere,
}

/// An [`Answer`] as it travels. An order travels as its id (the caller reads
/// it from the shared database, where it is committed).
#[derive(Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub(crate) enum WireAnswer {
    Reserved {
        result: Result<WireReservation, WireError>,
    },
    Confirmed {
        result: Result<OrderId, WireHold>,
    },
    Cancelled {
        result: Result<(), WireHold>,
    },
    OrderCancelled {
        result: Result<bool, WireError>,
    },
    Ended {
        result: Result<OfferSnapshot, WireError>,
    },
    NotHere,
    /// The call could not be read (nodes of different versions).
    Unreadable,
}

impl From<Answer> for WireAnswer {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Reserved(r) => WireAnswer::Reserved {
                result: r.map(WireReservation::from).map_err(|e| (&e).into()),
            },
            Answer::Confirmed(r) => WireAnswer::Confirmed {
                result: r.map(|order| order.id).map_err(WireHold::from),
            },
            Answer::Cancelled(r) => WireAnswer::Cancelled {
                result: r.map_err(WireHold::from),
            },
            Answer::OrderCancelled(r) => WireAnswer::OrderCancelled {
                result: r.map_err(|e| (&e).into()),
            },
            Answer::Ended(r) => WireAnswer::Ended {
                result: r.map_err(|e| (&e).into()),
            },
            Answer::NotHere => WireAnswer::NotHere,
        }
    }
}

/// A [`ReservationView`] with plain millisecond times.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireReservation {
    id: ReservationId,
    offer_id: OfferId,
    quantity: u32,
    unit_price: Fen,
    total: Fen,
    created_at: UnixMillis,
    expires_at: UnixMillis,
}

impl From<ReservationView> for WireReservation {
    fn from(v: ReservationView) -> Self {
        WireReservation {
            id: v.id,
            offer_id: v.offer_id,
            quantity: v.quantity,
            unit_price: v.unit_price,
            total: v.total,
            created_at: v.created_at,
            expires_at: v.expires_at,
        }
    }
}

impl From<WireReservation> for ReservationView {
    fn from(v: WireReservation) -> Self {
        ReservationView {
            id: v.id,
            offer_id: v.offer_id,
            quantity: v.quantity,
            unit_price: v.unit_price,
            total: v.total,
            created_at: v.created_at,
            expires_at: v.expires_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "hold", rename_all = "snake_case")]
pub(crate) enum WireHold {
    NotHeld,
    NotYours,
    Failed { error: WireError },
}

impl From<HoldOutcome> for WireHold {
    fn from(h: HoldOutcome) -> Self {
        match h {
            HoldOutcome::NotHeld => WireHold::NotHeld,
            HoldOutcome::NotYours => WireHold::NotYours,
            HoldOutcome::Failed(e) => WireHold::Failed { error: (&e).into() },
        }
    }
}

impl From<WireHold> for HoldOutcome {
    fn from(h: WireHold) -> Self {
        match h {
            WireHold::NotHeld => HoldOutcome::NotHeld,
            WireHold::NotYours => HoldOutcome::NotYours,
            WireHold::Failed { error } => HoldOutcome::Failed(error.into()),
        }
    }
}

/// An [`OrdersError`] as it travels. A storage failure travels as
/// `unavailable` (its details are logged where it happened); a field error
/// travels without its numbers (forwarded calls are checked before they
/// leave, so none is expected).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub(crate) enum WireError {
    SoldOut { available: u32 },
    OverLimit { limit: u32, already: u32 },
    AccountRequired,
    Banned,
    NotStarted { starts_at: UnixMillis },
    Ended,
    IdempotencyMismatch,
    NotFound,
    Forbidden,
    InvalidState { conflict: StateConflict },
    Validation { fields: Vec<WireField> },
    Unavailable,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireField {
    field: String,
    code: FieldCode,
    message: String,
}

impl From<&OrdersError> for WireError {
    fn from(e: &OrdersError) -> Self {
        match e {
            OrdersError::SoldOut { available } => WireError::SoldOut {
                available: *available,
            },
            OrdersError::OverLimit { limit, already } => WireError::OverLimit {
                limit: *limit,
                already: *already,
            },
            OrdersError::AccountRequired => WireError::AccountRequired,
            OrdersError::Banned => WireError::Banned,
            OrdersError::NotStarted { starts_at } => WireError::NotStarted {
                starts_at: *starts_at,
            },
            OrdersError::Ended => WireError::Ended,
            OrdersError::IdempotencyMismatch => WireError::IdempotencyMismatch,
            OrdersError::NotFound => WireError::NotFound,
            OrdersError::Forbidden => WireError::Forbidden,
            OrdersError::InvalidState(conflict) => WireError::InvalidState {
                conflict: *conflict,
            },
            OrdersError::Validation(fields) => WireError::Validation {
                fields: fields
                    .iter()
                    .map(|f| WireField {
                        field: f.field.clone(),
                        code: f.code,
                        message: f.message.clone(),
                    })
                    .collect(),
            },
            OrdersError::Unavailable => WireError::Unavailable,
            OrdersError::Store(error) => {
                tracing::error!(%error, "a forwarded call failed in storage");
                WireError::Unavailable
            }
        }
    }
}

impl From<WireError> for OrdersError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::SoldOut { available } => OrdersError::SoldOut { available },
            WireError::OverLimit { limit, already } => OrdersError::OverLimit { limit, already },
            WireError::AccountRequired => OrdersError::AccountRequired,
            WireError::Banned => OrdersError::Banned,
            WireError::NotStarted { starts_at } => OrdersError::NotStarted { starts_at },
            WireError::Ended => OrdersError::Ended,
            WireError::IdempotencyMismatch => OrdersError::IdempotencyMismatch,
            WireError::NotFound => OrdersError::NotFound,
            WireError::Forbidden => OrdersError::Forbidden,
            WireError::InvalidState { conflict } => OrdersError::InvalidState(conflict),
            WireError::Validation { fields } => OrdersError::Validation(
                fields
                    .into_iter()
                    .map(|f| FieldError::new(&f.field, f.code, f.message))
                    .collect(),
            ),
            WireError::Unavailable => OrdersError::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_a_buyer_can_get_means_the_same_after_the_trip() {
        let conflict = StateConflict::Order(domain::OrderTransitionError {
            from: OrderState::Shipped,
            action: domain::OrderAction::Cancel,
        });
        for error in [
            OrdersError::SoldOut { available: 0 },
            OrdersError::SoldOut { available: 3 },
            OrdersError::OverLimit {
                limit: 2,
                already: 1,
            },
            OrdersError::AccountRequired,
            OrdersError::Banned,
            OrdersError::NotStarted {
                starts_at: UnixMillis::from_millis(1_800_000_000_000),
            },
            OrdersError::Ended,
            OrdersError::IdempotencyMismatch,
            OrdersError::NotFound,
            OrdersError::Forbidden,
            OrdersError::InvalidState(StateConflict::ReservationExpired),
            OrdersError::InvalidState(conflict),
            OrdersError::Unavailable,
        ] {
            let json = serde_json::to_vec(&WireError::from(&error)).unwrap();
            let back: OrdersError = serde_json::from_slice::<WireError>(&json).unwrap().into();
            assert_eq!(back.to_string(), error.to_string(), "{error:?}");
            assert_eq!(back.code(), error.code(), "{error:?}");
        }
    }

    #[test]
    fn only_calls_that_cannot_be_done_twice_are_repeated_after_a_lost_answer() {
        let buyer = Subject::parse("gst_abc").unwrap();
        let tap = |key: Option<&str>| Call::Reserve {
            buyer: buyer.clone(),
            quantity: 1,
            key: key.map(str::to_owned),
            room: None,
        };
        assert!(tap(Some("nonce-1")).is_repeatable());
        assert!(
            !tap(None).is_repeatable(),
            "an unkeyed tap could hold twice"
        );
        assert!(Call::End.is_repeatable());
        let cancel = Call::CancelReservation {
            buyer,
            reservation: ReservationId::generate(),
        };
        assert!(!cancel.is_repeatable());
    }

    #[test]
    fn a_storage_failure_elsewhere_is_a_retryable_unavailable_here() {
        let error = OrdersError::Store(Arc::new(store::StoreError::Corrupt("x".into())));
        assert_eq!(WireError::from(&error), WireError::Unavailable);
    }
}
