//! The web pages: home, the viewer page people share, the buyer's private
//! order page, the farmer's studio, and the static assets they load (all
//! from `web/`, embedded in the binary in release builds).
//!
//! Pages are small HTML templates filled on the server; everything dynamic
//! happens in plain ES modules under `/static/<version>/js/`. The version is
//! a hash over every asset, so asset URLs change whenever any asset does and
//! can be cached for a year, while HTML is always revalidated. Relative
//! `import`s between modules stay inside one version.
//!
//! Templates use `{{name}}` for values, which are always HTML-escaped, and
//! `{{{name}}}` only for markup this module composed itself.

use super::broadcasts::load_broadcast;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::BroadcastState;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use store::{BroadcastRecord, ShopRecord};

/// Files served under `/static/<version>/`.
#[derive(RustEmbed)]
#[folder = "../../web/static"]
struct Assets;

/// Page templates (not served as files).
#[derive(RustEmbed)]
#[folder = "../../web/pages"]
struct Templates;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/live/{broadcast_id}", get(viewer))
        .route("/o/{token}", get(private_order))
        .route("/studio", get(studio))
        .route("/studio/{*rest}", get(studio))
        .route("/static/{version}/{*path}", get(asset))
        .route("/favicon.ico", get(favicon))
        .fallback(not_found_page)
        .layer(axum::middleware::from_fn(gzip_text))
}

/// Gzips pages and text responses for browsers that accept it: on a weak
/// rural link the ~80 KB a first visit loads shrinks to about a quarter.
/// Static assets arrive here already compressed (see [`asset`]).
async fn gzip_text(request: Request, next: Next) -> Response {
    let accepts = client_accepts_gzip(request.headers());
    let response = next.run(request).await;
    let compressible = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_compressible);
    if !compressible || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let Ok(bytes) = axum::body::to_bytes(body, 4 * 1024 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    };
    if !accepts || bytes.len() < MIN_GZIP_BYTES {
        return Response::from_parts(parts, Body::from(bytes));
    }
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(gzip(&bytes)))
}

/// Smaller bodies gain too little from gzip to be worth it.
const MIN_GZIP_BYTES: usize = 1024;

fn is_compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("image/svg")
        || content_type.contains("json")
}

fn client_accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip)
}

/// Gzipped assets, compressed once each. Keyed by the asset's own name (one
/// of [`Assets`], never a spelling from a URL) and checked against its
/// content hash, so it holds at most one entry per embedded file whatever
/// clients ask for, and a file edited under a debug build is not served
/// stale.
static GZIPPED_ASSETS: std::sync::LazyLock<Mutex<HashMap<String, GzippedAsset>>> =
    std::sync::LazyLock::new(Default::default);

/// The content hash the gzip was made from, and the gzip.
type GzippedAsset = ([u8; 32], Bytes);

fn gzipped_asset(name: &str, file: &rust_embed::EmbeddedFile) -> Bytes {
    let hash = file.metadata.sha256_hash();
    let cached = GZIPPED_ASSETS.lock().ok().and_then(|c| {
        c.get(name)
            .filter(|(h, _)| *h == hash)
            .map(|(_, b)| b.clone())
    });
    if let Some(hit) = cached {
        return hit;
    }
    let fresh = Bytes::from(gzip(&file.data));
    if let Ok(mut cache) = GZIPPED_ASSETS.lock() {
        cache.insert(name.to_owned(), (hash, fresh.clone()));
    }
    fresh
}

/// How many gzipped assets are cached (for tests: it never exceeds the
/// number of embedded assets).
pub fn gzipped_asset_cache_len() -> usize {
    GZIPPED_ASSETS.lock().map(|c| c.len()).unwrap_or(0)
}

/// How many static assets are embedded.
pub fn asset_count() -> usize {
    Assets::iter().count()
}

fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(|p| p.replace(' ', "") == "q=0");
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write as _;
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 3), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The asset version: the first 12 hex digits of a hash over every asset's
/// name and content hash. Release builds compute it once; debug builds read
/// assets from disk, so they recompute it for every page.
fn asset_version() -> Cow<'static, str> {
    fn compute() -> String {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            if let Some(file) = Assets::get(&name) {
                hasher.update(name.as_bytes());
                hasher.update([0]);
                hasher.update(file.metadata.sha256_hash());
            }
        }
        let digest = hasher.finalize();
        digest.iter().take(6).fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
    if cfg!(debug_assertions) {
        Cow::Owned(compute())
    } else {
        static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        Cow::Borrowed(VERSION.get_or_init(compute).as_str())
    }
}

