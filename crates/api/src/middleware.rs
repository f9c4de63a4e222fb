//! Cross-cutting request handling: metrics, cross-site request checks,
//! security headers.

use crate::error::{ApiError, ProblemCode};
use crate::state::ApiSettings;
use axum::extract::{MatchedPath, Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use std::sync::Arc;
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

/// Refuses state-changing requests that a browser may have sent from
/// another site with the caller's session cookie (cross-site request
/// forgery). Session cookies are SameSite=Lax, which already keeps them off
/// most cross-site requests; this closes the rest:
///
/// * a write that carries the session cookie must name where it comes from:
///   browsers send `Origin` on every POST, PATCH and DELETE (older ones at
///   least a `Referer`), so a write with the cookie and neither is refused
///   (`origin_required`);
/// * that origin must be this site's ([`origin_allowed`]), or the write is
///   refused (`cross_site_request`).
///
/// Writes without the session cookie (OBS and GStreamer with a stream key,
/// WHEP players, sign-up and sign-in) carry no ambient authority and pass.
pub async fn same_origin_writes(
    State(settings): State<Arc<ApiSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !unsafe_method || !carries_session_cookie(request.headers()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER));
    let Some(claimed) = claimed else {
        return ApiError::Other {
            status: StatusCode::FORBIDDEN,
            code: ProblemCode::OriginRequired,
            detail: "a request with a session cookie must carry an Origin or Referer header"
                .to_owned(),
        }
        .into_response();
    };
    if !origin_allowed(claimed, headers.get(header::HOST), &settings.public_url) {
        return ApiError::Other {
            status: StatusCode::FORBIDDEN,
            code: ProblemCode::CrossSiteRequest,
            detail: "cross-site request refused".to_owned(),
        }
        .into_response();
    }
    next.run(request).await
}

fn carries_session_cookie(headers: &HeaderMap) -> bool {
    CookieJar::from_headers(headers)
        .get(crate::auth::SESSION_COOKIE)
        .is_some()
}

/// Scheme, host and port: what makes two URLs the same origin.
#[derive(Debug, PartialEq, Eq)]
struct SiteOrigin {
    scheme: String,
    host: String,
    port: u16,
}

impl SiteOrigin {
    /// The origin of an absolute `http(s)` URL (an `Origin` header, a
    /// `Referer`, the public URL). `null` and anything else are `None`.
    fn of_url(url: &str) -> Option<SiteOrigin> {
        let uri: Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        Self::new(scheme, authority)
    }

    /// A `Host` header's authority, reached with `scheme`.
    fn of_host(scheme: &str, host: &HeaderValue) -> Option<SiteOrigin> {
        let authority: Authority = host.to_str().ok()?.parse().ok()?;
        Self::new(scheme.to_owned(), &authority)
    }

    fn new(scheme: String, authority: &Authority) -> Option<SiteOrigin> {
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        // Browsers never put credentials in an Origin or Referer.
        if authority.as_str().contains('@') {
            return None;
        }
        Some(SiteOrigin {
            port: authority.port_u16().unwrap_or(default_port),
            host: authority.host().to_ascii_lowercase(),
            scheme,
        })
    }
}

/// Whether `claimed` (an `Origin` header or a `Referer` URL) is this site:
/// the same scheme, host and port as the public URL, or (for a server
/// reached under more than one name, say its LAN address as well as its
/// domain) the request's own `Host` under the public URL's scheme. The Host
/// is set by the browser to where the request goes, so an origin equal to
/// it is a page of this very server; pinning the scheme keeps an
/// `https://` page from writing to an `http://` server and the other way
/// round.
pub(crate) fn origin_allowed(
    claimed: &HeaderValue,
    host: Option<&HeaderValue>,
    public_url: &str,
) -> bool {
    let Some(public) = SiteOrigin::of_url(public_url) else {
        return false;
    };
    let Some(claimed) = claimed.to_str().ok().and_then(SiteOrigin::of_url) else {
        return false;
    };
    claimed == public
        || host
            .and_then(|h| SiteOrigin::of_host(&public.scheme, h))
            .is_some_and(|reached| claimed == reached)
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
    fn origins_must_match_scheme_host_and_port() {
        let public = "http://127.0.0.1:8080";
        let allowed = |origin: &'static str, host: Option<&'static str>| {
            origin_allowed(
                &HeaderValue::from_static(origin),
                host.map(HeaderValue::from_static).as_ref(),
                public,
            )
        };
        assert!(allowed("http://127.0.0.1:8080", None));
        assert!(allowed("HTTP://127.0.0.1:8080", Some("127.0.0.1:8080")));
        // Referers are whole URLs.
        assert!(allowed("http://127.0.0.1:8080/studio?x=1", None));
        // Another scheme, port or host is another site.
        assert!(!allowed("https://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!allowed("http://127.0.0.1:8081", Some("127.0.0.1:8080")));
        assert!(!allowed("http://127.0.0.1", Some("127.0.0.1:8080")));
        assert!(!allowed("https://evil.example", Some("127.0.0.1:8080")));
        assert!(!allowed("null", Some("127.0.0.1:8080")));
        assert!(!allowed("", Some("127.0.0.1:8080")));
        assert!(!allowed("http://user@127.0.0.1:8080", None));
        // The same server reached under another name, with the public scheme.
        assert!(allowed("http://192.168.1.5:8080", Some("192.168.1.5:8080")));
        assert!(!allowed(
            "https://192.168.1.5:8080",
            Some("192.168.1.5:8080")
        ));
        assert!(!allowed(
            "http://192.168.1.5:8080",
            Some("192.168.1.5:9090")
        ));
    }

    #[test]
    fn default_ports_are_implied() {
        let https = |origin: &'static str, host: &'static str| {
            origin_allowed(
                &HeaderValue::from_static(origin),
                Some(&HeaderValue::from_static(host)),
                "https://live.example.cn/",
            )
        };
        assert!(https("https://live.example.cn", "live.example.cn"));
        assert!(https("https://live.example.cn:443", "backend:8080"));
        assert!(https("https://LIVE.example.cn", "live.example.cn"));
        // Behind a TLS proxy the server sees the name under https.
        assert!(https("https://shop.example.cn", "shop.example.cn"));
        assert!(!https("http://live.example.cn", "live.example.cn"));
        assert!(!https("https://live.example.cn:8443", "live.example.cn"));
    }
}
