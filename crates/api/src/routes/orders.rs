//! Live offers, reservations ("buy now"), checkout and the farmer's orders.
//! Every rule (stock, limits, who may do what) is in the order service; the
//! routes parse, call and render.

use super::broadcasts::load_broadcast;
use super::shops::owned_shop;
use crate::auth::{Participant, SignedIn};
use crate::error::{ApiError, ApiResult, Params, ProblemCode};
use crate::extract::{FromRaw, Json, Path, Valid, ValidQuery, parse_id};
use crate::state::AppState;
use crate::views::{Timestamp, optional_time, ts, ts_opt};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{
    BroadcastId, Carrier, Fen, FieldError, Fields, OfferId, OrderId, OrderState, ProductId, Reason,
    ReservationId, TrackingNumber, field, optional,
};
use orders::{
    BuyerReservation, Checkout, NewOffer, OfferSnapshot, OrderFilter, OrderRecord, OrdersError,
    ReservationView, ReserveRequest,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_offers, create_offer))
        .routes(routes!(get_offer))
        .routes(routes!(end_offer))
        .routes(routes!(reserve))
        .routes(routes!(get_reservation, cancel_reservation))
        .routes(routes!(my_reservations))
        .routes(routes!(checkout))
        .routes(routes!(my_orders))
        .routes(routes!(order_by_token))
        .routes(routes!(shop_orders))
        .routes(routes!(shop_orders_csv))
        .routes(routes!(get_order))
        .routes(routes!(mark_paid))
        .routes(routes!(mark_shipped))
        .routes(routes!(mark_delivered))
        .routes(routes!(cancel_order))
}

/// The one place order-service errors become HTTP: status, code and the
/// params a page needs for its words. Exhaustive, so a new error cannot
/// slip through with a guessed status.
pub(crate) fn orders_error(e: OrdersError) -> ApiError {
    let code = ProblemCode::from(&e);
    let refused = |status: StatusCode, detail: String, params: Params| ApiError::Refused {
        status,
        code,
        detail,
        params,
    };
    let params = |pairs: &[(&str, serde_json::Value)]| -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    match e {
        OrdersError::SoldOut { available: 0 } => refused(
            StatusCode::CONFLICT,
            "sold out: every unit is taken; held units come back if buyers do not confirm".into(),
            Params::new(),
        ),
        OrdersError::SoldOut { available } => refused(
            StatusCode::CONFLICT,
            format!("only {available} left: ask for fewer"),
            params(&[("available", available.into())]),
        ),
        OrdersError::OverLimit { limit, already } => refused(
            StatusCode::CONFLICT,
            format!("at most {limit} per buyer; you already have {already}"),
            params(&[("limit", limit.into()), ("already", already.into())]),
        ),
        OrdersError::AccountRequired | OrdersError::Banned => {
            refused(StatusCode::FORBIDDEN, e.to_string(), Params::new())
        }
        OrdersError::NotStarted { starts_at } => {
            let at = Timestamp(starts_at).to_rfc3339().unwrap_or_default();
            refused(
                StatusCode::CONFLICT,
                format!("the offer starts at {at}"),
                params(&[("starts_at", at.into())]),
            )
        }
        OrdersError::Ended | OrdersError::IdempotencyMismatch | OrdersError::InvalidState(_) => {
            refused(StatusCode::CONFLICT, e.to_string(), Params::new())
        }
        OrdersError::Validation(errors) => ApiError::Validation(errors),
        OrdersError::NotFound => ApiError::NotFound("offer, reservation or order"),
        OrdersError::Forbidden => {
            ApiError::Forbidden("only the shop's owner (or the buyer) may do this")
        }
        OrdersError::Unavailable => ApiError::Busy {
            code: ProblemCode::Unavailable,
            detail: "the order service is busy or restarting; please try again".into(),
            retry_after_secs: 1,
        },
        OrdersError::Store(source) => {
            ApiError::Internal(anyhow::anyhow!("order storage: {source}"))
        }
    }
}

