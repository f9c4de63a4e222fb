//! WHIP ingest (RFC 9725) and WHEP playback over the SFU.
//!
//! `POST …/whip` and `POST …/whep` take an `application/sdp` offer and answer
//! `201 Created` with the SDP answer, a `Location` for the session resource,
//! an `ETag` and the ICE servers as `Link` headers. The session resource
//! takes trickle candidates (`PATCH`, `application/trickle-ice-sdpfrag`) and
//! ends with `DELETE`. The session URL is an unguessable capability (128
//! random bits), like the WHIP/WHEP drafts intend.

use super::broadcasts::load_broadcast;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ProblemCode};
use crate::extract::{Path, RawBody};
use crate::limits::ClientAddr;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderName;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::BroadcastState;
use sfu::{SessionId, SfuError};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whip_publish, whip_options))
        .routes(routes!(whep_play, whep_options))
        .routes(routes!(trickle, end_session))
        .routes(routes!(media_stats))
        // Any web page may publish (with the stream key) or play: WHIP/WHEP
        // clients are often hosted elsewhere. Cookies are never sent
        // cross-origin (no allow-credentials), so this grants nothing a
        // plain HTTP client does not already have.
        .layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::any())
                .allow_methods([Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                ])
                .expose_headers([
                    header::LOCATION,
                    header::LINK,
                    header::ETAG,
                    HeaderName::from_static("accept-patch"),
                ])
                .max_age(Duration::from_secs(86_400)),
        )
}

const SDP: &str = "application/sdp";
const SDP_FRAG: &str = "application/trickle-ice-sdpfrag";

fn require_content_type(headers: &HeaderMap, expected: &'static str) -> ApiResult<()> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected));
    if ok {
        Ok(())
    } else if expected == SDP {
        Err(ApiError::UnsupportedMediaType(
            "send the offer as Content-Type: application/sdp",
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send candidates as Content-Type: application/trickle-ice-sdpfrag",
        ))
    }
}

fn sdp_text(body: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request(ProblemCode::BadSdp, "the SDP is not UTF-8 text"))
}

/// How each SFU refusal reaches an HTTP client: status, stable problem code, and
/// for refusals that pass, how long to wait (`Retry-After`). The one place this
/// is decided (docs/media.md lists it for clients).
fn sfu_problem(e: &SfuError) -> (StatusCode, ProblemCode, Option<Duration>) {
    // Another client's handshake finishing (or expiring) frees a pending place;
    // real handshakes take about a second.
    let handshake = Some(Duration::from_secs(2));
    let capacity = Some(Duration::from_secs(5));
    match e {
        SfuError::BadSdp(_) => (StatusCode::BAD_REQUEST, ProblemCode::BadSdp, None),
        SfuError::SdpTooComplex(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::SdpTooComplex,
            None,
        ),
        SfuError::UnsupportedCodecs(_) => (
            StatusCode::NOT_ACCEPTABLE,
            ProblemCode::UnsupportedCodecs,
            None,
        ),
        SfuError::RoomFull(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::RoomFull,
            capacity,
        ),
        SfuError::TooManyPending(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            ProblemCode::TooManyPending,
            handshake,
        ),
        SfuError::RoomBusy(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::RoomBusy,
            handshake,
        ),
        SfuError::NoPublisher => (StatusCode::NOT_FOUND, ProblemCode::NoPublisher, None),
        SfuError::UnknownSession => (StatusCode::NOT_FOUND, ProblemCode::UnknownSession, None),
        SfuError::TooManySessions(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::TooManySessions,
            capacity,
        ),
        SfuError::BadTrickle(_) => (StatusCode::BAD_REQUEST, ProblemCode::BadTrickle, None),
        SfuError::IceRestartUnsupported => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::IceRestartUnsupported,
            None,
        ),
        SfuError::ShuttingDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::ShuttingDown,
            capacity,
        ),
        SfuError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::Internal,
            None,
        ),
    }
}

pub(crate) fn sfu_error(e: SfuError) -> ApiError {
    let (status, code, retry_after) = sfu_problem(&e);
    let detail = match &e {
        SfuError::NoPublisher => {
            "the broadcast is not live right now; try again when the farmer goes live".to_owned()
        }
        SfuError::RoomFull(n) => {
            format!("this broadcast already has its maximum of {n} viewers; try again later")
        }
        SfuError::Internal(_) => {
            tracing::error!(error = %e, "SFU internal error");
            "something went wrong on our side; please try again".to_owned()
        }
        other => other.to_string(),
    };
    let retry_after_secs = retry_after.map_or(5, |d| d.as_secs().max(1));
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ApiError::Throttled {
            code,
            detail,
            retry_after_secs,
        };
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return ApiError::Busy {
            code,
            detail,
            retry_after_secs,
        };
    }
    ApiError::Other {
        status,
        code,
        detail,
    }
}

