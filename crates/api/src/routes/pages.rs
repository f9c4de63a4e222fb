//! The web pages: studio, viewer page, moderator tools (assets in `web/`).

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
}
