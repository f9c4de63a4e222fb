//! Replays: a recorded broadcast's segment files (served with HTTP Range
//! requests, so players seek), its chapters made from what happened live
//! (each offer opened, pinned, sold out), and its chat with times.
//!
//! A broadcast has a replay when it is live or ended, was recorded here,
//! and recording was not switched off for it (switching it off hides the
//! replay too). Everything is on one timeline: milliseconds from the start
//! of the first segment's media.

use super::broadcasts::{BroadcastView, broadcast_view, load_broadcast};
use super::products::ProductView;
use super::shops::load_shop;
use crate::error::{ApiError, ApiResult, ProblemCode};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::views::{Timestamp, ts_opt};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::{BroadcastState, ChatMessageId, OfferId, Role, UnixMillis};
use recorder::disk::Segment;
use recorder::webm::{extension, mime_type};
use serde::{Deserialize, Serialize};
use store::{BroadcastRecord, OfferMoments, PinMoment, ShopRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Chat messages per page of [`replay_chat`].
const CHAT_PAGE: u32 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_replay))
        .routes(routes!(replay_chat))
        .routes(routes!(shop_replays))
}

/// The segment files, outside `/api/v1` like photos: `/recordings/{broadcast}/part-N.webm`.
pub fn files() -> Router<AppState> {
    Router::new().route("/recordings/{broadcast_id}/{file}", get(segment_file))
}

#[derive(Serialize, ToSchema)]
pub struct ReplayView {
    pub broadcast: BroadcastView,
    /// The broadcast is still live: the last segment is still growing, and
    /// its open offers can be bought in the live room.
    pub live: bool,
    /// One file per publisher connection, in order.
    pub segments: Vec<SegmentView>,
    /// What happened live, in order of time.
    pub chapters: Vec<ChapterView>,
    /// When each offer was on the live screen (`until_ms` absent: to the end).
    pub pins: Vec<PinSpanView>,
    /// The broadcast's offers, with their product as it is now.
    pub offers: Vec<ReplayOfferView>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentView {
    /// From 1.
    pub index: usize,
    /// The file, served with Range support.
    pub url: String,
    /// `video/webm` (VP8 + Opus, plays in browsers) or `video/x-matroska`
    /// (H.264 + Opus: many browsers cannot play it; the page offers it as a
    /// download then).
    #[schema(example = "video/webm")]
    pub content_type: &'static str,
    pub bytes: u64,
    /// Where it starts on the replay's timeline (ms).
    pub start_ms: i64,
    /// When its first picture was received.
    pub started_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema, Debug, PartialEq, Eq)]
pub struct ChapterView {
    /// `offer_opened`, `pinned` or `sold_out`.
    #[schema(example = "pinned")]
    pub kind: &'static str,
    /// On the replay's timeline (ms).
    pub at_ms: i64,
    pub offer: String,
    /// The offer's title (the product's title when it was offered).
    pub title: String,
}

