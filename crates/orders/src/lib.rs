//! The order service: live offers, the in-memory stock ledger per offer,
//! reservations with expiry, orders, and group commit.
//!
//! # Shape
//! - [`StockLedger`] (sans-I/O) decides every tap of one offer in order:
//!   `decide(tap, now) -> Decision`. Pure, allocation-light, benchmarkable.
//! - One writer task per offer owns its ledger, batches what it decided into
//!   groups and commits each group in one transaction
//!   ([`store::Store::commit_offer_group`]) while it keeps deciding. A caller
//!   is answered only when its group has committed; refusals (sold out, over
//!   the limit, not started, ended) are answered from memory at once.
//! - [`OrderService`] is the async façade with all permission checks: the
//!   HTTP routes and the live channel call it and stay thin.
//!
//! # Where units live
//! Creating an offer moves its quantity out of `products.stock`. While the
//! offer sells, released holds and cancelled unshipped orders return to the
//! offer (another viewer can buy them). When it ends, the available units
//! go back to the product, and so does anything released or cancelled after
//! that. `available + held + sold = allotted` always, in memory and in the
//! database (which also enforces it with a CHECK constraint).

mod csv;
mod error;
mod idempotency;
pub mod ledger;
mod model;
mod placement;
mod service;
mod writer;

pub use csv::{SheetLanguage, SheetOptions};
pub use error::{OrdersError, StateConflict};
pub use ledger::{Decision, Hold, LedgerFull, LedgerLimits, OfferTerms, Refusal, StockLedger, Tap};
pub use model::{
    BuyerReservation, Checkout, Clock, NewOffer, OfferEvent, OfferSnapshot, OrderRecord,
    OrdersConfig, ReservationView, ReserveRequest,
};
pub use placement::{ForwardedCalls, OfferClaim, Placement, Unreachable};
pub use service::{MAX_IDEMPOTENCY_KEY_LEN, MAX_LISTED_RESERVATIONS, OrderService};
pub use store::OrderFilter;
