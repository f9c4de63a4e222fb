//! The replay page (`/replay/{broadcast_id}`) and the public shop page
//! (`/shop/{shop_id}`), which lists the shop's replays. The page scripts
//! fetch the replay (segments, chapters, chat) and the shop's lists from
//! the API; here the page gets its frame and the words search engines and
//! link previews read.

use super::super::replays::replayable;
use super::super::shops::load_shop;
use super::{Audience, ErrorPage, Frame, html, not_found_page};
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "replay.html")]
struct ReplayPage {
    frame: Frame,
    broadcast_id: String,
    shop_id: String,
    broadcast_title: String,
    shop_name: String,
    shop_place: String,
    /// When it was live (RFC 3339), re-rendered in the phone's zone.
    started_at: String,
    description: String,
    replay_url: String,
}

#[derive(Template)]
#[template(path = "shop.html")]
struct ShopPage {
    frame: Frame,
    shop_id: String,
    shop_name: String,
    shop_place: String,
    shop_story: String,
    shop_url: String,
}

/// The page, or "try again later"; `None` when there is nothing to show (404).
fn page_or_error<T>(
    found: Result<T, ApiError>,
    what: &str,
    page: impl FnOnce(T) -> Response,
) -> Option<Response> {
    match found {
        Ok(value) => Some(page(value)),
        Err(ApiError::NotFound(_)) => None,
        Err(e) => {
            tracing::error!(error = %e, "{what} page");
            Some(ErrorPage::response(Audience::Public))
        }
    }
}

pub(super) async fn replay(
    State(state): State<AppState>,
    Path(broadcast_id): Path<String>,
) -> Response {
    let found = replayable(&state, &broadcast_id).await;
    let shown = page_or_error(found, "replay", |r| {
        let b = r.broadcast;
        let title = format!("回放 · {} · {}", b.title, r.shop.name);
        html(
            StatusCode::OK,
            &ReplayPage {
                frame: Frame::new(title, "replay", "replay.js", Audience::Public),
                description: format!("直播回放｜{} · {}：{}", r.shop.name, r.shop.place, b.title),
                replay_url: state.settings.url(&format!("/replay/{}", b.id)),
                broadcast_id: b.id.into_string(),
                shop_id: r.shop.id.to_string(),
                broadcast_title: b.title.into_string(),
                shop_name: r.shop.name.as_str().to_owned(),
                shop_place: r.shop.place.as_str().to_owned(),
                started_at: b
                    .started_at
                    .and_then(|at| crate::views::Timestamp(at).to_rfc3339())
                    .unwrap_or_default(),
            },
        )
    });
    match shown {
        Some(response) => response,
        None => not_found_page().await,
    }
}

pub(super) async fn shop(State(state): State<AppState>, Path(shop_id): Path<String>) -> Response {
    let found = load_shop(&state, &shop_id).await;
    let shown = page_or_error(found, "shop", |shop| {
        html(
            StatusCode::OK,
            &ShopPage {
                frame: Frame::new(
                    format!("{} · 田间直播", shop.name),
                    "shop",
                    "shop.js",
                    Audience::Public,
                ),
                shop_url: state.settings.url(&format!("/shop/{}", shop.id)),
                shop_id: shop.id.to_string(),
                shop_name: shop.name.as_str().to_owned(),
                shop_place: shop.place.as_str().to_owned(),
                shop_story: shop.story.as_str().to_owned(),
            },
        )
    });
    match shown {
        Some(response) => response,
        None => not_found_page().await,
    }
}
