//! Live offers, reservations, orders and idempotency keys.
//!
//! The order service keeps each live offer's counts in memory and writes
//! what it decided here in groups ([`Store::commit_offer_group`]): one
//! transaction for many reservations, so a hot offer costs one fsync per
//! group instead of one per tap. Everything the service needs to rebuild its
//! memory after a restart is read back by the `*_to_load` queries.

use crate::millis;
use crate::{Store, StoreError};
use domain::{
    Address, BroadcastId, Buyers, Carrier, Fen, Mobile, OfferId, OrderId, OrderState,
    PaymentMethod, PersonName, ProductId, ProductTitle, Reason, ReservationId, ReservationState,
    ShipDate, ShopId, StockCounts, Subject, TrackingNumber, Unit, UnixMillis,
};
use sqlx::{AssertSqlSafe, Row};
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------- offers --

/// A product put on sale during a broadcast, with its live counts.
#[derive(Clone, Debug)]
pub struct OfferRecord {
    pub id: OfferId,
    pub broadcast_id: BroadcastId,
    pub shop_id: ShopId,
    pub product_id: ProductId,
    pub title: ProductTitle,
    pub unit: Unit,
    /// Presale: the product's expected ship date when the offer was made.
    pub ships_on: Option<ShipDate>,
    pub price: Fen,
    pub per_buyer_limit: u32,
    /// Who may buy: anyone, or only buyers with an account.
    pub buyers: Buyers,
    pub hold_ms: i64,
    pub starts_at: Option<UnixMillis>,
    pub ends_at: Option<UnixMillis>,
    pub counts: StockCounts,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub ended_at: Option<UnixMillis>,
}

pub struct NewOfferRecord {
    pub broadcast_id: BroadcastId,
    pub shop_id: ShopId,
    pub product_id: ProductId,
    pub title: ProductTitle,
    pub unit: Unit,
    pub ships_on: Option<ShipDate>,
    pub price: Fen,
    pub quantity: u32,
    pub per_buyer_limit: u32,
    pub buyers: Buyers,
    pub hold_ms: i64,
    pub starts_at: Option<UnixMillis>,
    pub ends_at: Option<UnixMillis>,
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    id: String,
    broadcast_id: String,
    shop_id: String,
    product_id: String,
    title: String,
    unit: String,
    ships_on: Option<String>,
    price_fen: i64,
    per_buyer_limit: i64,
    hold_ms: i64,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    allotted: i64,
    available: i64,
    held: i64,
    sold: i64,
    created_at: i64,
    updated_at: i64,
    ended_at: Option<i64>,
    buyers: String,
}

macro_rules! offer_columns {
    () => {
        "id, broadcast_id, shop_id, product_id, title, unit, ships_on, price_fen, per_buyer_limit, hold_ms, \
         starts_at, ends_at, allotted, available, held, sold, created_at, updated_at, ended_at, buyers"
    };
}

fn quantity(what: &str, id: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} of {id}: {value}")))
}

fn ship_date(id: &str, raw: Option<String>) -> Result<Option<ShipDate>, StoreError> {
    raw.map(|d| {
        ShipDate::parse(&d).map_err(|_| StoreError::Corrupt(format!("{id} ships_on {d:?}")))
    })
    .transpose()
}

impl TryFrom<OfferRow> for OfferRecord {
    type Error = StoreError;
    fn try_from(r: OfferRow) -> Result<Self, StoreError> {
        let counts = StockCounts {
            allotted: quantity("allotted", &r.id, r.allotted)?,
            available: quantity("available", &r.id, r.available)?,
            held: quantity("held", &r.id, r.held)?,
            sold: quantity("sold", &r.id, r.sold)?,
        };
        let buyers = Buyers::from_db(&r.buyers)
            .ok_or_else(|| StoreError::Corrupt(format!("offer {} buyers {:?}", r.id, r.buyers)))?;
        Ok(OfferRecord {
            per_buyer_limit: quantity("per_buyer_limit", &r.id, r.per_buyer_limit)?,
            buyers,
            ships_on: ship_date(&r.id, r.ships_on)?,
            id: OfferId::from_trusted(r.id),
            broadcast_id: BroadcastId::from_trusted(r.broadcast_id),
            shop_id: ShopId::from_trusted(r.shop_id),
            product_id: ProductId::from_trusted(r.product_id),
            title: ProductTitle::from_trusted(r.title),
            unit: Unit::from_trusted(r.unit),
            price: Fen::from_trusted(r.price_fen),
            hold_ms: r.hold_ms,
            starts_at: millis(r.starts_at),
            ends_at: millis(r.ends_at),
            counts,
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
            ended_at: millis(r.ended_at),
        })
    }
}

// ---------------------------------------------------------- reservations --