fn static_base() -> String {
    format!("/static/{}", asset_version())
}

/// The relative modules a script imports (`import … from './x.js'`), as
/// asset paths.
fn imports_of(path: &str) -> Vec<String> {
    let Some(file) = Assets::get(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&file.data).into_owned();
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    text.lines()
        .filter(|l| l.starts_with("import "))
        .filter_map(|l| l.split(['"', '\'']).nth(1))
        .filter(|spec| spec.starts_with('.'))
        .map(|spec| {
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for seg in spec.split('/') {
                match seg {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            parts.join("/")
        })
        .collect()
}

/// Every module `entry` needs, itself first: preloading them all saves a
/// round trip per level of imports on a slow link.
fn module_closure(entry: &str) -> Vec<String> {
    let mut seen = vec![entry.to_owned()];
    let mut next = 0;
    while next < seen.len() {
        for dep in imports_of(&seen[next]) {
            if !seen.contains(&dep) {
                seen.push(dep);
            }
        }
        next += 1;
    }
    seen
}

fn preload_links(base: &str, entry: &str) -> String {
    module_closure(entry)
        .iter()
        .map(|m| {
            format!(
                "<link rel=\"modulepreload\" href=\"{}\">\n",
                escape_html(&format!("{base}/{m}"))
            )
        })
        .collect()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn asset(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    // Only an asset's exact name finds it (release builds look names up in
    // a table; debug builds read the disk, where `js/./x.js` would work too).
    let file = Assets::iter()
        .any(|name| name == path)
        .then(|| Assets::get(&path))
        .flatten();
    let Some(file) = file else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, REVALIDATE)],
            "not found",
        )
            .into_response();
    };
    // A page from before a deploy may ask for an old version: it gets the
    // current file, but must not cache it under the old URL for a year.
    let cache = if version == asset_version() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let content_type = content_type(&path);
    let mut response = if is_compressible(content_type) {
        let gzipped = client_accepts_gzip(&headers) && file.data.len() >= MIN_GZIP_BYTES;
        let mut response = if gzipped {
            (
                [(header::CONTENT_ENCODING, "gzip")],
                gzipped_asset(&path, &file),
            )
                .into_response()
        } else {
            file.data.into_response()
        };
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    } else {
        file.data.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn favicon() -> Response {
    match Assets::get("img/icon.svg") {
        Some(file) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            file.data,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Replaces `&<>"'` so text can never become markup, in element content
/// and in quoted attribute values alike.
pub fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value for a template: text (escaped) or markup composed here (raw).
enum Value<'a> {
    Text(Cow<'a, str>),
    Markup(String),
}

/// Fills `{{name}}` (escaped) and `{{{name}}}` (raw markup) placeholders.
/// An unknown name is a programming error: it panics in tests and debug
/// builds and renders empty in release.
fn fill(template: &str, values: &[(&str, Value<'_>)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (raw, open, close) = if after.starts_with("{{{") {
            (true, 3, "}}}")
        } else {
            (false, 2, "}}")
        };
        let Some(end) = after[open..].find(close) else {
            out.push_str(after);
            return out;
        };
        let name = after[open..open + end].trim();
        match values.iter().find(|(n, _)| *n == name).map(|(_, v)| v) {
            Some(Value::Text(text)) => out.push_str(&escape_html(text)),
            Some(Value::Markup(markup)) if raw => out.push_str(markup),
            Some(Value::Markup(_)) => {
                debug_assert!(false, "markup `{name}` needs triple braces");
            }
            None => debug_assert!(false, "template value `{name}` is missing"),
        }
        rest = &after[open + end + close.len()..];
    }
    out.push_str(rest);
    out
}

fn template(name: &str) -> String {
    Templates::get(name)
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .unwrap_or_else(|| panic!("page template {name} is embedded"))
}

/// What goes around every page.
struct Page<'a> {
    /// `<title>` text.
    title: Cow<'a, str>,
    /// Extra `<head>` markup (already escaped where needed).
    head: String,
    /// Which page this is, for `data-page` (CSS and scripts key off it).
    page: &'static str,
    /// The page's own template.
    body: &'static str,
    /// Values for the page's template.
    values: Vec<(&'static str, Value<'a>)>,
    /// The page's entry module under `js/`.
    script: &'static str,
}

fn render(page: Page<'_>) -> String {
    let base = static_base();
    let mut values = page.values;
    values.push(("static", Value::Text(Cow::Owned(base.clone()))));
    let body = fill(&template(page.body), &values);
    fill(
        &template("layout.html"),
        &[
            ("title", Value::Text(page.title)),
            ("head", Value::Markup(page.head)),
            ("page", Value::Text(Cow::Borrowed(page.page))),
            ("static", Value::Text(Cow::Owned(base.clone()))),
            (
                "preloads",
                Value::Markup(preload_links(&base, &format!("js/{}", page.script))),
            ),
            ("body", Value::Markup(body)),
            (
                "script",
                Value::Text(Cow::Owned(format!("{base}/js/{}", page.script))),
            ),
        ],
    )
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE)),
        ],
        body,
    )
        .into_response()
}

