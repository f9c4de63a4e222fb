//! The buyer's order page behind the private link in the confirmation
//! (`/o/{token}`).

use super::{Audience, ErrorPage, Frame, private_html};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    frame: Frame,
    token: String,
}

#[derive(Template)]
#[template(path = "order-missing.html")]
struct OrderMissingPage {
    frame: Frame,
}

const TITLE: &str = "我的订单 · 田间直播";

/// The order itself is fetched by the page's script from the API with the
/// same token; an unknown token gets a 404 page here.
pub(super) async fn private_order(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    match state.orders.order_by_token(&token).await {
        Ok(_) => private_html(
            StatusCode::OK,
            &OrderPage {
                frame: Frame::new(TITLE, "order", "order.js", Audience::Private),
                token,
            },
        ),
        Err(orders::OrdersError::NotFound) => private_html(
            StatusCode::NOT_FOUND,
            &OrderMissingPage {
                frame: Frame::new(TITLE, "order-missing", "order.js", Audience::Private),
            },
        ),
        Err(e) => {
            tracing::error!(error = %e, "private order page");
            ErrorPage::response(Audience::Private)
        }
    }
}
