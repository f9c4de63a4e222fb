//! Broadcasts: scheduling, the public page data, the owner's stream key.

use super::shops::{load_shop, owned_shop};
use crate::auth::SignedIn;
use crate::error::{ApiError, ApiResult, not_found};
use crate::extract::{FromRaw, Json, Path, Valid, parse_id};
use crate::state::AppState;
use crate::views::{Patch, Timestamp, optional_time, ts_opt};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{BroadcastId, BroadcastState, BroadcastTitle, FieldError, Fields, field, optional};
use serde::{Deserialize, Serialize};
use store::{BroadcastRecord, ShopRecord};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live_now))
        .routes(routes!(list_broadcasts, create_broadcast))
        .routes(routes!(get_broadcast, update_broadcast))
        .routes(routes!(end_broadcast))
        .routes(routes!(get_stream_key, rotate_stream_key))
}

#[derive(Serialize, ToSchema)]
pub struct BroadcastView {
    pub id: String,
    pub title: String,
    /// `scheduled`, `live` or `ended`.
    #[schema(value_type = String, example = "live")]
    pub state: BroadcastState,
    pub scheduled_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub shop: ShopSummary,
    /// The page to share with friends.
    pub watch_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct ShopSummary {
    pub id: String,
    pub name: String,
    pub place: String,
}

/// For the owner only: what OBS, Larix or the studio page need to publish.
#[derive(Serialize, ToSchema)]
pub struct StreamKeyView {
    /// WHIP endpoint URL ("Server" in OBS's WHIP output).
    pub whip_url: String,
    /// Bearer token ("Bearer Token" in OBS). Keep it secret; rotate if leaked.
    pub stream_key: String,
}

#[derive(Deserialize, ToSchema)]
pub struct NewBroadcastBody {
    #[schema(example = "谷子收割第一天")]
    pub title: String,
    /// When the farmer plans to go live (RFC 3339), shown as a countdown.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct BroadcastPatch {
    #[serde(default)]
    pub title: Option<String>,
    /// RFC 3339, or null to clear.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Patch<String>,
}

pub(crate) fn broadcast_view(
    state: &AppState,
    b: BroadcastRecord,
    shop: &ShopRecord,
) -> BroadcastView {
    BroadcastView {
        watch_url: state.settings.url(&format!("/live/{}", b.id)),
        id: b.id.into_string(),
        title: b.title.into_string(),
        state: b.state,
        scheduled_at: ts_opt(b.scheduled_at),
        started_at: ts_opt(b.started_at),
        ended_at: ts_opt(b.ended_at),
        shop: ShopSummary {
            id: shop.id.to_string(),
            name: shop.name.to_string(),
            place: shop.place.to_string(),
        },
    }
}

pub(crate) async fn load_broadcast(
    state: &AppState,
    raw_id: &str,
) -> ApiResult<(BroadcastRecord, ShopRecord)> {
    let id = parse_id("broadcast", raw_id, BroadcastId::parse)?;
    let broadcast = state
        .store
        .broadcast(&id)
        .await
        .map_err(not_found("broadcast"))?;
    let shop = state.store.shop(&broadcast.shop_id).await?;
    Ok((broadcast, shop))
}

pub(crate) async fn owned_broadcast(
    state: &AppState,
    raw_id: &str,
    me: &SignedIn,
) -> ApiResult<(BroadcastRecord, ShopRecord)> {
    let (broadcast, shop) = load_broadcast(state, raw_id).await?;
    if shop.owner_id != me.user {
        return Err(ApiError::Forbidden("only the shop's owner may do this"));
    }
    Ok((broadcast, shop))
}

/// A new broadcast, parsed.
pub struct BroadcastDraft {
    title: BroadcastTitle,
    scheduled_at: Option<domain::UnixMillis>,
}

impl TryFrom<NewBroadcastBody> for BroadcastDraft {
    type Error = Vec<FieldError>;

    fn try_from(body: NewBroadcastBody) -> Result<Self, Self::Error> {
        let (title, scheduled_at) = (
            field("title", BroadcastTitle::parse(&body.title)),
            optional_time("scheduled_at", body.scheduled_at.as_deref()),
        )
            .all()?;
        Ok(BroadcastDraft {
            title,
            scheduled_at,
        })
    }
}

impl FromRaw for BroadcastDraft {
    type Raw = NewBroadcastBody;
}

impl TryFrom<BroadcastPatch> for store::BroadcastUpdate {
    type Error = Vec<FieldError>;

    fn try_from(body: BroadcastPatch) -> Result<Self, Self::Error> {
        let scheduled_at = match body.scheduled_at {
            Patch::Keep => Ok(None),
            Patch::Clear => Ok(Some(None)),
            Patch::Set(raw) => optional_time("scheduled_at", Some(&raw)).map(Some),
        };
        let (title, scheduled_at) = (
            optional("title", body.title.as_deref().map(BroadcastTitle::parse)),
            scheduled_at,
        )
            .all()?;
        Ok(store::BroadcastUpdate {
            title,
            scheduled_at,
        })
    }
}

impl FromRaw for store::BroadcastUpdate {
    type Raw = BroadcastPatch;
}

/// Broadcasts live right now, newest first (public).
#[utoipa::path(get, path = "/broadcasts/live", tag = "broadcasts",
    responses((status = 200, body = Vec<BroadcastView>)))]
async fn live_now(State(state): State<AppState>) -> ApiResult<Json<Vec<BroadcastView>>> {
    let mut views = Vec::new();
    for b in state.store.live_broadcasts().await?.into_iter().take(100) {
        let shop = state.store.shop(&b.shop_id).await?;
        views.push(broadcast_view(&state, b, &shop));
    }
    Ok(Json(views))
}