/// Like [`html`], for pages about one person's private data: never stored
/// by the browser or a proxy.
fn private_html(status: StatusCode, body: String) -> Response {
    let mut response = html(status, body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

/// Head tags for private pages: not indexed, and the link (which is the
/// key to the order) is not sent as the referrer anywhere.
const PRIVATE_HEAD: &str = "<meta name=\"robots\" content=\"noindex, nofollow\">\n<meta name=\"referrer\" content=\"no-referrer\">";

/// The buyer's order page behind the private link in the confirmation
/// (`/o/{token}`). The order itself is fetched by the page's script from
/// the API with the same token; an unknown token gets a 404 page here.
async fn private_order(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (status, page, body) = match state.orders.order_by_token(&token).await {
        Ok(_) => (StatusCode::OK, "order", "order.html"),
        Err(orders::OrdersError::NotFound) => {
            (StatusCode::NOT_FOUND, "order-missing", "order-missing.html")
        }
        Err(e) => {
            tracing::error!(error = %e, "private order page");
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                render(Page {
                    title: "请稍后再试 · 田间直播".into(),
                    head: PRIVATE_HEAD.to_owned(),
                    page: "error",
                    body: "error.html",
                    values: vec![],
                    script: "common.js",
                }),
            );
        }
    };
    private_html(
        status,
        render(Page {
            title: "我的订单 · 田间直播".into(),
            head: PRIVATE_HEAD.to_owned(),
            page,
            body,
            values: vec![("token", Value::Text(token.into()))],
            script: "order.js",
        }),
    )
}

async fn home() -> Response {
    html(
        StatusCode::OK,
        render(Page {
            title: "田间直播 fieldcast · 农户自己卖好粮".into(),
            head: String::new(),
            page: "home",
            body: "home.html",
            values: vec![],
            script: "home.js",
        }),
    )
}

async fn studio() -> Response {
    html(
        StatusCode::OK,
        render(Page {
            title: "农户工作台 · 田间直播".into(),
            head: r#"<meta name="robots" content="noindex">"#.to_owned(),
            page: "studio",
            body: "studio.html",
            values: vec![],
            script: "studio.js",
        }),
    )
}

async fn not_found_page() -> Response {
    html(
        StatusCode::NOT_FOUND,
        render(Page {
            title: "找不到这个页面 · 田间直播".into(),
            head: r#"<meta name="robots" content="noindex">"#.to_owned(),
            page: "notfound",
            body: "notfound.html",
            values: vec![],
            script: "common.js",
        }),
    )
}

/// Beijing time, which is what farmers and buyers read clocks in; the
/// page's script re-renders times in the phone's own zone.
fn beijing(ms: i64) -> Option<time::OffsetDateTime> {
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    Some(utc.to_offset(time::UtcOffset::from_hms(8, 0, 0).ok()?))
}

fn beijing_label(ms: i64) -> String {
    beijing(ms)
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

fn iso(ms: Option<i64>) -> String {
    ms.map(|ms| crate::views::Timestamp(ms).to_rfc3339())
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

/// Open Graph and Twitter tags so the shared link previews well in chat
/// apps: the shop's photo when it has one, else the site's picture. Every
/// value is escaped here, since this is markup.
fn share_tags(
    state: &AppState,
    b: &BroadcastRecord,
    shop: &ShopRecord,
    photo: Option<&store::PhotoRecord>,
) -> String {
    let url = state.settings.url(&format!("/live/{}", b.id));
    let image = match photo {
        Some(photo) => state.settings.url(&super::photos::photo_url(photo)),
        None => state.settings.url(&format!("{}/img/og.png", static_base())),
    };
    let title = format!("{} · {}", b.title, shop.name);
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
    let tags: [(&str, &str, &str); 11] = [
        ("name", "description", &description),
        ("property", "og:type", "website"),
        ("property", "og:site_name", "田间直播 fieldcast"),
        ("property", "og:title", &title),
        ("property", "og:description", &description),
        ("property", "og:image", &image),
        ("property", "og:url", &url),
        ("property", "og:locale", "zh_CN"),
        ("name", "twitter:card", "summary_large_image"),
        ("name", "twitter:title", &title),
        ("name", "twitter:description", &description),
    ];
    let mut head = String::new();
    for (attr, key, value) in tags {
        let _ = writeln!(
            head,
            r#"<meta {attr}="{key}" content="{}">"#,
            escape_html(value)
        );
    }
    let _ = writeln!(
        head,
        r#"<meta name="twitter:image" content="{}">"#,
        escape_html(&image)
    );
    let _ = writeln!(
        head,
        r#"<link rel="canonical" href="{}">"#,
        escape_html(&url)
    );
    head
}

async fn viewer(State(state): State<AppState>, Path(broadcast_id): Path<String>) -> Response {
    let (b, shop) = match load_broadcast(&state, &broadcast_id).await {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) => return not_found_page().await,
        Err(e) => {
            tracing::error!(error = %e, broadcast = %broadcast_id, "viewer page");
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                render(Page {
                    title: "请稍后再试 · 田间直播".into(),
                    head: String::new(),
                    page: "error",
                    body: "error.html",
                    values: vec![],
                    script: "common.js",
                }),
            );
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
    let head = share_tags(&state, &b, &shop, photo.as_ref());
    let scheduled_label = b.scheduled_at.map(beijing_label).unwrap_or_default();
    let values = vec![
        ("broadcast_id", Value::Text(b.id.as_str().to_owned().into())),
        ("shop_id", Value::Text(shop.id.as_str().to_owned().into())),
        (
            "broadcast_title",
            Value::Text(b.title.as_str().to_owned().into()),
        ),
        ("state", Value::Text(b.state.as_str().into())),
        ("state_word", Value::Text(state_word(b.state).into())),
        ("scheduled_at", Value::Text(iso(b.scheduled_at).into())),
        ("scheduled_label", Value::Text(scheduled_label.into())),
        (
            "shop_name",
            Value::Text(shop.name.as_str().to_owned().into()),
        ),
        (
            "shop_place",
            Value::Text(shop.place.as_str().to_owned().into()),
        ),
        (
            "shop_story",
            Value::Text(shop.story.as_str().to_owned().into()),
        ),
        (
            "watch_url",
            Value::Text(state.settings.url(&format!("/live/{}", b.id)).into()),
        ),
    ];
    html(
        StatusCode::OK,
        render(Page {
            title: format!("{} · {}", b.title, shop.name).into(),
            head,
            page: "viewer",
            body: "viewer.html",
            values,
            script: "viewer.js",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        assert_eq!(
            escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let out = fill(
            r#"<h1>{{t}}</h1><meta content="{{t}}">{{{m}}}"#,
            &[
                ("t", Value::Text(r#""><img src=x onerror=alert(1)>"#.into())),
                ("m", Value::Markup("<b>ok</b>".into())),
            ],
        );
        assert!(!out.contains("<img"), "{out}");
        assert!(out.ends_with("<b>ok</b>"), "{out}");
    }

    #[test]
    fn every_template_renders_completely() {
        for name in Templates::iter() {
            let text = template(&name);
            for (i, _) in text.match_indices("{{") {
                let rest = &text[i..];
                assert!(rest.contains("}}"), "{name}: unclosed placeholder");
            }
        }
        let page = render(Page {
            title: "t".into(),
            head: String::new(),
            page: "home",
            body: "home.html",
            values: vec![],
            script: "home.js",
        });
        assert!(!page.contains("{{"), "{page}");
        assert!(page.contains(&format!("{}/js/home.js", static_base())));
    }

    #[test]
    fn every_script_and_stylesheet_a_page_names_exists() {
        for name in Templates::iter() {
            let text = template(&name);
            for link in text.split("{{static}}/").skip(1) {
                let path: String = link
                    .chars()
                    .take_while(|c| !matches!(c, '"' | '#'))
                    .collect();
                assert!(Assets::get(&path).is_some(), "{name} links missing {path}");
            }
        }
        for script in ["home.js", "studio.js", "viewer.js", "common.js", "order.js"] {
            assert!(Assets::get(&format!("js/{script}")).is_some(), "{script}");
        }
    }

    #[test]
    fn relative_imports_resolve_to_embedded_modules() {
        for name in Assets::iter().filter(|n| n.ends_with(".js")) {
            for target in imports_of(&name) {
                assert!(
                    Assets::get(&target).is_some(),
                    "{name} imports {target}, which is not an asset"
                );
            }
        }
        let viewer = module_closure("js/viewer.js");
        assert_eq!(viewer[0], "js/viewer.js");
        for needed in ["js/whep.js", "js/webrtc.js", "js/api.js", "js/i18n.js"] {
            assert!(viewer.iter().any(|m| m == needed), "{viewer:?}");
        }
        assert!(!viewer.iter().any(|m| m.contains("studio")), "{viewer:?}");
        for needed in [
            "js/live/channel.js",
            "js/live/chat.js",
            "js/live/checkout.js",
        ] {
            assert!(viewer.iter().any(|m| m == needed), "{viewer:?}");
        }
        // The private order page loads no player and nothing of the studio.
        let order = module_closure("js/order.js");
        assert!(
            !order
                .iter()
                .any(|m| m.contains("studio") || m.contains("whep") || m.contains("channel")),
            "{order:?}"
        );
        let studio = module_closure("js/studio.js");
        assert!(
            studio.iter().any(|m| m == "js/live/moderation.js"),
            "{studio:?}"
        );
    }

    #[test]
    fn pages_obey_the_content_security_policy() {
        // The CSP forbids inline script and style: nothing in a template
        // may rely on them (it would silently not work).
        for name in Templates::iter() {
            let text = template(&name);
            assert!(!text.contains(" style="), "{name}: style attribute");
            assert!(!text.contains("<style"), "{name}: style element");
            for (i, _) in text.match_indices("<script") {
                let tag: String = text[i..].chars().take_while(|c| *c != '>').collect();
                assert!(tag.contains(" src="), "{name}: inline script");
            }
            let lower = text.to_lowercase();
            for attr in [
                " onclick=",
                " onload=",
                " onerror=",
                " onsubmit=",
                " onchange=",
                " oninput=",
            ] {
                assert!(!lower.contains(attr), "{name}: inline handler {attr}");
            }
            assert!(!lower.contains("javascript:"), "{name}: javascript: URL");
        }
        for name in Assets::iter().filter(|n| n.ends_with(".js")) {
            let file = Assets::get(&name).unwrap();
            let text = String::from_utf8_lossy(&file.data);
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{name} uses {banned}");
            }
        }
    }

    #[test]
    fn content_types_cover_the_assets() {
        for name in Assets::iter() {
            assert_ne!(
                content_type(&name),
                "application/octet-stream",
                "{name} needs a content type"
            );
        }
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip(""));
        let text = "田间直播 ".repeat(200);
        let packed = gzip(text.as_bytes());
        assert!(packed.len() < text.len() / 4);
        let mut out = String::new();
        use std::io::Read as _;
        flate2::read::GzDecoder::new(packed.as_slice())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

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
            beijing_label(1_791_441_000_000),
            "10月8日 14:30（北京时间）"
        );
    }
}