/// A live offer as everyone sees it: price, stock, countdown.
#[derive(Serialize, ToSchema)]
pub struct OfferView {
    pub id: String,
    pub broadcast_id: String,
    pub product_id: String,
    pub title: String,
    pub unit: String,
    pub price_fen: i64,
    pub per_buyer_limit: u32,
    /// Who may buy: `anyone` (guests with a nickname too) or
    /// `accounts_only` (signed in with a mobile account; guests are refused
    /// with 403 `account_required`).
    #[schema(value_type = String, example = "anyone")]
    pub buyers: domain::Buyers,
    /// How long a reservation is held for checkout.
    pub hold_seconds: u32,
    /// `upcoming` (countdown to `starts_at`), `open`, `sold_out` or `ended`.
    pub state: String,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Presale: expected ship date.
    #[schema(value_type = Option<String>, example = "2026-10-08")]
    pub ships_on: Option<domain::ShipDate>,
    pub allotted: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    /// Server time of this snapshot, to correct countdowns for clock skew.
    pub as_of: Timestamp,
}

impl From<&OfferSnapshot> for OfferView {
    fn from(s: &OfferSnapshot) -> Self {
        OfferView {
            id: s.offer_id.to_string(),
            broadcast_id: s.broadcast_id.to_string(),
            product_id: s.product_id.to_string(),
            title: s.title.to_string(),
            unit: s.unit.to_string(),
            price_fen: s.price.get(),
            per_buyer_limit: s.per_buyer_limit,
            buyers: s.buyers,
            hold_seconds: s.hold_secs,
            state: s.state.as_str().to_owned(),
            starts_at: ts_opt(s.starts_at),
            ends_at: ts_opt(s.ends_at),
            ended_at: ts_opt(s.ended_at),
            ships_on: s.ships_on,
            allotted: s.counts.allotted,
            available: s.counts.available,
            held: s.counts.held,
            sold: s.counts.sold,
            as_of: ts(s.as_of),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewOfferBody {
    pub product_id: String,
    /// Live price per unit in fen.
    #[schema(example = 12800)]
    pub price_fen: i64,
    /// Units allotted to this broadcast (taken from the product's stock).
    #[schema(example = 100)]
    pub quantity: u32,
    #[schema(example = 2)]
    pub per_buyer_limit: u32,
    /// Who may buy: `anyone` (default) or `accounts_only`, so the per-buyer
    /// limit is one per mobile number rather than one per guest nickname.
    #[serde(default)]
    #[schema(example = "accounts_only")]
    pub buyers: Option<String>,
    /// Countdown: buying opens at this time (RFC 3339). Absent = now.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<String>,
    /// Minutes a reservation is held for checkout (1–60, default 10).
    #[serde(default)]
    pub hold_minutes: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
pub struct ReserveBody {
    #[schema(example = 1)]
    pub quantity: u32,
}

#[derive(Deserialize, ToSchema)]
pub struct CheckoutBody {
    #[schema(example = "李华")]
    pub name: String,
    #[schema(example = "13912345678")]
    pub mobile: String,
    #[schema(example = "北京市海淀区学院路 1 号")]
    pub address: String,
    /// `cash_on_delivery`, `bank_transfer` or `wechat_transfer`.
    #[schema(example = "cash_on_delivery")]
    pub payment_method: String,
}

/// An order: the store's record as it serializes, plus the buyer's private
/// link. Contains the buyer's contact details: only the shop's owner and the
/// holder of the private link ever receive it.
#[derive(Serialize, ToSchema)]
pub struct OrderBody {
    #[serde(flatten)]
    pub order: OrderRecord,
    /// The buyer's private page for this order.
    pub private_url: String,
}

fn order_body(state: &AppState, order: OrderRecord) -> OrderBody {
    OrderBody {
        private_url: state.settings.url(&format!("/o/{}", order.token)),
        order,
    }
}

/// A new offer as the request states it, parsed; the order service checks
/// the rest (stock, limits, hold time) against the shop.
pub struct OfferDraft {
    product: ProductId,
    price: Fen,
    buyers: domain::Buyers,
    starts_at: Option<domain::UnixMillis>,
    ends_at: Option<domain::UnixMillis>,
    quantity: u32,
    per_buyer_limit: u32,
    hold: Option<Duration>,
}

impl TryFrom<NewOfferBody> for OfferDraft {
    type Error = Vec<FieldError>;

    fn try_from(body: NewOfferBody) -> Result<Self, Self::Error> {
        let (product, price, buyers, starts_at, ends_at) = (
            field("product_id", ProductId::parse(&body.product_id)),
            field("price_fen", Fen::price(body.price_fen)),
            optional("buyers", body.buyers.as_deref().map(domain::Buyers::parse)),
            optional_time("starts_at", body.starts_at.as_deref()),
            optional_time("ends_at", body.ends_at.as_deref()),
        )
            .all()?;
        Ok(OfferDraft {
            product,
            price,
            buyers: buyers.unwrap_or_default(),
            starts_at,
            ends_at,
            quantity: body.quantity,
            per_buyer_limit: body.per_buyer_limit,
            hold: body
                .hold_minutes
                .map(|m| Duration::from_secs(u64::from(m) * 60)),
        })
    }
}

impl FromRaw for OfferDraft {
    type Raw = NewOfferBody;
}

/// A broadcast's live offers, newest first (public).
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/offers", tag = "orders",
    params(("broadcast_id" = String, Path)),
    responses((status = 200, body = Vec<OfferView>), (status = 404, body = crate::error::Problem)))]
async fn list_offers(
    State(state): State<AppState>,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<Vec<OfferView>>> {
    let (broadcast, _) = load_broadcast(&state, &broadcast_id).await?;
    let offers = state
        .orders
        .offers_of_broadcast(&broadcast.id)
        .await
        .map_err(orders_error)?;
    Ok(Json(offers.iter().map(OfferView::from).collect()))
}

/// Put a product on sale during a broadcast (owner only): live price, units
/// for this broadcast, per-buyer limit, optional countdown and end.
#[utoipa::path(post, path = "/broadcasts/{broadcast_id}/offers", tag = "orders",
    params(("broadcast_id" = String, Path)), request_body = NewOfferBody,
    responses((status = 201, body = OfferView), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem, description = "`broadcast_ended`"),
              (status = 422, body = crate::error::Problem, description = "e.g. not enough stock")))]