#[derive(Clone, Debug)]
pub struct ReservationRecord {
    pub id: ReservationId,
    pub offer_id: OfferId,
    pub buyer: Subject,
    pub quantity: u32,
    pub state: ReservationState,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub closed_at: Option<UnixMillis>,
    pub idempotency_key: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: String,
    offer_id: String,
    buyer: String,
    quantity: i64,
    state: String,
    created_at: i64,
    expires_at: i64,
    closed_at: Option<i64>,
    idempotency_key: Option<String>,
}

macro_rules! reservation_columns {
    () => {
        "id, offer_id, buyer, quantity, state, created_at, expires_at, closed_at, idempotency_key"
    };
}

/// Keyed reservations with their offer's price (see
/// [`Store::keyed_reservations_since`]); the caller adds the filter.
macro_rules! keyed_reservations_select {
    () => {
        "SELECT r.id, r.offer_id, r.buyer, r.quantity, r.state, r.created_at, r.expires_at, \
         r.closed_at, r.idempotency_key, o.price_fen \
         FROM reservations r JOIN offers o ON o.id = r.offer_id"
    };
}

/// A fencing token as the BIGINT column holds it.
fn fence_value(token: u64) -> Result<i64, StoreError> {
    i64::try_from(token)
        .map_err(|_| StoreError::Corrupt(format!("fencing token {token} too large")))
}

impl TryFrom<ReservationRow> for ReservationRecord {
    type Error = StoreError;
    fn try_from(r: ReservationRow) -> Result<Self, StoreError> {
        let state = ReservationState::from_db(&r.state).ok_or_else(|| {
            StoreError::Corrupt(format!("reservation {} state {:?}", r.id, r.state))
        })?;
        Ok(ReservationRecord {
            quantity: quantity("quantity", &r.id, r.quantity)?,
            id: ReservationId::from_trusted(r.id),
            offer_id: OfferId::from_trusted(r.offer_id),
            buyer: Subject::from_trusted(r.buyer),
            state,
            created_at: millis(r.created_at),
            expires_at: millis(r.expires_at),
            closed_at: millis(r.closed_at),
            idempotency_key: r.idempotency_key,
        })
    }
}

/// A reservation created with an idempotency key, with what a repeat of
/// the same request must answer.
#[derive(Clone, Debug)]
pub struct KeyedReservationRecord {
    pub reservation: ReservationRecord,
    pub unit_price: Fen,
}

/// A new reservation, written in a group.
#[derive(Clone, Debug)]
pub struct NewReservationRow {
    pub id: ReservationId,
    pub buyer: Subject,
    pub quantity: u32,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub idempotency_key: Option<String>,
}

/// A held reservation that expired or that its buyer cancelled.
#[derive(Clone, Debug)]
pub struct ReleaseRow {
    pub id: ReservationId,
    /// [`ReservationState::Expired`] or [`ReservationState::Cancelled`].
    pub state: ReservationState,
    pub at: UnixMillis,
}

// ---------------------------------------------------------------- orders --

/// An order as the farmer and the buyer see it: the one record from the
/// database to the JSON body (this `Serialize`, wrapped by the API with the
/// private link) and the CSV sheet (`orders::csv`). Contains personal data:
/// only the shop's owner and the holder of the private link receive it.
/// Serialized without the link token, the buyer, the reservation and the
/// coarse place; money as `…_fen` integers, times as RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderRecord {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ord_ykmgunnz9g794vvk"))]
    pub id: OrderId,
    /// The buyer's private link secret.
    #[serde(skip)]
    pub token: String,
    #[serde(skip)]
    pub reservation_id: ReservationId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub offer_id: OfferId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub broadcast_id: BroadcastId,
    /// The shop to pay (its `payment_note` says how, for transfers).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub shop_id: ShopId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub product_id: ProductId,
    #[serde(skip)]
    pub buyer: Subject,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub title: ProductTitle,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub unit: Unit,
    /// Presale: expected ship date (`YYYY-MM-DD`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ships_on: Option<ShipDate>,
    pub quantity: u32,
    #[serde(rename = "unit_price_fen")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub unit_price: Fen,
    #[serde(rename = "total_fen")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub total: Fen,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub recipient_name: PersonName,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub mobile: Mobile,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub address: Address,
    #[serde(skip)]
    pub coarse_place: Option<String>,
    /// `cash_on_delivery`, `bank_transfer` or `wechat_transfer`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub payment_method: PaymentMethod,
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: OrderState,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub carrier: Option<Carrier>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tracking_number: Option<TrackingNumber>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub cancel_reason: Option<Reason>,
    #[serde(with = "domain::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = domain::Timestamp))]
    pub created_at: UnixMillis,
    #[serde(skip)]
    pub updated_at: UnixMillis,
    #[serde(with = "domain::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<domain::Timestamp>))]
    pub paid_at: Option<UnixMillis>,
    #[serde(with = "domain::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<domain::Timestamp>))]
    pub shipped_at: Option<UnixMillis>,
    #[serde(with = "domain::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<domain::Timestamp>))]
    pub delivered_at: Option<UnixMillis>,
    #[serde(with = "domain::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<domain::Timestamp>))]
    pub cancelled_at: Option<UnixMillis>,
}

