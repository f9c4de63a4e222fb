//! fieldcast's HTTP surface: one router per module under `/api/v1`, the
//! auth extractors, one error type rendered as problem+json, and the
//! OpenAPI document built from the same route definitions (so the document
//! cannot list a route the server lacks, or miss one it has).

pub mod auth;
pub mod error;
pub mod extract;
pub mod limits;
mod middleware;
pub mod routes;
pub mod state;
pub mod views;

pub use error::{ApiError, ApiResult, ProblemCode};
pub use state::{ApiSettings, AppState};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, Request, header};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fieldcast API",
        description = "Live commerce for farmers: shops, products, broadcasts, live offers and orders. \
                       Errors are RFC 9457 problem documents with a stable `code`. Times are RFC 3339 UTC; \
                       money is integer fen. The live channel (websocket) is described in docs/protocol.md.",
        license(name = "AGPL-3.0-or-later")
    ),
    servers((url = "/api/v1")),
    tags(
        (name = "accounts", description = "Sign-up, sign-in, guests, sessions"),
        (name = "shops", description = "Shops and moderators"),
        (name = "products", description = "What a shop sells"),
        (name = "broadcasts", description = "Scheduling and stream keys"),
        (name = "live", description = "The live channel (websocket) and the moderation log"),
        (name = "orders", description = "Live offers, buy now, checkout, the farmer's orders"),
        (name = "media", description = "WHIP ingest and WHEP playback (RFC 9725); see docs/media.md"),
        (name = "operators", description = "The cluster's nodes, behind the operator token; see docs/cluster.md"),
    )
)]
struct ApiDoc;

/// The `/api/v1` routes together with their OpenAPI description.
pub fn api_v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::accounts::router())
        .merge(routes::shops::router())
        .merge(routes::products::router())
        .merge(routes::broadcasts::router())
        .merge(routes::recordings::router())
        .merge(routes::replays::router())
        .merge(routes::media::router())
        .merge(routes::orders::router())
        .merge(routes::live::router())
        .merge(routes::photos::router())
        .merge(routes::cluster::router())
}

/// The whole application: API, OpenAPI document, operator endpoints, with
/// tracing, metrics, body limits and security headers applied.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api_v1().split_for_parts();
    let openapi_json = serde_json::to_string_pretty(&openapi).expect("OpenAPI document serializes");
    let request_id = HeaderName::from_static("x-request-id");

    let api = api
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    openapi_json,
                )
            }),
        )
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.settings.clone(),
            middleware::same_origin_writes,
        ))
        .layer(DefaultBodyLimit::max(state.settings.json_body_limit));

    Router::new()
        .nest("/api/v1", api)
        .merge(routes::ops::router())
        .merge(routes::photos::files())
        .merge(routes::replays::files())
        .merge(routes::pages::router())
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(axum::middleware::from_fn_with_state(
            middleware::content_security_policy(&state.settings.public_url),
            middleware::security_headers,
        ))
        .layer(compression())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Gzip or brotli, as the browser prefers, for text: on a weak rural link
/// the ~80 KB a first visit loads shrinks to about a quarter. Photos and
/// media are compressed already; bodies under 1 KB gain too little.
fn compression() -> CompressionLayer<impl Predicate> {
    fn is_text(headers: &HeaderMap) -> bool {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.starts_with("text/")
                    || t.starts_with("image/svg")
                    || t.contains("json")
                    || t.contains("javascript")
            })
    }
    CompressionLayer::new().compress_when(SizeAbove::new(1024).and(
        |_: axum::http::StatusCode,
         _: axum::http::Version,
         headers: &HeaderMap,
         _: &axum::http::Extensions| is_text(headers),
    ))
}

/// The OpenAPI document as served, for tests and tooling.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_v1().split_for_parts().1
}