async fn create_offer(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
    Valid(draft): Valid<OfferDraft>,
) -> ApiResult<(StatusCode, Json<OfferView>)> {
    let id = parse_id("broadcast", &broadcast_id, BroadcastId::parse)?;
    let offer = state
        .orders
        .create_offer(
            &me.user,
            NewOffer {
                broadcast: id,
                product: draft.product,
                price: draft.price,
                quantity: draft.quantity,
                per_buyer_limit: draft.per_buyer_limit,
                buyers: draft.buyers,
                starts_at: draft.starts_at,
                ends_at: draft.ends_at,
                hold: draft.hold,
            },
        )
        .await
        .map_err(|e| match e {
            // Name the fields as this request spells them.
            OrdersError::Validation(mut errors) => {
                for error in &mut errors {
                    error.field = match error.field.as_str() {
                        "price" => "price_fen".into(),
                        "hold_secs" | "hold" => "hold_minutes".into(),
                        "product" => "product_id".into(),
                        other => other.into(),
                    };
                }
                ApiError::Validation(errors)
            }
            other => orders_error(other),
        })?;
    tracing::info!(offer = %offer.offer_id, broadcast = %offer.broadcast_id, "offer created");
    Ok((StatusCode::CREATED, Json(OfferView::from(&offer))))
}

/// One offer (public).
#[utoipa::path(get, path = "/offers/{offer_id}", tag = "orders", params(("offer_id" = String, Path)),
    responses((status = 200, body = OfferView), (status = 404, body = crate::error::Problem)))]
async fn get_offer(
    State(state): State<AppState>,
    Path(offer_id): Path<String>,
) -> ApiResult<Json<OfferView>> {
    let id = parse_id("offer", &offer_id, OfferId::parse)?;
    let offer = state
        .orders
        .offer_snapshot(&id)
        .await
        .map_err(orders_error)?;
    Ok(Json(OfferView::from(&offer)))
}

/// Stop selling now (owner only). Unsold units go back to the product.
#[utoipa::path(post, path = "/offers/{offer_id}/end", tag = "orders", params(("offer_id" = String, Path)),
    responses((status = 200, body = OfferView), (status = 403, body = crate::error::Problem)))]
