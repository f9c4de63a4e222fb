//! Cross-cutting request handling: metrics, cross-site request checks,
//! security headers.

use crate::error::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Counts requests and records their latency per route template (never the
/// raw path, so ids do not explode the label set).
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Refuses state-changing requests that a browser sent from another site.
/// Session cookies are SameSite=Lax, which already keeps them off most
/// cross-site requests; checking `Origin` closes the rest. Requests without
/// `Origin` (curl, OBS, GStreamer) are not browser-forged and pass.
pub async fn same_origin_writes(request: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method
        && let Some(origin) = request.headers().get(header::ORIGIN)
        && let Some(host) = request.headers().get(header::HOST)
        && !origin_matches_host(origin, host)
        && request.headers().contains_key(header::COOKIE)
    {
        return ApiError::Forbidden("cross-site request refused").into_response();
    }
    next.run(request).await
}

fn origin_matches_host(origin: &HeaderValue, host: &HeaderValue) -> bool {
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The Content-Security-Policy for a server reached at `public_url`. It
/// forbids inline script and style and plugins everywhere, so chat text can
/// never become code. The live channel's websocket origin is listed
/// explicitly: older Safari and some in-app browsers do not treat `'self'`
/// as covering `ws:`/`wss:`.
pub fn content_security_policy(public_url: &str) -> HeaderValue {
    let websocket_origin = public_url
        .strip_prefix("https://")
        .map(|host| format!("wss://{}", host.trim_end_matches('/')))
        .or_else(|| {
            public_url
                .strip_prefix("http://")
                .map(|host| format!("ws://{}", host.trim_end_matches('/')))
        })
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob:; connect-src 'self' {websocket_origin}; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'self'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'",
        )
    })
}

/// Headers every response carries (see [`content_security_policy`]).
pub async fn security_headers(
    axum::extract::State(csp): axum::extract::State<HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_lists_the_websocket_origin() {
        let csp = content_security_policy("https://live.example.cn/");
        let csp = csp.to_str().unwrap();
        assert!(
            csp.contains("connect-src 'self' wss://live.example.cn;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"));
        let csp = content_security_policy("http://localhost:8080");
        assert!(csp.to_str().unwrap().contains("ws://localhost:8080"));
    }

    #[test]
    fn origin_must_match_host() {
        let host = HeaderValue::from_static("live.example.cn");
        assert!(origin_matches_host(
            &HeaderValue::from_static("https://live.example.cn"),
            &host
        ));
        assert!(!origin_matches_host(
            &HeaderValue::from_static("https://evil.example"),
            &host
        ));
        assert!(!origin_matches_host(
            &HeaderValue::from_static("null"),
            &host
        ));
    }
}