#[derive(Serialize, ToSchema, Debug, PartialEq, Eq)]
pub struct PinSpanView {
    pub offer: String,
    pub from_ms: i64,
    pub until_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayOfferView {
    pub id: String,
    pub title: String,
    pub unit: String,
    /// The live price (fen).
    pub price_fen: i64,
    /// Still on sale in the live room (the broadcast is live and the offer not ended).
    pub open: bool,
    /// The product now (its list price and stock); absent when the farmer removed it.
    pub product: Option<ProductView>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayChatPage {
    pub messages: Vec<ReplayChatLine>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayChatLine {
    pub id: String,
    /// On the replay's timeline (ms); negative before the recording started.
    pub at_ms: i64,
    pub author_name: String,
    /// `owner`, `moderator` or `viewer`.
    #[schema(value_type = String, example = "viewer")]
    pub author_role: Role,
    pub text: String,
    /// When a moderator cleared the chat (timeline ms): it left the screen then.
    pub cleared_ms: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
pub struct ChatQuery {
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplaySummary {
    pub id: String,
    pub title: String,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// The replay page.
    pub replay_url: String,
    pub segments: usize,
}

/// A broadcast with a replay, and its segment files.
pub(crate) struct Replayable {
    pub broadcast: BroadcastRecord,
    pub shop: ShopRecord,
    pub segments: Vec<Segment>,
}

impl Replayable {
    /// Time zero of the timeline: the first segment's media start (for a
    /// file written before start times were kept, the broadcast's start).
    fn origin(&self) -> UnixMillis {
        self.segments
            .first()
            .and_then(|s| s.started_at.map(UnixMillis::from_millis))
            .or(self.broadcast.started_at)
            .unwrap_or_default()
    }
}

/// The segment files of a live or ended broadcast whose recording is on; none otherwise.
async fn segments_of(state: &AppState, broadcast: &BroadcastRecord) -> ApiResult<Vec<Segment>> {
    let Some(recordings) = state.recordings.clone() else {
        return Ok(Vec::new());
    };
    if broadcast.state == BroadcastState::Scheduled {
        return Ok(Vec::new());
    }
    let id = broadcast.id.as_str().to_owned();
    // Directory listings are blocking calls.
    tokio::task::spawn_blocking(move || {
        if recordings.enabled(&id) {
            recordings.segments(&id)
        } else {
            Vec::new()
        }
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("listing recordings: {e}")))
}

/// The broadcast's replay, or 404 when it has none.
pub(crate) async fn replayable(state: &AppState, raw_id: &str) -> ApiResult<Replayable> {
    let (broadcast, shop) = load_broadcast(state, raw_id).await?;
    let segments = segments_of(state, &broadcast).await?;
    if segments.is_empty() {
        return Err(ApiError::NotFound("replay"));
    }
    Ok(Replayable {
        broadcast,
        shop,
        segments,
    })
}

/// The file name segment `index` (from 1) of the listing is served under.
fn segment_name(index: usize, segment: &Segment) -> String {
    format!("part-{index}.{}", extension(segment.codec))
}

/// Chapters and pin spans on the timeline from `origin`: moments before the
/// recording started are put at its start, moments after the broadcast
/// ended are left out.
fn timeline(
    origin: UnixMillis,
    ended_at: Option<UnixMillis>,
    offers: &[OfferMoments],
    pins: &[PinMoment],
) -> (Vec<ChapterView>, Vec<PinSpanView>) {
    let title_of = |id: &OfferId| {
        offers
            .iter()
            .find(|o| o.offer_id == *id)
            .map(|o| o.title.as_str().to_owned())
    };
    let on_timeline = |at: UnixMillis| {
        ended_at
            .is_none_or(|end| at <= end)
            .then(|| offset_ms(at, origin).max(0))
    };
    let mut chapters = Vec::new();
    for offer in offers {
        let moments = [
            ("offer_opened", Some(offer.opened_at)),
            ("sold_out", offer.sold_out_at),
        ];
        for (kind, at) in moments {
            if let Some(at_ms) = at.and_then(on_timeline) {
                chapters.push(ChapterView {
                    kind,
                    at_ms,
                    offer: offer.offer_id.to_string(),
                    title: offer.title.as_str().to_owned(),
                });
            }
        }
    }
    let mut spans: Vec<PinSpanView> = Vec::new();
    for pin in pins {
        let Some(at_ms) = on_timeline(pin.at) else {
            continue;
        };
        let offer = pin.offer_id.to_string();
        let open = spans
            .iter_mut()
            .find(|s| s.offer == offer && s.until_ms.is_none());
        match (pin.pinned, open) {
            (true, None) => {
                let Some(title) = title_of(&pin.offer_id) else {
                    continue;
                };
                chapters.push(ChapterView {
                    kind: "pinned",
                    at_ms,
                    offer: offer.clone(),
                    title,
                });
                spans.push(PinSpanView {
                    offer,
                    from_ms: at_ms,
                    until_ms: None,
                });
            }
            (false, Some(span)) => span.until_ms = Some(at_ms),
            // A pin of a pinned offer, or an unpin of one not pinned: nothing changed on screen.
            _ => {}
        }
    }
    let order = |kind: &str| match kind {
        "offer_opened" => 0,
        "pinned" => 1,
        _ => 2,
    };
    chapters.sort_by_key(|c| (c.at_ms, order(c.kind)));
    (chapters, spans)
}

/// A broadcast's replay: its files, chapters and what was on sale (public).
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/replay", tag = "broadcasts",
    params(("broadcast_id" = String, Path)),
    responses((status = 200, body = ReplayView), (status = 404, body = crate::error::Problem)))]
async fn get_replay(
    State(state): State<AppState>,
    Path(broadcast_id): Path<String>,
) -> ApiResult<Json<ReplayView>> {
    let replay = replayable(&state, &broadcast_id).await?;
    let b = &replay.broadcast;
    let origin = replay.origin();
    let offers = state.store.offer_moments(&b.id).await?;
    let pins = state.store.pin_moments(&b.id).await?;
    let (chapters, pins) = timeline(origin, b.ended_at, &offers, &pins);
    let live = b.state == BroadcastState::Live;
    let photos = super::photos::product_photos(&state, &replay.shop.id).await?;
    let mut offer_views = Vec::with_capacity(offers.len());
    for offer in offers {
        let product = match state.store.product(&offer.product_id).await {
            Ok(p) => Some(ProductView {
                photo: photos.get(&format!("product:{}", p.id)).cloned(),
                ..ProductView::from(p)
            }),
            Err(store::StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        offer_views.push(ReplayOfferView {
            id: offer.offer_id.to_string(),
            title: offer.title.as_str().to_owned(),
            unit: offer.unit.as_str().to_owned(),
            price_fen: offer.price.get(),
            open: live && offer.ended_at.is_none(),
            product,
        });
    }
    let id = b.id.as_str();
    let segments = replay
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| SegmentView {
            index: i + 1,
            url: format!("/recordings/{id}/{}", segment_name(i + 1, s)),
            content_type: mime_type(s.codec),
            bytes: s.bytes,
            start_ms: s.started_at.map_or(0, |at| {
                offset_ms(UnixMillis::from_millis(at), origin).max(0)
            }),
            started_at: ts_opt(s.started_at.map(UnixMillis::from_millis)),
        })
        .collect();
    Ok(Json(ReplayView {
        broadcast: broadcast_view(&state, replay.broadcast.clone(), &replay.shop),
        live,
        segments,
        chapters,
        pins,
        offers: offer_views,
    }))
}

/// The cursor of a chat page: `<posted_at>.<message id>` of its last message.
fn parse_cursor(raw: &str) -> ApiResult<(i64, ChatMessageId)> {
    let bad = || ApiError::BadRequest {
        code: ProblemCode::BadCursor,
        detail: "after must be the next value of the previous page".into(),
    };
    let (at, id) = raw.split_once('.').ok_or_else(bad)?;
    let at = at.parse().map_err(|_| bad())?;
    let id = ChatMessageId::parse(id).map_err(|_| bad())?;
    Ok((at, id))
}

/// The broadcast's chat, oldest first, a page at a time, timed on the replay's timeline (public).
#[utoipa::path(get, path = "/broadcasts/{broadcast_id}/replay/chat", tag = "broadcasts",
    params(("broadcast_id" = String, Path), ChatQuery),
    responses((status = 200, body = ReplayChatPage), (status = 400, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn replay_chat(
    State(state): State<AppState>,
    Path(broadcast_id): Path<String>,
    Query(query): Query<ChatQuery>,
) -> ApiResult<Json<ReplayChatPage>> {
    let replay = replayable(&state, &broadcast_id).await?;
    let origin = replay.origin();
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let messages = state
        .store
        .chat_for_replay(
            &replay.broadcast.id,
            after.as_ref().map(|(at, id)| (*at, id)),
            CHAT_PAGE,
        )
        .await?;
    let next = (messages.len() == CHAT_PAGE as usize)
        .then(|| messages.last().map(|m| format!("{}.{}", m.posted_at, m.id)))
        .flatten();
    Ok(Json(ReplayChatPage {
        messages: messages
            .into_iter()
            .map(|m| ReplayChatLine {
                id: m.id.to_string(),
                at_ms: offset_ms(m.posted_at, origin),
                author_name: m.author_name.as_str().to_owned(),
                author_role: m.author_role,
                text: m.text.as_str().to_owned(),
                cleared_ms: m.cleared_at.map(|c| offset_ms(c, origin)),
            })
            .collect(),
        next,
    }))
}

/// The shop's replays: its recorded broadcasts that ended, newest first (public).
#[utoipa::path(get, path = "/shops/{shop_id}/replays", tag = "broadcasts",
    params(("shop_id" = String, Path)),
    responses((status = 200, body = Vec<ReplaySummary>), (status = 404, body = crate::error::Problem)))]
async fn shop_replays(
    State(state): State<AppState>,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<Vec<ReplaySummary>>> {
    let shop = load_shop(&state, &shop_id).await?;
    let mut out = Vec::new();
    for b in state.store.broadcasts_of_shop(&shop.id).await? {
        if b.state != BroadcastState::Ended {
            continue;
        }
        let segments = segments_of(&state, &b).await?.len();
        if segments == 0 {
            continue;
        }
        out.push(ReplaySummary {
            replay_url: format!("/replay/{}", b.id),
            id: b.id.into_string(),
            title: b.title.into_string(),
            started_at: ts_opt(b.started_at),
            ended_at: ts_opt(b.ended_at),
            segments,
        });
    }
    Ok(Json(out))
}

/// One segment file, with Range support (a player seeks by asking for bytes).
/// The file is found by its place in the listing, never by a path from the
/// request; the broadcast id is validated first.
async fn segment_file(
    State(state): State<AppState>,
    Path((broadcast_id, file)): Path<(String, String)>,
    request: Request,
) -> Response {
    let replay = match replayable(&state, &broadcast_id).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // Only the exact names the listing hands out (`part-1.webm`, not `part-01.webm`).
    let found = replay
        .segments
        .iter()
        .enumerate()
        .find(|(i, s)| segment_name(i + 1, s) == file)
        .map(|(_, s)| s);
    let Some(segment) = found else {
        return ApiError::NotFound("recording file").into_response();
    };
    let mut response = match tower_http::services::ServeFile::new(&segment.path)
        .try_call(request)
        .await
    {
        Ok(r) => r.map(axum::body::Body::new),
        Err(e) => {
            return ApiError::Internal(anyhow::anyhow!("serving a recording: {e}")).into_response();
        }
    };
    let headers = response.headers_mut();
    if headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(mime_type(segment.codec)),
        );
    }
    // A live broadcast's last file still grows: always ask again.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Milliseconds from the timeline's origin (negative before it).
fn offset_ms(at: UnixMillis, origin: UnixMillis) -> i64 {
    at.millis().saturating_sub(origin.millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Fen, ProductId, ProductTitle, Unit};

    fn offer(opened_at: i64, sold_out_at: Option<i64>) -> OfferMoments {
        OfferMoments {
            offer_id: OfferId::generate(),
            product_id: ProductId::generate(),
            title: ProductTitle::from_trusted("小米".into()),
            unit: Unit::from_trusted("袋".into()),
            price: Fen::from_trusted(100),
            opened_at: UnixMillis::from_millis(opened_at),
            sold_out_at: sold_out_at.map(UnixMillis::from_millis),
            ended_at: None,
        }
    }

    fn pin(offer: &OfferMoments, pinned: bool, at: i64) -> PinMoment {
        PinMoment {
            offer_id: offer.offer_id.clone(),
            pinned,
            at: UnixMillis::from_millis(at),
        }
    }

    #[test]
    fn chapters_follow_what_happened_live_on_the_recording_timeline() {
        let a = offer(500, Some(9_000));
        let b = offer(4_000, None);
        let pins = [
            pin(&a, true, 2_000),
            pin(&a, true, 2_500), // already pinned: no new chapter
            pin(&b, true, 5_000),
            pin(&a, false, 6_000),
            pin(&a, true, 20_000), // after the end
        ];
        let (chapters, spans) = timeline(
            UnixMillis::from_millis(1_000),
            Some(UnixMillis::from_millis(12_000)),
            &[a.clone(), b.clone()],
            &pins,
        );
        let seen: Vec<_> = chapters.iter().map(|c| (c.kind, c.at_ms)).collect();
        assert_eq!(
            seen,
            [
                ("offer_opened", 0), // before the recording: at its start
                ("pinned", 1_000),
                ("offer_opened", 3_000),
                ("pinned", 4_000),
                ("sold_out", 8_000),
            ]
        );
        assert_eq!(
            spans,
            [
                PinSpanView {
                    offer: a.offer_id.to_string(),
                    from_ms: 1_000,
                    until_ms: Some(5_000)
                },
                PinSpanView {
                    offer: b.offer_id.to_string(),
                    from_ms: 4_000,
                    until_ms: None
                },
            ]
        );
    }

    #[test]
    fn chat_cursors_are_checked() {
        let id = ChatMessageId::generate();
        assert_eq!(parse_cursor(&format!("12.{id}")).unwrap(), (12, id));
        assert!(parse_cursor("12").is_err());
        assert!(parse_cursor("x.msg").is_err());
        assert!(parse_cursor("12.../etc").is_err());
    }
}