/// ICE servers as RFC 9725 §4.6 `Link` headers.
fn ice_link_headers(state: &AppState, headers: &mut HeaderMap) {
    for server in state.sfu.ice_servers() {
        for url in &server.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if !server.username.is_empty() {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    server.username, server.credential
                ));
            }
            if let Ok(value) = HeaderValue::from_str(&link) {
                headers.append(header::LINK, value);
            }
        }
    }
}

fn session_created(state: &AppState, broadcast: &str, answer: sfu::SessionAnswer) -> Response {
    let location = format!("/api/v1/broadcasts/{broadcast}/sessions/{}", answer.session);
    let mut response = (StatusCode::CREATED, answer.answer_sdp).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", answer.etag)) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        HeaderName::from_static("accept-patch"),
        HeaderValue::from_static(SDP_FRAG),
    );
    ice_link_headers(state, headers);
    response
}

/// Constant-time comparison so the key cannot be guessed byte by byte from
/// response timing.
fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Publish a broadcast (WHIP). Authorize with `Authorization: Bearer <stream key>`
/// (apps) or the owner's session (the studio page). A second publish replaces
/// the first without viewers reconnecting.
#[utoipa::path(post, path = "/broadcasts/{broadcast_id}/whip", tag = "media",
    params(("broadcast_id" = String, Path)),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses(
        (status = 201, body = String, content_type = "application/sdp",
         description = "SDP answer; `Location` names the session, `Link` carries ICE servers"),
        (status = 400, body = crate::error::Problem, description = "`bad_sdp`: malformed, control characters, over 64 KiB"),
        (status = 401, body = crate::error::Problem, description = "missing or wrong stream key"),
        (status = 406, body = crate::error::Problem, description = "`unsupported_codecs`"),
        (status = 409, body = crate::error::Problem, description = "`broadcast_ended`"),
        (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "`sdp_too_complex`: over the offer limits"),
        (status = 429, body = crate::error::Problem,
         description = "`too_many_pending`: this address has too many sessions still connecting; `rate_limited`: too many new sessions from this address (`Retry-After`)"),
        (status = 503, body = crate::error::Problem, description = "server at capacity")))]
async fn whip_publish(
    State(state): State<AppState>,
    client: ClientAddr,
    Caller(caller): Caller,
    Path(broadcast_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    state.limits.media_session.check(client)?;
    let (broadcast, shop) = load_broadcast(&state, &broadcast_id).await?;
    let by_key = bearer(&headers).is_some_and(|key| same_secret(key, &broadcast.stream_key));
    let by_owner = caller
        .as_ref()
        .and_then(|c| c.identity.user())
        .is_some_and(|user| *user == shop.owner_id);
    if !by_key && !by_owner {
        return Err(if bearer(&headers).is_some() {
            ApiError::Other {
                status: StatusCode::UNAUTHORIZED,
                code: ProblemCode::WrongStreamKey,
                detail: "the stream key is wrong; copy it again from the studio (it may have been rotated)".into(),
            }
        } else {
            ApiError::Unauthenticated
        });
    }
    if broadcast.state == BroadcastState::Ended {
        return Err(ApiError::conflict(
            ProblemCode::BroadcastEnded,
            "this broadcast has ended; schedule a new one in the studio to go live again",
        ));
    }
    require_content_type(&headers, SDP)?;
    let answer = state
        .sfu
        .publish(broadcast.id.as_str(), sdp_text(&body)?, client.0)
        .await
        .map_err(sfu_error)?;
    tracing::info!(broadcast = %broadcast.id, session = %answer.session, via = if by_key { "stream key" } else { "studio" }, "publisher connected");
    Ok(session_created(&state, broadcast.id.as_str(), answer))
}

/// Watch a broadcast (WHEP). No sign-in needed.
#[utoipa::path(post, path = "/broadcasts/{broadcast_id}/whep", tag = "media",
    params(("broadcast_id" = String, Path)),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer (recvonly)"),
    responses(
        (status = 201, body = String, content_type = "application/sdp", description = "SDP answer"),
        (status = 400, body = crate::error::Problem, description = "`bad_sdp`: malformed, control characters, over 64 KiB"),
        (status = 404, body = crate::error::Problem, description = "unknown broadcast, or `no_publisher` (not live yet)"),
        (status = 409, body = crate::error::Problem, description = "`broadcast_ended`"),
        (status = 406, body = crate::error::Problem,
         description = "`unsupported_codecs`: this player cannot decode the broadcast's codec"),
        (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "`sdp_too_complex`: over the offer limits"),
        (status = 429, body = crate::error::Problem,
         description = "`too_many_pending`: this address has too many sessions still connecting; `rate_limited`: too many new sessions from this address (`Retry-After`)"),
        (status = 503, body = crate::error::Problem,
         description = "`room_full` (every viewer slot is taken by a connected viewer) or `room_busy` (too many viewers still connecting), with `Retry-After`")))]
