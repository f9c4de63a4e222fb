//! The live channel's websocket and the moderation log.

use super::broadcasts::load_broadcast;
use super::shops::moderating;
use crate::auth::{Caller, SignedIn};
use crate::error::{ApiError, ApiResult, ProblemCode};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use live::{Participant, RoomInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live_socket))
        .routes(routes!(moderation_log))
        .routes(routes!(list_bans))
        .routes(routes!(lift_ban))
}

#[derive(Deserialize, IntoParams)]
pub struct LiveQuery {
    /// The highest `seq` this client saw before it reconnected: the server
    /// replays what it missed.
    pub resume_from: Option<u64>,
}

/// A websocket request from a page of another site would carry the
/// viewer's cookies (cross-site websocket hijacking): only pages of this
/// site (the same check as for writes: scheme, host and port), and clients
/// that send no `Origin` (apps, tools; browsers always send one), may
/// connect.
fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    headers.get(header::ORIGIN).is_none_or(|origin| {
        crate::middleware::origin_allowed(origin, headers.get(header::HOST), public_url)
    })
}

/// Join a broadcast's live channel (websocket; protocol in docs/protocol.md).
/// Without a session you may watch the room; a guest nickname or an
/// account lets you chat and buy; the owner and moderators moderate.
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/live", tag = "live",
    params(("broadcast_id" = String, Path), LiveQuery),
    responses((status = 101, description = "Switching to the websocket protocol"),
              (status = 403, body = crate::error::Problem, description = "cross-site request"),
              (status = 404, body = crate::error::Problem),
              (status = 426, body = crate::error::Problem, description = "not a websocket request")))]
async fn live_socket(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(broadcast_id): Path<String>,
    Query(query): Query<LiveQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if !same_origin(&headers, &state.settings.public_url) {
        return Err(ApiError::Forbidden("cross-site websocket refused"));
    }
    let (broadcast, shop) = load_broadcast(&state, &broadcast_id).await?;
    let upgrade = upgrade.map_err(|e| ApiError::Other {
        status: StatusCode::UPGRADE_REQUIRED,
        code: ProblemCode::WebsocketRequired,
        detail: format!("connect with a websocket: {}", e.body_text()),
    })?;
    let who = match caller {
        Some(caller) => {
            let role = state
                .shops
                .role_in_shop(&shop.id, caller.identity.subject().as_str())
                .await?;
            Participant::from_identity(&caller.identity, role)
        }
        None => Participant::anonymous(),
    };
    let room = RoomInfo {
        broadcast: broadcast.id,
        shop: shop.id,
        state: broadcast.state,
    };
    let hub = state.live.clone();
    Ok(hub
        .configure_upgrade(upgrade)
        .on_upgrade(
            move |socket| async move { hub.serve(room, who, socket, query.resume_from).await },
        ))
}

#[derive(Deserialize, IntoParams)]
pub struct LogQuery {
    /// How many entries, newest first (default 100, at most 500).
    pub limit: Option<u32>,
}

/// One moderation action, as recorded.
#[derive(Serialize, ToSchema)]
pub struct ModerationEntryView {
    /// e.g. `delete_message`, `timeout`, `ban`, `unban`, `slow_mode`,
    /// `blocked_words`, `pin_message`, `clear_chat`, `auto_mute`.
    pub action: String,
    /// Who acted (absent for automatic mutes).
    pub actor_name: Option<String>,
    pub actor: Option<String>,
    /// Whom it was about (`usr_…`/`gst_…`), if anyone.
    pub target: Option<String>,
    /// Their chat name, when known.
    pub target_name: Option<String>,
    pub broadcast_id: Option<String>,
    pub message_id: Option<String>,
    /// In English, for developers and logs; pages put the facts below in words.
    pub detail: Option<String>,
    /// The moderator's reason, in their own words (timeouts and bans).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A timeout's or automatic mute's length; slow mode's interval (0: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// How many words the blocked list holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The offer pinned or taken down, and its title when it was pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub at: crate::views::Timestamp,
}

/// The shop's moderation log, newest first (owner and moderators).
#[utoipa::path(get, path = "/shops/{shop_id}/moderation-log", tag = "live",
    params(("shop_id" = String, Path), LogQuery),
    responses((status = 200, body = Vec<ModerationEntryView>), (status = 403, body = crate::error::Problem)))]
