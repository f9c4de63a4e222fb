//! The values the order service takes and gives: configuration, requests,
//! views and live-channel events.

use crate::OrdersError;
pub use domain::Clock;
use domain::{
    Address, BroadcastId, Buyers, Fen, Fields, Mobile, OfferId, OfferState, OrderId, PaymentMethod,
    PersonName, ProductId, ProductTitle, ReservationId, ShipDate, ShopId, StockCounts, Subject,
    Unit, UnixMillis, field,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How the order service runs. `Default` is right for production.
#[derive(Clone, Debug)]
pub struct OrdersConfig {
    pub clock: Clock,
    /// How long a reservation is held when the offer does not say (10 min).
    pub default_hold: Duration,
    /// Bounds an owner may choose for an offer's hold time.
    pub min_hold: Duration,
    pub max_hold: Duration,
    /// How long an idempotency key is remembered (24 h). Within that time a
    /// repeat gets the first answer, also after a restart.
    pub idempotency_ttl: Duration,
    /// Most reservations in one transaction; while a group that large waits
    /// for its commit, the writer stops taking taps (backpressure).
    pub max_group: usize,
    /// Queue of taps waiting for an offer's writer.
    pub command_capacity: usize,
    /// Capacity of the event channel; slow receivers lag (and resync with
    /// `offer_snapshot`) rather than slow the writers down.
    pub event_capacity: usize,
    /// Times in the CSV export are local times at this offset from UTC
    /// (China Standard Time, +08:00, by default).
    pub export_utc_offset_minutes: i16,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            clock: Clock::system(),
            default_hold: Duration::from_secs(10 * 60),
            min_hold: Duration::from_secs(60),
            max_hold: Duration::from_secs(60 * 60),
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            max_group: 4096,
            command_capacity: 16_384,
            event_capacity: 16_384,
            export_utc_offset_minutes: 8 * 60,
        }
    }
}

/// An owner putting a product on sale during a broadcast.
#[derive(Clone, Debug)]
pub struct NewOffer {
    pub broadcast: BroadcastId,
    pub product: ProductId,
    /// The live price per unit.
    pub price: Fen,
    /// Units allotted to this broadcast, taken from the product's stock.
    pub quantity: u32,
    pub per_buyer_limit: u32,
    /// Who may buy; [`Buyers::AccountsOnly`] makes the limit one per
    /// mobile number instead of one per guest nickname.
    pub buyers: Buyers,
    /// A countdown until then; taps before are answered "not started".
    pub starts_at: Option<UnixMillis>,
    pub ends_at: Option<UnixMillis>,
    /// How long a tap holds units; `None` for the configured default.
    pub hold: Option<Duration>,
}

/// What a room shows about an offer, and what the farmer's studio shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferSnapshot {
    pub offer_id: OfferId,
    pub broadcast_id: BroadcastId,
    pub shop_id: ShopId,
    pub product_id: ProductId,
    pub title: ProductTitle,
    pub unit: Unit,
    pub price: Fen,
    pub per_buyer_limit: u32,
    pub buyers: Buyers,
    pub hold_secs: u32,
    pub starts_at: Option<UnixMillis>,
    pub ends_at: Option<UnixMillis>,
    pub ended_at: Option<UnixMillis>,
    /// Presale: when the harvest is expected to ship.
    pub ships_on: Option<ShipDate>,
    pub state: OfferState,
    pub counts: StockCounts,
    /// Server time the state was computed at, so a countdown can correct
    /// for the phone's clock.
    pub as_of: UnixMillis,
}

/// A buyer's "buy now".
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    pub offer: OfferId,
    pub buyer: Subject,
    pub quantity: u32,
    /// The `Idempotency-Key` header, or the live channel's nonce. Scoped
    /// per buyer; 1 to [`crate::MAX_IDEMPOTENCY_KEY_LEN`] printable ASCII
    /// characters.
    pub idempotency_key: Option<String>,
}