async fn end_offer(
    State(state): State<AppState>,
    me: SignedIn,
    Path(offer_id): Path<String>,
) -> ApiResult<Json<OfferView>> {
    let id = parse_id("offer", &offer_id, OfferId::parse)?;
    let offer = state
        .orders
        .end_offer(&me.user, &id)
        .await
        .map_err(orders_error)?;
    Ok(Json(OfferView::from(&offer)))
}

/// The same limit the order service checks.
fn idempotency_key_description() -> String {
    format!(
        "Makes retries safe (1–{} visible ASCII characters)",
        orders::MAX_IDEMPOTENCY_KEY_LEN
    )
}

/// "Buy now": reserve units at once, held for checkout until `expires_at`.
/// Send an `Idempotency-Key` header: retrying with the same key and body
/// returns the same reservation; the same key with a different body is
/// refused with 409 `idempotency_key_reused`. Guests may buy, unless the
/// offer's `buyers` is `accounts_only`.
#[utoipa::path(post, path = "/offers/{offer_id}/reservations", tag = "orders",
    params(("offer_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = idempotency_key_description())),
    request_body = ReserveBody,
    responses((status = 201, body = ReservationView),
              (status = 401, body = crate::error::Problem,
               description = "`nickname_required`: a guest nickname is enough to buy, no account needed"),
              (status = 403, body = crate::error::Problem,
               description = "`account_required`: the offer is for buyers signed in with a mobile account; `banned`"),
              (status = 422, body = crate::error::Problem,
               description = "`validation_failed`, e.g. an `Idempotency-Key` that is too long (`invalid_idempotency_key`)"),
              (status = 409, body = crate::error::Problem,
               description = "`sold_out`; `insufficient_stock` (fewer left than asked: `params.available`); \
               `limit_reached` (`params.limit`, `params.already`); `not_started` (`params.starts_at`); `offer_ended`; \
               `idempotency_key_reused`; `reservation_expired`, `reservation_cancelled` or `reservation_confirmed` \
               when the key's reservation is no longer held"),
              (status = 503, body = crate::error::Problem)))]
async fn reserve(
    State(state): State<AppState>,
    Participant(buyer): Participant,
    Path(offer_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ReserveBody>,
) -> ApiResult<(StatusCode, Json<ReservationView>)> {
    let offer = parse_id("offer", &offer_id, OfferId::parse)?;
    // Not visible ASCII: the order service refuses it the same way as a key
    // that is too long or empty.
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let reservation = state
        .orders
        .reserve(ReserveRequest {
            offer,
            buyer: buyer.identity.subject(),
            quantity: body.quantity,
            idempotency_key,
        })
        .await
        .map_err(orders_error)?;
    Ok((StatusCode::CREATED, Json(reservation)))
}

/// One of the caller's own reservations and where it stands (someone
/// else's is not found).
#[utoipa::path(get, path = "/reservations/{reservation_id}", tag = "orders",
    params(("reservation_id" = String, Path)),
    responses((status = 200, body = BuyerReservation),
              (status = 401, body = crate::error::Problem, description = "`nickname_required`"),
              (status = 404, body = crate::error::Problem)))]
async fn get_reservation(
    State(state): State<AppState>,
    Participant(buyer): Participant,
    Path(reservation_id): Path<String>,
) -> ApiResult<Json<BuyerReservation>> {
    let id = parse_id("reservation", &reservation_id, ReservationId::parse)?;
    let reservation = state
        .orders
        .reservation_of_buyer(&buyer.identity.subject(), &id)
        .await
        .map_err(orders_error)?;
    Ok(Json(reservation))
}

/// The caller's reservations in any state, newest first (the last 100;
/// guests too, on the phone they tapped with).
#[utoipa::path(get, path = "/reservations/mine", tag = "orders",
    responses((status = 200, body = Vec<BuyerReservation>),
              (status = 401, body = crate::error::Problem, description = "`nickname_required`")))]