async fn whep_play(
    State(state): State<AppState>,
    client: ClientAddr,
    Path(broadcast_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    state.limits.media_session.check(client)?;
    let (broadcast, _) = load_broadcast(&state, &broadcast_id).await?;
    if broadcast.state == BroadcastState::Ended {
        return Err(ApiError::conflict(
            ProblemCode::BroadcastEnded,
            "this broadcast has ended",
        ));
    }
    require_content_type(&headers, SDP)?;
    let answer = state
        .sfu
        .play(broadcast.id.as_str(), sdp_text(&body)?, client.0)
        .await
        .map_err(sfu_error)?;
    Ok(session_created(&state, broadcast.id.as_str(), answer))
}

fn options_response(state: &AppState) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static(SDP),
    );
    ice_link_headers(state, headers);
    response
}

/// WHIP endpoint discovery: accepted types and ICE servers (also CORS preflight).
#[utoipa::path(options, path = "/broadcasts/{broadcast_id}/whip", tag = "media",
    params(("broadcast_id" = String, Path)), responses((status = 204)))]
async fn whip_options(State(state): State<AppState>) -> Response {
    options_response(&state)
}

/// WHEP endpoint discovery: accepted types and ICE servers (also CORS preflight).
#[utoipa::path(options, path = "/broadcasts/{broadcast_id}/whep", tag = "media",
    params(("broadcast_id" = String, Path)), responses((status = 204)))]
async fn whep_options(State(state): State<AppState>) -> Response {
    options_response(&state)
}

/// Add ICE candidates to a publish or play session (trickle ICE).
#[utoipa::path(patch, path = "/broadcasts/{broadcast_id}/sessions/{session_id}", tag = "media",
    params(("broadcast_id" = String, Path), ("session_id" = String, Path)),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses((status = 204), (status = 400, body = crate::error::Problem,
                                description = "`bad_trickle`: not an SDP fragment, or a malformed candidate"),
              (status = 404, body = crate::error::Problem, description = "`unknown_session`"),
              (status = 412, body = crate::error::Problem,
               description = "`etag_mismatch`: `If-Match` names another ICE session"),
              (status = 415, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem,
               description = "`ice_restart_unsupported`: new ICE credentials or `If-Match: *` (RFC 9725 §4.3); POST a new offer instead")))]
async fn trickle(
    State(state): State<AppState>,
    Path((broadcast_id, session_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    require_content_type(&headers, SDP_FRAG)?;
    let session = SessionId::from(session_id.as_str());
    let etag = state
        .sfu
        .session_etag(&broadcast_id, &session)
        .map_err(sfu_error)?;
    match if_match(&headers) {
        IfMatch::Absent => {}
        // RFC 9725 §4.3: `If-Match: *` is how a client asks for an ICE restart.
        IfMatch::Any => return Err(sfu_error(SfuError::IceRestartUnsupported)),
        IfMatch::Tags(tags) => {
            if !tags.contains(&etag) {
                return Err(ApiError::Other {
                    status: StatusCode::PRECONDITION_FAILED,
                    code: ProblemCode::EtagMismatch,
                    detail: "If-Match does not name this session's ICE session; use the ETag from the answer".into(),
                });
            }
        }
    }
    let frag = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request(ProblemCode::BadTrickle, "not UTF-8 text"))?;
    state
        .sfu
        .trickle(&broadcast_id, &session, frag)
        .await
        .map_err(sfu_error)?;
    Ok(StatusCode::NO_CONTENT)
}

enum IfMatch {
    Absent,
    Any,
    /// Entity tags, without quotes or a weak prefix.
    Tags(Vec<String>),
}

fn if_match(headers: &HeaderMap) -> IfMatch {
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return IfMatch::Absent;
    }
    if values.contains(&"*") {
        return IfMatch::Any;
    }
    IfMatch::Tags(
        values
            .iter()
            .map(|v| v.trim_start_matches("W/").trim_matches('"').to_owned())
            .collect(),
    )
}

/// End a publish or play session.
#[utoipa::path(delete, path = "/broadcasts/{broadcast_id}/sessions/{session_id}", tag = "media",
    params(("broadcast_id" = String, Path), ("session_id" = String, Path)),
    responses((status = 200), (status = 404, body = crate::error::Problem, description = "`unknown_session`")))]