/// An order written when a held reservation is confirmed (in a group).
#[derive(Clone, Debug)]
pub struct NewOrderRecord {
    pub id: OrderId,
    pub token: String,
    pub reservation_id: ReservationId,
    pub offer_id: OfferId,
    pub broadcast_id: BroadcastId,
    pub shop_id: ShopId,
    pub product_id: ProductId,
    pub buyer: Subject,
    pub title: ProductTitle,
    pub unit: Unit,
    pub ships_on: Option<ShipDate>,
    pub quantity: u32,
    pub unit_price: Fen,
    pub recipient_name: PersonName,
    pub mobile: Mobile,
    pub address: Address,
    pub coarse_place: Option<String>,
    pub payment_method: PaymentMethod,
    pub created_at: UnixMillis,
}

impl NewOrderRecord {
    /// The record as it reads back right after the group commits.
    pub fn into_record(self) -> OrderRecord {
        OrderRecord {
            total: self.unit_price.times(self.quantity),
            id: self.id,
            token: self.token,
            reservation_id: self.reservation_id,
            offer_id: self.offer_id,
            broadcast_id: self.broadcast_id,
            shop_id: self.shop_id,
            product_id: self.product_id,
            buyer: self.buyer,
            title: self.title,
            unit: self.unit,
            ships_on: self.ships_on,
            quantity: self.quantity,
            unit_price: self.unit_price,
            recipient_name: self.recipient_name,
            mobile: self.mobile,
            address: self.address,
            coarse_place: self.coarse_place,
            payment_method: self.payment_method,
            state: OrderState::Placed,
            carrier: None,
            tracking_number: None,
            cancel_reason: None,
            created_at: self.created_at,
            updated_at: self.created_at,
            paid_at: None,
            shipped_at: None,
            delivered_at: None,
            cancelled_at: None,
        }
    }
}

/// An unshipped order being cancelled, in a group (its units come back).
#[derive(Clone, Debug)]
pub struct OrderCancelRow {
    pub order_id: OrderId,
    /// The state the order was seen in; the cancel applies only if it still is.
    pub from: OrderState,
    pub reason: Reason,
    pub at: UnixMillis,
}

/// Optional filters for a shop's order list; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub state: Option<OrderState>,
    pub broadcast: Option<BroadcastId>,
    pub product: Option<ProductId>,
    pub offer: Option<OfferId>,
}

/// A farmer's step in an order's life, written if the order is still in
/// `from` (so two phones acting at once cannot both win).
pub struct OrderProgress<'a> {
    pub from: OrderState,
    pub to: OrderState,
    pub at: UnixMillis,
    pub shipping: Option<(&'a Carrier, &'a TrackingNumber)>,
    pub cancel_reason: Option<&'a Reason>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    token: String,
    reservation_id: String,
    offer_id: String,
    broadcast_id: String,
    shop_id: String,
    product_id: String,
    buyer: String,
    title: String,
    unit: String,
    ships_on: Option<String>,
    quantity: i64,
    unit_price_fen: i64,
    total_fen: i64,
    recipient_name: String,
    mobile: String,
    address: String,
    coarse_place: Option<String>,
    payment_method: String,
    state: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    cancel_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    paid_at: Option<i64>,
    shipped_at: Option<i64>,
    delivered_at: Option<i64>,
    cancelled_at: Option<i64>,
}

macro_rules! order_columns {
    () => {
        "id, token, reservation_id, offer_id, broadcast_id, shop_id, product_id, buyer, title, unit, ships_on, \
         quantity, unit_price_fen, total_fen, recipient_name, mobile, address, coarse_place, payment_method, state, \
         carrier, tracking_number, cancel_reason, created_at, updated_at, paid_at, shipped_at, delivered_at, cancelled_at"
    };
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        let state = OrderState::from_db(&r.state)
            .ok_or_else(|| StoreError::Corrupt(format!("order {} state {:?}", r.id, r.state)))?;
        let payment_method = PaymentMethod::from_db(&r.payment_method).ok_or_else(|| {
            StoreError::Corrupt(format!("order {} payment {:?}", r.id, r.payment_method))
        })?;
        Ok(OrderRecord {
            quantity: quantity("quantity", &r.id, r.quantity)?,
            ships_on: ship_date(&r.id, r.ships_on)?,
            id: OrderId::from_trusted(r.id),
            token: r.token,
            reservation_id: ReservationId::from_trusted(r.reservation_id),
            offer_id: OfferId::from_trusted(r.offer_id),
            broadcast_id: BroadcastId::from_trusted(r.broadcast_id),
            shop_id: ShopId::from_trusted(r.shop_id),
            product_id: ProductId::from_trusted(r.product_id),
            buyer: Subject::from_trusted(r.buyer),
            title: ProductTitle::from_trusted(r.title),
            unit: Unit::from_trusted(r.unit),
            unit_price: Fen::from_trusted(r.unit_price_fen),
            total: Fen::from_trusted(r.total_fen),
            recipient_name: PersonName::from_trusted(r.recipient_name),
            mobile: Mobile::from_trusted(r.mobile),
            address: Address::from_trusted(r.address),
            coarse_place: r.coarse_place,
            payment_method,
            state,
            carrier: r.carrier.map(Carrier::from_trusted),
            tracking_number: r.tracking_number.map(TrackingNumber::from_trusted),
            cancel_reason: r.cancel_reason.map(Reason::from_trusted),
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
            paid_at: millis(r.paid_at),
            shipped_at: millis(r.shipped_at),
            delivered_at: millis(r.delivered_at),
            cancelled_at: millis(r.cancelled_at),
        })
    }
}

