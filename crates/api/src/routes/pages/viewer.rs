//! The viewer page: the link a farmer shares (`/live/{broadcast_id}`).

use super::super::broadcasts::load_broadcast;
use super::{Audience, ErrorPage, Frame, assets::static_base, html, not_found_page};
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::{BroadcastState, UnixMillis};
use store::{BroadcastRecord, ShopRecord};

#[derive(Template)]
#[template(path = "viewer.html")]
struct ViewerPage {
    frame: Frame,
    share: ShareTags,
    broadcast_id: String,
    shop_id: String,
    broadcast_title: String,
    state: &'static str,
    state_word: &'static str,
    scheduled_at: String,
    scheduled_label: String,
    shop_name: String,
    shop_place: String,
    shop_story: String,
    watch_url: String,
}

/// What the Open Graph and Twitter tags say, so the shared link previews
/// well in chat apps.
struct ShareTags {
    title: String,
    description: String,
    /// The shop's photo when it has one, else the site's picture.
    image: String,
}

pub(super) async fn viewer(
    State(state): State<AppState>,
    Path(broadcast_id): Path<String>,
) -> Response {
    let (b, shop) = match load_broadcast(&state, &broadcast_id).await {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) => return not_found_page().await,
        Err(e) => {
            tracing::error!(error = %e, broadcast = %broadcast_id, "viewer page");
            return ErrorPage::response(Audience::Public);
        }
    };
    // A preview without the photo beats no page: a failed lookup is logged.
    let photo = state
        .store
        .current_photo(&store::PhotoSubject::Shop(shop.id.clone()))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "shop photo for the link preview");
            None
        });
    let image = match &photo {
        Some(photo) => state.settings.url(&super::super::photos::photo_url(photo)),
        None => state.settings.url(&format!("{}/img/og.png", static_base())),
    };
    let title = format!("{} · {}", b.title, shop.name);
    let page = ViewerPage {
        frame: Frame::new(title.clone(), "viewer", "viewer.js", Audience::Public),
        share: ShareTags {
            title,
            description: share_description(&b, &shop),
            image,
        },
        broadcast_id: b.id.as_str().to_owned(),
        shop_id: shop.id.as_str().to_owned(),
        broadcast_title: b.title.as_str().to_owned(),
        state: b.state.as_str(),
        state_word: state_word(b.state),
        scheduled_at: iso(b.scheduled_at),
        scheduled_label: b.scheduled_at.map(beijing_label).unwrap_or_default(),
        shop_name: shop.name.as_str().to_owned(),
        shop_place: shop.place.as_str().to_owned(),
        shop_story: shop.story.as_str().to_owned(),
        watch_url: state.settings.url(&format!("/live/{}", b.id)),
    };
    html(StatusCode::OK, &page)
}

/// When it is on, whose it is, and the start of the shop's story.
fn share_description(b: &BroadcastRecord, shop: &ShopRecord) -> String {
    let when = match (b.state, b.scheduled_at) {
        (BroadcastState::Live, _) => "正在直播".to_owned(),
        (BroadcastState::Scheduled, Some(at)) => format!("开播时间 {}", beijing_label(at)),
        (BroadcastState::Scheduled, None) => "即将开播".to_owned(),
        (BroadcastState::Ended, _) => "直播已结束".to_owned(),
    };
    let mut description = format!("{when}｜{} · {}", shop.name, shop.place);
    let story = excerpt(shop.story.as_str(), 60);
    if !story.is_empty() {
        description.push('｜');
        description.push_str(&story);
    }
    description
}

/// Beijing time, which is what farmers and buyers read clocks in; the
/// page's script re-renders times in the phone's own zone.
fn beijing(at: UnixMillis) -> Option<time::OffsetDateTime> {
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000)
        .ok()?;
    Some(utc.to_offset(time::UtcOffset::from_hms(8, 0, 0).ok()?))
}

fn beijing_label(at: UnixMillis) -> String {
    beijing(at)
        .map(|t| {
            format!(
                "{}月{}日 {:02}:{:02}（北京时间）",
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

fn iso(at: Option<UnixMillis>) -> String {
    at.and_then(|at| crate::views::Timestamp(at).to_rfc3339())
        .unwrap_or_default()
}

/// At most `max` characters of the first paragraph, with an ellipsis when cut.
fn excerpt(text: &str, max: usize) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut out: String = first.chars().take(max).collect();
    if first.chars().count() > max {
        out.push('…');
    }
    out
}

fn state_word(state: BroadcastState) -> &'static str {
    match state {
        BroadcastState::Scheduled => "即将开播",
        BroadcastState::Live => "直播中",
        BroadcastState::Ended => "已结束",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_at_characters() {
        assert_eq!(excerpt("谷子\n第二行", 10), "谷子");
        assert_eq!(excerpt("一二三四五", 3), "一二三…");
        assert_eq!(excerpt("", 3), "");
    }

    #[test]
    fn beijing_time_is_utc_plus_eight() {
        // 2026-10-08T06:30:00Z
        assert_eq!(
            beijing_label(UnixMillis::from_millis(1_791_441_000_000)),
            "10月8日 14:30（北京时间）"
        );
    }
}
