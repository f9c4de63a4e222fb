//! The vocabulary every other crate speaks.
//!
//! Values here are *parsed, not validated*: once you hold a [`Mobile`] or a
//! [`Fen`], it is known to be well formed, so no layer checks it twice. Nothing
//! in this crate does I/O or knows about axum or sqlx; of tokio it uses only
//! the clock (see [`Clock`]).

mod broadcast;
mod clock;
mod date;
pub mod fuzzing;
mod ids;
mod money;
mod order;
mod role;
mod stock;
mod text;
mod validation;

pub use broadcast::{BroadcastState, BroadcastTransitionError};
pub use clock::{Clock, Timestamp, UnixMillis, rfc3339};
pub use date::ShipDate;
pub use ids::*;
pub use money::Fen;
#[allow(unused_imports)] // filled by the order-service work
pub use order::*;
pub use role::{Identity, Role, Subject};
#[allow(unused_imports)] // filled by the order-service work
pub use stock::*;
pub use text::*;
pub use validation::{FieldCode, FieldError, FieldParams, Fields, Invalid, field, optional};