// ----------------------------------------------------------------- groups --

/// Net change to an offer's counts (and its product's stock) from the
/// reservations, releases and confirmations of one group, as the writer
/// decided them. Order cancellations are not in here: whether they apply is
/// only known inside the transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountsDelta {
    pub allotted: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    pub product_stock: i64,
}

impl CountsDelta {
    pub fn is_zero(&self) -> bool {
        *self == CountsDelta::default()
    }
}

/// Everything one offer's writer decided since its last commit, written in
/// one transaction: all of it or none of it.
#[derive(Debug)]
pub struct OfferGroup {
    pub offer_id: OfferId,
    pub product_id: ProductId,
    pub now: UnixMillis,
    pub holds: Vec<NewReservationRow>,
    pub releases: Vec<ReleaseRow>,
    pub confirms: Vec<NewOrderRecord>,
    pub order_cancels: Vec<OrderCancelRow>,
    pub delta: CountsDelta,
    /// Whether the offer had already ended in the database before this
    /// group: cancelled orders' units then go to the product, not the offer.
    pub ended_before: bool,
    /// Ends the offer at this time, after the rest of the group: whatever is
    /// then available goes back to the product.
    pub end_at: Option<UnixMillis>,
    /// Cluster mode: the writer's fencing token. The group commits only if
    /// the offer's `writer_fence` is still this token, else
    /// [`StoreError::Fenced`]. `None` on a single server.
    pub fence: Option<u64>,
}

impl OfferGroup {
    pub fn new(offer_id: OfferId, product_id: ProductId, ended_before: bool) -> Self {
        OfferGroup {
            offer_id,
            product_id,
            now: UnixMillis::EPOCH,
            holds: Vec::new(),
            releases: Vec::new(),
            confirms: Vec::new(),
            order_cancels: Vec::new(),
            delta: CountsDelta::default(),
            ended_before,
            end_at: None,
            fence: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
            && self.releases.is_empty()
            && self.confirms.is_empty()
            && self.order_cancels.is_empty()
            && self.delta.is_zero()
            && self.end_at.is_none()
    }
}

/// What the database decided inside a group.
#[derive(Debug, Default)]
pub struct GroupOutcome {
    /// One entry per `order_cancels` entry: whether it applied (false when
    /// the order had meanwhile moved on, e.g. been shipped).
    pub cancels_applied: Vec<bool>,
}

/// The stored truth about one offer's units, for audits and tests: the
/// counts, and the same numbers summed from the rows they stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferAudit {
    pub counts: StockCounts,
    pub held_in_reservations: u64,
    /// Orders not cancelled, or cancelled after shipping.
    pub sold_in_orders: u64,
}

impl OfferAudit {
    /// Counts balanced, and held/sold agree with the rows.
    pub fn is_consistent(&self) -> bool {
        self.counts.is_balanced()
            && u64::from(self.counts.held) == self.held_in_reservations
            && u64::from(self.counts.sold) == self.sold_in_orders
    }
}

/// Rows per multi-row INSERT, largest first. A few fixed sizes keep the
/// number of distinct statements (and so of prepared statements) small.
const INSERT_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// `INSERT INTO reservations … VALUES (…), (…)` for `rows` rows: `$1` is the
/// offer, then six parameters per row. Only placeholders are generated,
/// never data, which is why `AssertSqlSafe` is sound here.
fn reservation_insert_sql(chunk_index: usize) -> Arc<str> {
    static CACHE: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        INSERT_CHUNKS
            .iter()
            .map(|&rows| {
                let mut sql = String::from(
                    "INSERT INTO reservations (id, offer_id, buyer, quantity, state, created_at, expires_at, idempotency_key) VALUES ",
                );
                for row in 0..rows {
                    let p = 2 + row * 6;
                    if row > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, $1, ${}, ${}, 'held', ${}, ${}, ${})",
                        p,
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5
                    ));
                }
                Arc::from(sql)
            })
            .collect()
    });
    cache[chunk_index].clone()
}