async fn moderation_log(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Vec<ModerationEntryView>>> {
    let shop = moderating(&state, &shop_id, &me.user).await?.shop;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let entries = state
        .live
        .moderation_log(&shop.id, limit)
        .await
        .map_err(|e| match e {
            live::LiveError::ShuttingDown => ApiError::Unavailable("the server is restarting"),
            live::LiveError::Store(e) => e.into(),
        })?;
    // Names for the people acted on, looked up once each.
    let mut names: std::collections::HashMap<String, Option<String>> =
        std::collections::HashMap::new();
    for target in entries.iter().filter_map(|e| e.target.as_ref()) {
        if !names.contains_key(target) {
            let name = state
                .store
                .subject_name(target)
                .await?
                .map(|n| n.into_string());
            names.insert(target.clone(), name);
        }
    }
    Ok(Json(
        entries
            .into_iter()
            .map(|e| ModerationEntryView {
                action: e.action.as_str().to_owned(),
                actor_name: e.actor.as_ref().map(|a| a.name.to_string()),
                actor: e.actor.map(|a| a.subject),
                target_name: e
                    .target
                    .as_ref()
                    .and_then(|t| names.get(t).cloned().flatten()),
                target: e.target,
                broadcast_id: e.broadcast.map(|b| b.into_string()),
                message_id: e.message.map(|m| m.into_string()),
                detail: e.detail,
                reason: e.facts.reason,
                seconds: e.facts.seconds,
                count: e.facts.count,
                offer: e.facts.offer.map(|o| o.into_string()),
                title: e.facts.title,
                at: crate::views::Timestamp(e.at.0),
            })
            .collect(),
    ))
}

/// Someone banned from a shop's broadcasts.
#[derive(Serialize, ToSchema)]
pub struct BanView {
    /// `usr_…` or `gst_…`.
    pub subject: String,
    /// Their chat name, when known.
    pub name: Option<String>,
    pub reason: String,
    pub banned_by: String,
    pub created_at: crate::views::Timestamp,
}

/// People banned from the shop's broadcasts (owner and moderators).
#[utoipa::path(get, path = "/shops/{shop_id}/bans", tag = "live", params(("shop_id" = String, Path)),
    responses((status = 200, body = Vec<BanView>), (status = 403, body = crate::error::Problem)))]
async fn list_bans(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<Vec<BanView>>> {
    let team = moderating(&state, &shop_id, &me.user).await?;
    let bans = state.shops.bans(&team).await?;
    Ok(Json(
        bans.into_iter()
            .map(|ban| BanView {
                name: ban.name.map(|n| n.into_string()),
                subject: ban.record.subject,
                reason: ban.record.reason,
                banned_by: ban.record.banned_by,
                created_at: crate::views::Timestamp(ban.record.created_at),
            })
            .collect(),
    ))
}

/// Lift a ban (owner and moderators): they may watch, chat and buy again.
#[utoipa::path(delete, path = "/shops/{shop_id}/bans/{subject}", tag = "live",
    params(("shop_id" = String, Path), ("subject" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem, description = "not banned")))]
async fn lift_ban(
    State(state): State<AppState>,
    me: SignedIn,
    Path((shop_id, subject)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let team = moderating(&state, &shop_id, &me.user).await?;
    let actor = Participant::from_identity(&me.identity, team.role);
    let shop = team.shop;
    let lifted = state
        .live
        .unban(&shop.id, &subject, &actor)
        .await
        .map_err(|e| match e {
            live::LiveError::ShuttingDown => ApiError::Unavailable("the server is restarting"),
            live::LiveError::Store(e) => e.into(),
        })?;
    if !lifted {
        return Err(ApiError::NotFound("ban"));
    }
    tracing::info!(shop = %shop.id, subject, "ban lifted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn websockets_from_other_sites_are_refused() {
        let public = "https://live.example.cn";
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("live.example.cn"));
        assert!(same_origin(&h, public), "apps send no Origin");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://live.example.cn"),
        );
        assert!(same_origin(&h, public));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, public));
        // Same host, another scheme: another origin.
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://live.example.cn"),
        );
        assert!(!same_origin(&h, public));
    }
}