/// A held reservation, as the buyer sees it; its `Serialize` is the API's
/// reservation body (money as `…_fen`, times as RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservationView {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ReservationId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub offer_id: OfferId,
    pub quantity: u32,
    #[serde(rename = "unit_price_fen")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub unit_price: Fen,
    #[serde(rename = "total_fen")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub total: Fen,
    #[serde(with = "domain::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = domain::Timestamp))]
    pub created_at: UnixMillis,
    /// Confirm (check out) before this, or the units go back on sale.
    #[serde(with = "domain::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = domain::Timestamp))]
    pub expires_at: UnixMillis,
}

/// A reservation as its buyer reads it back: what was held and where it
/// stands now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuyerReservation {
    #[serde(flatten)]
    pub view: ReservationView,
    /// `held` (check out before `expires_at`), `confirmed` (an order was
    /// placed), `cancelled` or `expired`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "held"))]
    pub state: domain::ReservationState,
}

/// What the buyer enters to turn a reservation into an order. Serde only
/// for a call forwarded to the offer's node (cluster mode).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkout {
    pub name: PersonName,
    pub mobile: Mobile,
    pub address: Address,
    pub payment: PaymentMethod,
}

impl Checkout {
    /// Parses a checkout form, reporting every bad field at once (fields
    /// `name`, `mobile`, `address`, `payment_method`).
    pub fn parse(
        name: &str,
        mobile: &str,
        address: &str,
        payment_method: &str,
    ) -> Result<Checkout, OrdersError> {
        let (name, mobile, address, payment) = (
            field("name", PersonName::parse(name)),
            field("mobile", Mobile::parse(mobile)),
            field("address", Address::parse(address)),
            field("payment_method", PaymentMethod::parse(payment_method)),
        )
            .all()
            .map_err(OrdersError::Validation)?;
        Ok(Checkout {
            name,
            mobile,
            address,
            payment,
        })
    }
}

/// An order: the store's record is the one shape, from the database to the
/// JSON body and the CSV sheet.
pub use store::OrderRecord;

/// What the live channel hears from the order service. Emitted only after
/// the change is committed. Events with a `buyer` are private: deliver them
/// to that subject's connections only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OfferEvent {
    /// Counts, state, price, limit or times of an offer changed. Emitted at
    /// most once per committed group, so a hot offer produces a few per
    /// second, not one per tap.
    Snapshot { snapshot: Arc<OfferSnapshot> },
    /// Someone bought: for the ticker. `place` is coarse (province and one
    /// division below, e.g. "山西 忻州市") or absent; never personal data.
    Sale {
        offer_id: OfferId,
        broadcast_id: BroadcastId,
        quantity: u32,
        place: Option<String>,
    },
    /// Private: the buyer's checkout became an order (committed), so their
    /// other tabs and phones in the room can show it.
    OrderPlaced {
        buyer: Subject,
        broadcast_id: BroadcastId,
        reservation_id: ReservationId,
        order_id: OrderId,
    },
    /// Private: the buyer did not confirm in time; the units are back.
    ReservationExpired {
        buyer: Subject,
        broadcast_id: BroadcastId,
        offer_id: OfferId,
        reservation_id: ReservationId,
    },
}

impl OfferEvent {
    /// The broadcast (room) the event belongs to.
    pub fn broadcast_id(&self) -> &BroadcastId {
        match self {
            OfferEvent::Snapshot { snapshot } => &snapshot.broadcast_id,
            OfferEvent::Sale { broadcast_id, .. }
            | OfferEvent::OrderPlaced { broadcast_id, .. }
            | OfferEvent::ReservationExpired { broadcast_id, .. } => broadcast_id,
        }
    }

    /// `Some(subject)` for events only that buyer may see.
    pub fn private_to(&self) -> Option<&Subject> {
        match self {
            OfferEvent::OrderPlaced { buyer, .. }
            | OfferEvent::ReservationExpired { buyer, .. } => Some(buyer),
            OfferEvent::Snapshot { .. } | OfferEvent::Sale { .. } => None,
        }
    }
}