async fn end_session(
    State(state): State<AppState>,
    Path((broadcast_id, session_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .sfu
        .end_session(&broadcast_id, &SessionId::from(session_id.as_str()))
        .await
        .map_err(sfu_error)?;
    Ok(StatusCode::OK)
}

/// How the broadcast's media is doing, for the studio.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MediaStats {
    /// A publisher is connected.
    pub live: bool,
    /// Connected viewers: what the viewer limit counts.
    pub viewer_count: usize,
    /// Viewers still connecting (they take no slot, and are dropped if they do
    /// not connect within seconds).
    pub pending_viewers: usize,
    pub publisher: Option<PublisherView>,
    /// Keyframe requests sent to the publisher so far (rate-limited).
    pub keyframe_requests_sent: u64,
    /// Per viewer (at most 200, worst connections first).
    pub viewers: Vec<ViewerView>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PublisherView {
    pub connected: bool,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Simulcast layers (or the one video stream), lowest first.
    pub layers: Vec<LayerView>,
    pub audio_bitrate_bps: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LayerView {
    pub rid: Option<String>,
    pub bitrate_bps: u64,
    pub keyframes: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ViewerView {
    pub connected: bool,
    pub bitrate_bps: u64,
    pub estimate_bps: u64,
    /// Loss fraction (0–1) from the viewer's last receiver report.
    pub loss: f64,
    pub rtt_ms: Option<u32>,
    /// Simulcast layer index (0 = lowest), if video flows.
    pub layer: Option<usize>,
    pub audio_only: bool,
    pub retransmitted: u64,
}

/// Media health of a broadcast: the publisher's layers and every viewer's
/// bitrate, loss and round-trip time (owner and moderators).
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/stats", tag = "media",
    params(("broadcast_id" = String, Path)),
    responses((status = 200, body = MediaStats), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem)))]
async fn media_stats(
    State(state): State<AppState>,
    me: crate::auth::SignedIn,
    Path(broadcast_id): Path<String>,
) -> ApiResult<crate::extract::Json<MediaStats>> {
    let (broadcast, shop) = load_broadcast(&state, &broadcast_id).await?;
    state.shops.moderating(&me.user, &shop.id).await?;
    let Some(stats) = state.sfu.room_stats(broadcast.id.as_str()) else {
        return Ok(crate::extract::Json(MediaStats {
            live: false,
            viewer_count: 0,
            pending_viewers: 0,
            publisher: None,
            keyframe_requests_sent: 0,
            viewers: Vec::new(),
        }));
    };
    let mut viewers: Vec<ViewerView> = stats
        .viewers
        .iter()
        .map(|v| ViewerView {
            connected: v.connected,
            bitrate_bps: v.bitrate_bps,
            estimate_bps: v.estimate_bps,
            loss: v.loss,
            rtt_ms: v.rtt_ms,
            layer: v.layer,
            audio_only: v.audio_only,
            retransmitted: v.retransmitted,
        })
        .collect();
    viewers.sort_by(|a, b| {
        b.loss
            .total_cmp(&a.loss)
            .then(a.estimate_bps.cmp(&b.estimate_bps))
    });
    viewers.truncate(200);
    Ok(crate::extract::Json(MediaStats {
        live: stats.live,
        viewer_count: stats.viewer_count,
        pending_viewers: stats.pending_viewers,
        publisher: stats.publisher.map(|p| PublisherView {
            connected: p.connected,
            video_codec: p.video_codec,
            audio_codec: p.audio_codec,
            layers: p
                .layers
                .into_iter()
                .map(|l| LayerView {
                    rid: l.rid,
                    bitrate_bps: l.bitrate_bps,
                    keyframes: l.keyframes,
                })
                .collect(),
            audio_bitrate_bps: p.audio_bitrate_bps,
        }),
        keyframe_requests_sent: stats.keyframe_requests_sent,
        viewers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_distinct_code_and_passing_ones_a_wait() {
        let all = [
            SfuError::BadSdp(String::new()),
            SfuError::SdpTooComplex(String::new()),
            SfuError::UnsupportedCodecs(String::new()),
            SfuError::RoomFull(1),
            SfuError::TooManyPending(1),
            SfuError::RoomBusy(1),
            SfuError::NoPublisher,
            SfuError::UnknownSession,
            SfuError::TooManySessions(1),
            SfuError::BadTrickle(String::new()),
            SfuError::IceRestartUnsupported,
            SfuError::ShuttingDown,
            SfuError::Internal(String::new()),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|e| sfu_problem(e).1).collect();
        assert_eq!(codes.len(), all.len());
        for e in &all {
            let (status, code, retry) = sfu_problem(e);
            let passes = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::SERVICE_UNAVAILABLE && code != ProblemCode::Internal);
            assert_eq!(retry.is_some(), passes, "{code}");
        }
        assert_eq!(sfu_problem(&SfuError::NoPublisher).0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  k3y"),
        );
        assert_eq!(bearer(&h), Some("k3y"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