async fn my_reservations(
    State(state): State<AppState>,
    Participant(buyer): Participant,
) -> ApiResult<Json<Vec<BuyerReservation>>> {
    let reservations = state
        .orders
        .reservations_of_buyer(&buyer.identity.subject())
        .await
        .map_err(orders_error)?;
    Ok(Json(reservations))
}

/// Give the units back (the buyer changed their mind).
#[utoipa::path(delete, path = "/reservations/{reservation_id}", tag = "orders",
    params(("reservation_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn cancel_reservation(
    State(state): State<AppState>,
    Participant(buyer): Participant,
    Path(reservation_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("reservation", &reservation_id, ReservationId::parse)?;
    state
        .orders
        .cancel_reservation(&buyer.identity.subject(), &id)
        .await
        .map_err(orders_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check out: name, mobile and address turn the reservation into an order.
/// Submitting twice returns the same order.
#[utoipa::path(post, path = "/reservations/{reservation_id}/order", tag = "orders",
    params(("reservation_id" = String, Path)), request_body = CheckoutBody,
    responses((status = 201, body = OrderBody, description = "Order placed; `private_url` is the buyer's link"),
              (status = 409, body = crate::error::Problem, description = "`reservation_expired`, `reservation_cancelled`"),
              (status = 422, body = crate::error::Problem)))]
async fn checkout(
    State(state): State<AppState>,
    Participant(buyer): Participant,
    Path(reservation_id): Path<String>,
    Json(body): Json<CheckoutBody>,
) -> ApiResult<(StatusCode, Json<OrderBody>)> {
    let id = parse_id("reservation", &reservation_id, ReservationId::parse)?;
    let checkout = Checkout::parse(
        &body.name,
        &body.mobile,
        &body.address,
        &body.payment_method,
    )
    .map_err(orders_error)?;
    let order = state
        .orders
        .confirm(&buyer.identity.subject(), &id, checkout)
        .await
        .map_err(orders_error)?;
    // The buyer's other tabs and phones in the room learn it from the order
    // service's OrderPlaced event, through the server's bridge.
    Ok((StatusCode::CREATED, Json(order_body(&state, order))))
}

/// The caller's own orders (guests too, on the phone they bought with).
#[utoipa::path(get, path = "/orders/mine", tag = "orders",
    responses((status = 200, body = Vec<OrderBody>), (status = 401, body = crate::error::Problem)))]
async fn my_orders(
    State(state): State<AppState>,
    Participant(buyer): Participant,
) -> ApiResult<Json<Vec<OrderBody>>> {
    let orders = state
        .orders
        .orders_of_buyer(&buyer.identity.subject())
        .await
        .map_err(orders_error)?;
    Ok(Json(
        orders.into_iter().map(|o| order_body(&state, o)).collect(),
    ))
}

/// The buyer's order by its private link token (no sign-in: the token is
/// the key).
#[utoipa::path(get, path = "/orders/private/{token}", tag = "orders", params(("token" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 404, body = crate::error::Problem)))]
async fn order_by_token(
    State(state): State<AppState>,
    client: crate::limits::ClientAddr,
    Path(token): Path<String>,
) -> ApiResult<Json<OrderBody>> {
    state.limits.order_lookup.check(client)?;
    let order = state
        .orders
        .order_by_token(&token)
        .await
        .map_err(|e| match e {
            OrdersError::NotFound => ApiError::NotFound("order"),
            other => orders_error(other),
        })?;
    Ok(Json(order_body(&state, order)))
}

#[derive(Deserialize, IntoParams)]
pub struct OrderQuery {
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub state: Option<String>,
    pub broadcast_id: Option<String>,
    pub product_id: Option<String>,
    pub offer_id: Option<String>,
}

impl TryFrom<OrderQuery> for OrderFilter {
    type Error = Vec<FieldError>;

    fn try_from(q: OrderQuery) -> Result<Self, Self::Error> {
        let (state, broadcast, product, offer) = (
            optional("state", q.state.as_deref().map(OrderState::parse)),
            optional(
                "broadcast_id",
                q.broadcast_id.as_deref().map(BroadcastId::parse),
            ),
            optional("product_id", q.product_id.as_deref().map(ProductId::parse)),
            optional("offer_id", q.offer_id.as_deref().map(OfferId::parse)),
        )
            .all()?;
        Ok(OrderFilter {
            state,
            broadcast,
            product,
            offer,
        })
    }
}

