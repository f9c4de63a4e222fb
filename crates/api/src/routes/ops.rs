//! Operator endpoints: liveness, readiness, Prometheus metrics.

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready for traffic: the database answers, and in cluster mode NATS too.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n");
    }
    if state.cluster.as_ref().is_some_and(|c| !c.is_connected()) {
        tracing::warn!("readiness check failed: NATS is unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster (NATS) unreachable\n",
        );
    }
    (StatusCode::OK, "ready\n")
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match &state.metrics {
        Some(handle) => {
            // The SFU keeps its per-broadcast media counters itself (rooms come and
            // go; a registry would keep their series after they end).
            let mut text = handle.render();
            text.push_str(&sfu::metrics::render_prometheus(&state.sfu.media_metrics()));
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        }
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics are disabled\n".to_owned(),
        ),
    }
}