const UPDATE_ORDER_STATE: &str = "UPDATE orders SET state = $1, updated_at = $2, \
     paid_at = CASE WHEN $1 = 'paid' THEN $2 ELSE paid_at END, \
     shipped_at = CASE WHEN $1 = 'shipped' THEN $2 ELSE shipped_at END, \
     delivered_at = CASE WHEN $1 = 'delivered' THEN $2 ELSE delivered_at END, \
     cancelled_at = CASE WHEN $1 = 'cancelled' THEN $2 ELSE cancelled_at END, \
     carrier = COALESCE($3, carrier), tracking_number = COALESCE($4, tracking_number), \
     cancel_reason = COALESCE($5, cancel_reason) \
     WHERE id = $6 AND state = $7";

impl Store {
    /// Creates an offer, taking its units out of the product's stock in the
    /// same transaction. `Conflict("stock")` if the product (still in the
    /// shop, not archived) has fewer than `quantity` units.
    pub async fn create_offer(
        &self,
        new: NewOfferRecord,
        now: UnixMillis,
    ) -> Result<OfferRecord, StoreError> {
        let id = OfferId::generate();
        let mut tx = self.pool().begin().await?;
        let taken = sqlx::query(
            "UPDATE products SET stock = stock - $1, updated_at = $2 \
             WHERE id = $3 AND shop_id = $4 AND archived_at IS NULL AND stock >= $1",
        )
        .bind(i64::from(new.quantity))
        .bind(now.millis())
        .bind(new.product_id.as_str())
        .bind(new.shop_id.as_str())
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() != 1 {
            return Err(StoreError::Conflict("stock"));
        }
        let units = i64::from(new.quantity);
        sqlx::query(concat!(
            "INSERT INTO offers (",
            offer_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 0, 0, $14, $14, NULL, $15)"
        ))
        .bind(id.as_str())
        .bind(new.broadcast_id.as_str())
        .bind(new.shop_id.as_str())
        .bind(new.product_id.as_str())
        .bind(new.title.as_str())
        .bind(new.unit.as_str())
        .bind(new.ships_on.map(|d| d.to_string()))
        .bind(new.price.get())
        .bind(i64::from(new.per_buyer_limit))
        .bind(new.hold_ms)
        .bind(new.starts_at.map(UnixMillis::millis))
        .bind(new.ends_at.map(UnixMillis::millis))
        .bind(units)
        .bind(now.millis())
        .bind(new.buyers.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.offer(&id).await
    }