impl FromRaw for OrderFilter {
    type Raw = OrderQuery;
}

/// The shop's orders, newest first, filtered (owner only).
#[utoipa::path(get, path = "/shops/{shop_id}/orders", tag = "orders",
    params(("shop_id" = String, Path), OrderQuery),
    responses((status = 200, body = Vec<OrderBody>), (status = 403, body = crate::error::Problem)))]
async fn shop_orders(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    ValidQuery(filter): ValidQuery<OrderFilter>,
) -> ApiResult<Json<Vec<OrderBody>>> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    let orders = state
        .orders
        .orders_of_shop(&me.user, &shop.id, filter)
        .await
        .map_err(orders_error)?;
    Ok(Json(
        orders.into_iter().map(|o| order_body(&state, o)).collect(),
    ))
}

/// How the farmer reads the exported sheet.
#[derive(Deserialize, IntoParams)]
pub struct SheetQuery {
    /// `zh-CN` (default) or `en`: headers and words of the sheet.
    pub lang: Option<String>,
    /// The phone's offset from UTC in minutes (480 in China); times are
    /// written in it. Default: the server's export offset.
    pub tz_offset_minutes: Option<String>,
}

impl TryFrom<SheetQuery> for orders::SheetOptions {
    type Error = Vec<FieldError>;

    fn try_from(q: SheetQuery) -> Result<Self, Self::Error> {
        let (language, utc_offset_minutes) = (
            optional(
                "lang",
                q.lang.as_deref().map(|l| match l {
                    "zh-CN" | "zh" => Ok(orders::SheetLanguage::Chinese),
                    "en" => Ok(orders::SheetLanguage::English),
                    _ => Err(domain::Invalid::new(
                        domain::FieldCode::InvalidChoice,
                        "must be zh-CN or en",
                    )),
                }),
            ),
            // UTC-12:00 to UTC+14:00, the zones people live in.
            optional(
                "tz_offset_minutes",
                q.tz_offset_minutes.as_deref().map(|m| {
                    m.parse::<i16>()
                        .ok()
                        .filter(|m| (-720..=840).contains(m))
                        .ok_or_else(|| {
                            domain::Invalid::new(
                                domain::FieldCode::OutOfRange,
                                "must be minutes from -720 to 840",
                            )
                        })
                }),
            ),
        )
            .all()?;
        Ok(orders::SheetOptions {
            language: language.unwrap_or_default(),
            utc_offset_minutes,
        })
    }
}

impl FromRaw for orders::SheetOptions {
    type Raw = SheetQuery;
}

/// The shop's orders as a CSV file for shipping (UTF-8 with BOM, opens in
/// Excel and WPS), same filters, in the farmer's language and time zone
/// (owner only). The short order number; no private link or buyer id.
#[utoipa::path(get, path = "/shops/{shop_id}/orders.csv", tag = "orders",
    params(("shop_id" = String, Path), OrderQuery, SheetQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = crate::error::Problem)))]
async fn shop_orders_csv(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    ValidQuery(filter): ValidQuery<OrderFilter>,
    ValidQuery(sheet): ValidQuery<orders::SheetOptions>,
) -> ApiResult<Response> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    let csv = state
        .orders
        .export_csv(&me.user, &shop.id, filter, sheet)
        .await
        .map_err(orders_error)?;
    let filename = format!("orders-{}.csv", time::OffsetDateTime::now_utc().date());
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        csv,
    )
        .into_response())
}

async fn owner_order(state: &AppState, me: &SignedIn, raw: &str) -> ApiResult<OrderId> {
    let id = parse_id("order", raw, OrderId::parse)?;
    // Fails with 403/404 unless the caller owns the order's shop.
    state
        .orders
        .order_for_owner(&me.user, &id)
        .await
        .map_err(orders_error)?;
    Ok(id)
}