/// A shop's broadcasts, newest first (public).
#[utoipa::path(get, path = "/shops/{shop_id}/broadcasts", tag = "broadcasts", params(("shop_id" = String, Path)),
    responses((status = 200, body = Vec<BroadcastView>), (status = 404, body = crate::error::Problem)))]
async fn list_broadcasts(
    State(state): State<AppState>,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<Vec<BroadcastView>>> {
    let shop = load_shop(&state, &shop_id).await?;
    let broadcasts = state.store.broadcasts_of_shop(&shop.id).await?;
    Ok(Json(
        broadcasts
            .into_iter()
            .map(|b| broadcast_view(&state, b, &shop))
            .collect(),
    ))
}

/// Schedule a broadcast (owner only). It gets its own secret stream key.
#[utoipa::path(post, path = "/shops/{shop_id}/broadcasts", tag = "broadcasts", params(("shop_id" = String, Path)),
    request_body = NewBroadcastBody,
    responses((status = 201, body = BroadcastView), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn create_broadcast(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    Valid(draft): Valid<BroadcastDraft>,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    let broadcast = state
        .store
        .create_broadcast(
            store::NewBroadcast {
                shop_id: shop.id.clone(),
                title: draft.title,
                scheduled_at: draft.scheduled_at,
                stream_key: domain::secret_token(),
            },
            domain::UnixMillis::wall_now(),
        )
        .await?;
    tracing::info!(broadcast = %broadcast.id, shop = %shop.id, "broadcast scheduled");
    Ok((
        StatusCode::CREATED,
        Json(broadcast_view(&state, broadcast, &shop)),
    ))
}

/// A broadcast's public page data.
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}", tag = "broadcasts", params(("broadcast_id" = String, Path)),
    responses((status = 200, body = BroadcastView), (status = 404, body = crate::error::Problem)))]
async fn get_broadcast(
    State(state): State<AppState>,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    let (broadcast, shop) = load_broadcast(&state, &broadcast_id).await?;
    Ok(Json(broadcast_view(&state, broadcast, &shop)))
}

/// Retitle or reschedule (owner only).
#[utoipa::path(patch, path = "/broadcasts/{broadcast_id}", tag = "broadcasts", params(("broadcast_id" = String, Path)),
    request_body = BroadcastPatch,
    responses((status = 200, body = BroadcastView), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_broadcast(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
    Valid(update): Valid<store::BroadcastUpdate>,
) -> ApiResult<Json<BroadcastView>> {
    let (broadcast, shop) = owned_broadcast(&state, &broadcast_id, &me).await?;
    let updated = state
        .store
        .update_broadcast(&broadcast.id, update, domain::UnixMillis::wall_now())
        .await?;
    Ok(Json(broadcast_view(&state, updated, &shop)))
}

/// End the broadcast now (owner only). Viewers see it end; it cannot be
/// restarted (schedule a new one).
#[utoipa::path(post, path = "/broadcasts/{broadcast_id}/end", tag = "broadcasts", params(("broadcast_id" = String, Path)),
    responses((status = 200, body = BroadcastView), (status = 403, body = crate::error::Problem)))]
async fn end_broadcast(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    let (broadcast, shop) = owned_broadcast(&state, &broadcast_id, &me).await?;
    let ended = state
        .store
        .set_broadcast_state(
            &broadcast.id,
            BroadcastState::Ended,
            domain::UnixMillis::wall_now(),
        )
        .await?
        .unwrap_or(broadcast);
    // Drops the publisher and every viewer; the SFU's RoomEnded event then
    // reaches the live channel like any other end.
    state.sfu.close_room(ended.id.as_str()).await;
    state
        .live
        .set_broadcast_state(&ended.id, BroadcastState::Ended);
    state
        .orders
        .end_offers_of_broadcast(&ended.id)
        .await
        .map_err(super::orders::orders_error)?;
    tracing::info!(broadcast = %ended.id, "broadcast ended by its owner");
    Ok(Json(broadcast_view(&state, ended, &shop)))
}

/// The broadcast's WHIP URL and stream key (owner only).
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/stream-key", tag = "broadcasts",
    params(("broadcast_id" = String, Path)),
    responses((status = 200, body = StreamKeyView), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem)))]
async fn get_stream_key(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<StreamKeyView>> {
    let (broadcast, _) = owned_broadcast(&state, &broadcast_id, &me).await?;
    Ok(Json(StreamKeyView {
        whip_url: state
            .settings
            .url(&format!("/api/v1/broadcasts/{}/whip", broadcast.id)),
        stream_key: broadcast.stream_key,
    }))
}

/// Replace the stream key, e.g. after it leaked (owner only). Apps using the
/// old key can no longer publish.
#[utoipa::path(post, path = "/broadcasts/{broadcast_id}/stream-key", tag = "broadcasts",
    params(("broadcast_id" = String, Path)),
    responses((status = 200, body = StreamKeyView), (status = 403, body = crate::error::Problem)))]
async fn rotate_stream_key(
    State(state): State<AppState>,
    me: SignedIn,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<StreamKeyView>> {
    let (broadcast, _) = owned_broadcast(&state, &broadcast_id, &me).await?;
    let key = domain::secret_token();
    state
        .store
        .set_stream_key(&broadcast.id, &key, domain::UnixMillis::wall_now())
        .await?;
    tracing::info!(broadcast = %broadcast.id, "stream key rotated");
    Ok(Json(StreamKeyView {
        whip_url: state
            .settings
            .url(&format!("/api/v1/broadcasts/{}/whip", broadcast.id)),
        stream_key: key,
    }))
}
