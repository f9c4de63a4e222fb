//! Broadcasts: scheduling, the public page data, the owner's stream key.

use super::shops::{load_shop, owned_shop};
use crate::auth::SignedIn;
use crate::error::ApiResult;
use crate::extract::{FromRaw, Json, Path, Valid, parse_id};
use crate::state::AppState;
use crate::views::{Patch, Timestamp, optional_time, ts_opt};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{BroadcastId, BroadcastState, BroadcastTitle, FieldError, Fields, field, optional};
use serde::{Deserialize, Serialize};
use shops::{BroadcastDraft, OwnedBroadcast};
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

/// The broadcast a path names and its shop (public).
pub(crate) async fn load_broadcast(
    state: &AppState,
    raw_id: &str,
) -> ApiResult<(BroadcastRecord, ShopRecord)> {
    let id = parse_id("broadcast", raw_id, BroadcastId::parse)?;
    Ok(state.shops.broadcast(&id).await?)
}

/// The broadcast, if `me` owns its shop; 403 otherwise.
pub(crate) async fn owned_broadcast(
    state: &AppState,
    raw_id: &str,
    me: &SignedIn,
) -> ApiResult<OwnedBroadcast> {
    let id = parse_id("broadcast", raw_id, BroadcastId::parse)?;
    Ok(state.shops.owned_broadcast(&me.user, &id).await?)
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
    let live = state.shops.live_broadcasts(100).await?;
    Ok(Json(
        live.into_iter()
            .map(|(b, shop)| broadcast_view(&state, b, &shop))
            .collect(),
    ))
}

/// A shop's broadcasts, newest first (public).
#[utoipa::path(get, path = "/shops/{shop_id}/broadcasts", tag = "broadcasts", params(("shop_id" = String, Path)),
    responses((status = 200, body = Vec<BroadcastView>), (status = 404, body = crate::error::Problem)))]
async fn list_broadcasts(
    State(state): State<AppState>,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<Vec<BroadcastView>>> {
    let shop = load_shop(&state, &shop_id).await?;
    let broadcasts = state.shops.broadcasts_of(&shop.id).await?;
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
    let broadcast = state.shops.schedule_broadcast(&shop, draft).await?;
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
    let owned = owned_broadcast(&state, &broadcast_id, &me).await?;
    let updated = state.shops.update_broadcast(&owned, update).await?;
    Ok(Json(broadcast_view(&state, updated, &owned.shop)))
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
    let owned = owned_broadcast(&state, &broadcast_id, &me).await?;
    // Media stops, the room is told and the offers end before this answers.
    let ended = state.shops.end_broadcast(owned).await?;
    Ok(Json(broadcast_view(&state, ended.broadcast, &ended.shop)))
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
    let owned = owned_broadcast(&state, &broadcast_id, &me).await?;
    Ok(Json(StreamKeyView {
        whip_url: whip_url(&state, &owned.broadcast.id),
        stream_key: owned.broadcast.stream_key,
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
    let owned = owned_broadcast(&state, &broadcast_id, &me).await?;
    let key = state.shops.rotate_stream_key(&owned).await?;
    Ok(Json(StreamKeyView {
        whip_url: whip_url(&state, &owned.broadcast.id),
        stream_key: key,
    }))
}

fn whip_url(state: &AppState, broadcast: &BroadcastId) -> String {
    state
        .settings
        .url(&format!("/api/v1/broadcasts/{broadcast}/whip"))
}