/// One order (owner only).
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 403, body = crate::error::Problem)))]
async fn get_order(
    State(state): State<AppState>,
    me: SignedIn,
    Path(order_id): Path<String>,
) -> ApiResult<Json<OrderBody>> {
    let id = parse_id("order", &order_id, OrderId::parse)?;
    let order = state
        .orders
        .order_for_owner(&me.user, &id)
        .await
        .map_err(orders_error)?;
    Ok(Json(order_body(&state, order)))
}

/// The transfer arrived (owner only).
#[utoipa::path(post, path = "/orders/{order_id}/paid", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem, description = "`invalid_order_transition`")))]
async fn mark_paid(
    State(state): State<AppState>,
    me: SignedIn,
    Path(order_id): Path<String>,
) -> ApiResult<Json<OrderBody>> {
    let id = owner_order(&state, &me, &order_id).await?;
    let order = state
        .orders
        .mark_paid(&me.user, &id)
        .await
        .map_err(orders_error)?;
    Ok(Json(order_body(&state, order)))
}

#[derive(Deserialize, ToSchema)]
pub struct ShipBody {
    #[schema(example = "中国邮政")]
    pub carrier: String,
    #[schema(example = "9876543210123")]
    pub tracking_number: String,
}

/// Who carries the parcel and its number, parsed.
pub struct Shipping(Carrier, TrackingNumber);

impl TryFrom<ShipBody> for Shipping {
    type Error = Vec<FieldError>;

    fn try_from(body: ShipBody) -> Result<Self, Self::Error> {
        let (carrier, tracking) = (
            field("carrier", Carrier::parse(&body.carrier)),
            field(
                "tracking_number",
                TrackingNumber::parse(&body.tracking_number),
            ),
        )
            .all()?;
        Ok(Shipping(carrier, tracking))
    }
}

impl FromRaw for Shipping {
    type Raw = ShipBody;
}

/// Shipped, with carrier and tracking number (owner only).
#[utoipa::path(post, path = "/orders/{order_id}/shipped", tag = "orders", params(("order_id" = String, Path)),
    request_body = ShipBody,
    responses((status = 200, body = OrderBody), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn mark_shipped(
    State(state): State<AppState>,
    me: SignedIn,
    Path(order_id): Path<String>,
    Valid(Shipping(carrier, tracking)): Valid<Shipping>,
) -> ApiResult<Json<OrderBody>> {
    let id = owner_order(&state, &me, &order_id).await?;
    let order = state
        .orders
        .mark_shipped(&me.user, &id, carrier, tracking)
        .await
        .map_err(orders_error)?;
    Ok(Json(order_body(&state, order)))
}

/// Delivered (owner only).
#[utoipa::path(post, path = "/orders/{order_id}/delivered", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
async fn mark_delivered(
    State(state): State<AppState>,
    me: SignedIn,
    Path(order_id): Path<String>,
) -> ApiResult<Json<OrderBody>> {
    let id = owner_order(&state, &me, &order_id).await?;
    let order = state
        .orders
        .mark_delivered(&me.user, &id)
        .await
        .map_err(orders_error)?;
    Ok(Json(order_body(&state, order)))
}

#[derive(Deserialize, ToSchema)]
pub struct CancelBody {
    #[serde(default)]
    #[schema(example = "买家要求取消")]
    pub reason: String,
}

impl FromRaw for Reason {
    type Raw = CancelBody;
}

impl TryFrom<CancelBody> for Reason {
    type Error = Vec<FieldError>;

    fn try_from(body: CancelBody) -> Result<Self, Self::Error> {
        let (reason,) = (field("reason", Reason::parse(&body.reason)),).all()?;
        Ok(reason)
    }
}

/// Cancel with a reason (owner only). Unshipped units go back on sale.
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders", params(("order_id" = String, Path)),
    request_body = CancelBody,
    responses((status = 200, body = OrderBody), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
async fn cancel_order(
    State(state): State<AppState>,
    me: SignedIn,
    Path(order_id): Path<String>,
    Valid(reason): Valid<Reason>,
) -> ApiResult<Json<OrderBody>> {
    let id = owner_order(&state, &me, &order_id).await?;
    let order = state
        .orders
        .cancel_order(&me.user, &id, reason)
        .await
        .map_err(orders_error)?;
    Ok(Json(order_body(&state, order)))
}