    pub async fn offer(&self, id: &OfferId) -> Result<OfferRecord, StoreError> {
        let row: OfferRow = sqlx::query_as(concat!(
            "SELECT ",
            offer_columns!(),
            " FROM offers WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    /// Oldest first.
    pub async fn offers_of_broadcast(
        &self,
        broadcast: &BroadcastId,
    ) -> Result<Vec<OfferRecord>, StoreError> {
        let rows: Vec<OfferRow> = sqlx::query_as(concat!(
            "SELECT ",
            offer_columns!(),
            " FROM offers WHERE broadcast_id = $1 ORDER BY created_at, id"
        ))
        .bind(broadcast.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(OfferRecord::try_from).collect()
    }

    /// Offers the order service loads on start: not ended yet, or ended but
    /// still holding reservations whose expiry must be armed.
    pub async fn offers_to_load(&self) -> Result<Vec<OfferRecord>, StoreError> {
        let rows: Vec<OfferRow> = sqlx::query_as(concat!(
            "SELECT ",
            offer_columns!(),
            " FROM offers WHERE ended_at IS NULL OR held > 0 ORDER BY created_at, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(OfferRecord::try_from).collect()
    }

    /// An offer's held reservations, soonest expiry first.
    pub async fn held_reservations(
        &self,
        offer: &OfferId,
    ) -> Result<Vec<ReservationRecord>, StoreError> {
        let rows: Vec<ReservationRow> = sqlx::query_as(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE offer_id = $1 AND state = 'held' ORDER BY expires_at, id"
        ))
        .bind(offer.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(ReservationRecord::try_from).collect()
    }

    /// Units each buyer bought of an offer: orders not cancelled, or
    /// cancelled after they shipped (those units left the farm and stay
    /// counted as sold).
    pub async fn bought_per_buyer(
        &self,
        offer: &OfferId,
    ) -> Result<Vec<(Subject, u32)>, StoreError> {
        let rows = sqlx::query(
            "SELECT buyer, CAST(SUM(quantity) AS BIGINT) AS bought FROM orders \
             WHERE offer_id = $1 AND (state <> 'cancelled' OR shipped_at IS NOT NULL) GROUP BY buyer",
        )
        .bind(offer.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                let buyer: String = row.try_get("buyer")?;
                let bought: i64 = row.try_get("bought")?;
                Ok((quantity("bought", &buyer, bought)?, buyer))
            })
            .map(|r: Result<(u32, String), StoreError>| {
                r.map(|(q, b)| (Subject::from_trusted(b), q))
            })
            .collect()
    }

    /// An offer's held reservations, soonest expiry first, each with the
    /// person its buyer stands for (see [`Store::person_of`]): what the
    /// order service rebuilds per-person tallies from.
    pub async fn held_reservations_by_person(
        &self,
        offer: &OfferId,
    ) -> Result<Vec<(ReservationRecord, Subject)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.offer_id, r.buyer, r.quantity, r.state, r.created_at, r.expires_at, r.closed_at, \
             r.idempotency_key, COALESCE(g.person, r.buyer) AS person \
             FROM reservations r LEFT JOIN guests g ON g.id = r.buyer \
             WHERE r.offer_id = $1 AND r.state = 'held' ORDER BY r.expires_at, r.id",
        )
        .bind(offer.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                let person: String = row.try_get("person")?;
                let r = ReservationRow {
                    id: row.try_get("id")?,
                    offer_id: row.try_get("offer_id")?,
                    buyer: row.try_get("buyer")?,
                    quantity: row.try_get("quantity")?,
                    state: row.try_get("state")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    closed_at: row.try_get("closed_at")?,
                    idempotency_key: row.try_get("idempotency_key")?,
                };
                Ok((r.try_into()?, Subject::from_trusted(person)))
            })
            .collect()
    }

    /// Units each person (see [`Store::person_of`]) bought of an offer,
    /// counted like [`Store::bought_per_buyer`].
    pub async fn bought_per_person(
        &self,
        offer: &OfferId,
    ) -> Result<Vec<(Subject, u32)>, StoreError> {
        let rows = sqlx::query(
            "SELECT COALESCE(g.person, o.buyer) AS person, CAST(SUM(o.quantity) AS BIGINT) AS bought \
             FROM orders o LEFT JOIN guests g ON g.id = o.buyer \
             WHERE o.offer_id = $1 AND (o.state <> 'cancelled' OR o.shipped_at IS NOT NULL) \
             GROUP BY COALESCE(g.person, o.buyer)",
        )
        .bind(offer.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                let person: String = row.try_get("person")?;
                let bought: i64 = row.try_get("bought")?;
                Ok((quantity("bought", &person, bought)?, person))
            })
            .map(|r: Result<(u32, String), StoreError>| {
                r.map(|(q, p)| (Subject::from_trusted(p), q))
            })
            .collect()
    }

    /// Reservations made with an idempotency key since `since`, with their
    /// offer's price, so repeats after a restart get the same answer.
    pub async fn keyed_reservations_since(
        &self,
        since: UnixMillis,
    ) -> Result<Vec<KeyedReservationRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            keyed_reservations_select!(),
            " WHERE r.idempotency_key IS NOT NULL AND r.created_at >= $1 ORDER BY r.created_at, r.id"
        ))
        .bind(since.millis())
        .fetch_all(self.pool())
        .await?;
        Self::keyed_records(rows)
    }

    /// [`Store::keyed_reservations_since`] of one offer: what a node taking
    /// over the offer's writer must answer repeated taps with.
    pub async fn keyed_reservations_of_offer_since(
        &self,
        offer: &OfferId,
        since: UnixMillis,
    ) -> Result<Vec<KeyedReservationRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            keyed_reservations_select!(),
            " WHERE r.offer_id = $1 AND r.idempotency_key IS NOT NULL AND r.created_at >= $2 \
             ORDER BY r.created_at, r.id"
        ))
        .bind(offer.as_str())
        .bind(since.millis())
        .fetch_all(self.pool())
        .await?;
        Self::keyed_records(rows)
    }

    fn keyed_records(
        rows: Vec<sqlx::any::AnyRow>,
    ) -> Result<Vec<KeyedReservationRecord>, StoreError> {
        rows.into_iter()
            .map(|row| {
                let price: i64 = row.try_get("price_fen")?;
                let r = ReservationRow {
                    id: row.try_get("id")?,
                    offer_id: row.try_get("offer_id")?,
                    buyer: row.try_get("buyer")?,
                    quantity: row.try_get("quantity")?,
                    state: row.try_get("state")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    closed_at: row.try_get("closed_at")?,
                    idempotency_key: row.try_get("idempotency_key")?,
                };
                Ok(KeyedReservationRecord {
                    reservation: r.try_into()?,
                    unit_price: Fen::from_trusted(price),
                })
            })
            .collect()
    }

    /// A buyer's reservations in any state, newest first.
    pub async fn reservations_of_buyer(
        &self,
        buyer: &Subject,
        limit: u32,
    ) -> Result<Vec<ReservationRecord>, StoreError> {
        let rows: Vec<ReservationRow> = sqlx::query_as(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE buyer = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(buyer.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(ReservationRecord::try_from).collect()
    }

    pub async fn reservation(&self, id: &ReservationId) -> Result<ReservationRecord, StoreError> {
        let row: ReservationRow = sqlx::query_as(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    /// Cluster mode: makes `token` the offer's fence, so only the writer
    /// holding it can commit from now on. Done before the new writer reads
    /// the offer back: whatever an older writer committed is then in what
    /// it reads, and nothing it tries later commits. False if the fence is
    /// already at `token` or newer (a newer writer exists) or there is no
    /// such offer.
    pub async fn raise_offer_fence(&self, offer: &OfferId, token: u64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE offers SET writer_fence = $1 WHERE id = $2 AND writer_fence < $1")
                .bind(fence_value(token)?)
                .bind(offer.as_str())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes one group in one transaction. On any error nothing of the
    /// group is written. A release or confirmation of a reservation that is
    /// not held in the database means memory and database disagree: the
    /// group is refused with [`StoreError::Corrupt`] so the caller reloads.
    pub async fn commit_offer_group(&self, group: &OfferGroup) -> Result<GroupOutcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let offer = group.offer_id.as_str();

        if let Some(token) = group.fence {
            // First, so the offer's row stays locked (PostgreSQL) until the
            // commit: a takeover raising the fence waits for this group or
            // this group sees the raised fence, never both writers at once.
            let ours = sqlx::query(
                "UPDATE offers SET writer_fence = writer_fence WHERE id = $1 AND writer_fence = $2",
            )
            .bind(offer)
            .bind(fence_value(token)?)
            .execute(&mut *tx)
            .await?;
            if ours.rows_affected() != 1 {
                return Err(StoreError::Fenced);
            }
        }

        // New reservations first: a release in the same group may refer to one.
        let mut rest = &group.holds[..];
        while !rest.is_empty() {
            let (index, size) = INSERT_CHUNKS
                .iter()
                .enumerate()
                .find(|(_, size)| **size <= rest.len())
                .map(|(i, s)| (i, *s))
                .unwrap_or((INSERT_CHUNKS.len() - 1, 1));
            let (chunk, tail) = rest.split_at(size);
            let mut q = sqlx::query(AssertSqlSafe(reservation_insert_sql(index))).bind(offer);
            for h in chunk {
                q = q
                    .bind(h.id.as_str())
                    .bind(h.buyer.as_str())
                    .bind(i64::from(h.quantity))
                    .bind(h.created_at.millis())
                    .bind(h.expires_at.millis())
                    .bind(h.idempotency_key.as_deref());
            }
            q.execute(&mut *tx).await?;
            rest = tail;
        }

        for r in &group.releases {
            let done = sqlx::query(
                "UPDATE reservations SET state = $1, closed_at = $2 WHERE id = $3 AND offer_id = $4 AND state = 'held'",
            )
            .bind(r.state.as_str())
            .bind(r.at.millis())
            .bind(r.id.as_str())
            .bind(offer)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Corrupt(format!(
                    "release of reservation {} that is not held",
                    r.id
                )));
            }
        }

        for o in &group.confirms {
            let done = sqlx::query(
                "UPDATE reservations SET state = 'confirmed', closed_at = $1 WHERE id = $2 AND offer_id = $3 AND state = 'held'",
            )
            .bind(o.created_at.millis())
            .bind(o.reservation_id.as_str())
            .bind(offer)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Corrupt(format!(
                    "confirmation of reservation {} that is not held",
                    o.reservation_id
                )));
            }
            insert_order(&mut tx, o).await?;
        }

        let mut delta = group.delta;
        let mut outcome = GroupOutcome::default();
        for c in &group.order_cancels {
            let done = sqlx::query(UPDATE_ORDER_STATE)
                .bind(OrderState::Cancelled.as_str())
                .bind(c.at.millis())
                .bind(None::<&str>)
                .bind(None::<&str>)
                .bind(c.reason.as_str())
                .bind(c.order_id.as_str())
                .bind(c.from.as_str())
                .execute(&mut *tx)
                .await?;
            let applied = done.rows_affected() == 1;
            if applied {
                let units: i64 = sqlx::query_scalar("SELECT quantity FROM orders WHERE id = $1")
                    .bind(c.order_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                delta.sold -= units;
                if group.ended_before {
                    delta.allotted -= units;
                    delta.product_stock += units;
                } else {
                    delta.available += units;
                }
            }
            outcome.cancels_applied.push(applied);
        }

        if !delta.is_zero() {
            let done = sqlx::query(
                "UPDATE offers SET allotted = allotted + $1, available = available + $2, held = held + $3, \
                 sold = sold + $4, updated_at = $5, \
                 sold_out_at = CASE WHEN sold_out_at IS NULL AND available + $2 = 0 AND allotted + $1 > 0 \
                 THEN $5 ELSE sold_out_at END WHERE id = $6",
            )
            .bind(delta.allotted)
            .bind(delta.available)
            .bind(delta.held)
            .bind(delta.sold)
            .bind(group.now.millis())
            .bind(offer)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
        }
        if delta.product_stock != 0 {
            sqlx::query("UPDATE products SET stock = stock + $1, updated_at = $2 WHERE id = $3")
                .bind(delta.product_stock)
                .bind(group.now.millis())
                .bind(group.product_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(end_at) = group.end_at {
            // What is available is decided here, from the rows, so units an
            // order cancellation put back in this very group go home too.
            sqlx::query(
                "UPDATE products SET stock = stock + (SELECT available FROM offers WHERE id = $1), updated_at = $2 \
                 WHERE id = $3",
            )
            .bind(offer)
            .bind(end_at.millis())
            .bind(group.product_id.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE offers SET allotted = allotted - available, available = 0, ended_at = $1, updated_at = $1 \
                 WHERE id = $2 AND ended_at IS NULL",
            )
            .bind(end_at.millis())
            .bind(offer)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The stored counts of an offer next to the rows they summarize.
    pub async fn audit_offer(&self, offer: &OfferId) -> Result<OfferAudit, StoreError> {
        let record = self.offer(offer).await?;
        let row = sqlx::query(
            "SELECT \
               CAST(COALESCE((SELECT SUM(quantity) FROM reservations WHERE offer_id = $1 AND state = 'held'), 0) AS BIGINT) AS held, \
               CAST(COALESCE((SELECT SUM(quantity) FROM orders WHERE offer_id = $1 AND (state <> 'cancelled' OR shipped_at IS NOT NULL)), 0) AS BIGINT) AS sold",
        )
        .bind(offer.as_str())
        .fetch_one(self.pool())
        .await?;
        let held: i64 = row.try_get("held")?;
        let sold: i64 = row.try_get("sold")?;
        Ok(OfferAudit {
            counts: record.counts,
            held_in_reservations: held.max(0) as u64,
            sold_in_orders: sold.max(0) as u64,
        })
    }

    pub async fn order(&self, id: &OrderId) -> Result<OrderRecord, StoreError> {
        let row: OrderRow = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    pub async fn order_by_token(&self, token: &str) -> Result<OrderRecord, StoreError> {
        let row: OrderRow = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders WHERE token = $1"
        ))
        .bind(token)
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    pub async fn order_of_reservation(
        &self,
        reservation: &ReservationId,
    ) -> Result<OrderRecord, StoreError> {
        let row: OrderRow = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders WHERE reservation_id = $1"
        ))
        .bind(reservation.as_str())
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    /// A shop's orders, newest first.
    pub async fn orders_of_shop(
        &self,
        shop: &ShopId,
        filter: &OrderFilter,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows: Vec<OrderRow> = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders WHERE shop_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR state = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR broadcast_id = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR product_id = $4) \
             AND (CAST($5 AS TEXT) IS NULL OR offer_id = $5) \
             ORDER BY created_at DESC, id"
        ))
        .bind(shop.as_str())
        .bind(filter.state.map(OrderState::as_str))
        .bind(filter.broadcast.as_ref().map(BroadcastId::as_str))
        .bind(filter.product.as_ref().map(ProductId::as_str))
        .bind(filter.offer.as_ref().map(OfferId::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(OrderRecord::try_from).collect()
    }

    /// A buyer's orders (`usr_…`/`gst_…`), newest first.
    pub async fn orders_of_buyer(&self, buyer: &Subject) -> Result<Vec<OrderRecord>, StoreError> {
        let rows: Vec<OrderRow> = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders WHERE buyer = $1 ORDER BY created_at DESC, id"
        ))
        .bind(buyer.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(OrderRecord::try_from).collect()
    }

    /// Moves an order from `progress.from` to `progress.to`. `Ok(false)` if
    /// it is no longer in `from` (someone else acted first).
    pub async fn update_order_state(
        &self,
        id: &OrderId,
        progress: OrderProgress<'_>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(UPDATE_ORDER_STATE)
            .bind(progress.to.as_str())
            .bind(progress.at.millis())
            .bind(progress.shipping.map(|(c, _)| c.as_str()))
            .bind(progress.shipping.map(|(_, t)| t.as_str()))
            .bind(progress.cancel_reason.map(Reason::as_str))
            .bind(id.as_str())
            .bind(progress.from.as_str())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn insert_order(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    o: &NewOrderRecord,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO orders (",
        order_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 'placed', \
         NULL, NULL, NULL, $20, $20, NULL, NULL, NULL, NULL)"
    ))
    .bind(o.id.as_str())
    .bind(o.token.as_str())
    .bind(o.reservation_id.as_str())
    .bind(o.offer_id.as_str())
    .bind(o.broadcast_id.as_str())
    .bind(o.shop_id.as_str())
    .bind(o.product_id.as_str())
    .bind(o.buyer.as_str())
    .bind(o.title.as_str())
    .bind(o.unit.as_str())
    .bind(o.ships_on.map(|d| d.to_string()))
    .bind(i64::from(o.quantity))
    .bind(o.unit_price.get())
    .bind(o.unit_price.times(o.quantity).get())
    .bind(o.recipient_name.as_str())
    .bind(o.mobile.as_str())
    .bind(o.address.as_str())
    .bind(o.coarse_place.as_deref())
    .bind(o.payment_method.as_str())
    .bind(o.created_at.millis())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::unique("order"))?;
    Ok(())
}
