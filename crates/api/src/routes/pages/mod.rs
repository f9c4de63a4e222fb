//! The web pages: home, the viewer page people share, the buyer's private
//! order page, the farmer's studio, and the static assets they load (all
//! from `web/`, embedded in the binary in release builds).
//!
//! Pages are askama templates under `web/pages/` (checked when the crate
//! compiles, values HTML-escaped unless a template says otherwise), each
//! extending `layout.html` and filled from one struct per page; everything
//! dynamic happens in plain ES modules under `/static/<version>/js/`. The
//! version is a hash over every asset, so asset URLs change whenever any
//! asset does and can be cached for a year, while HTML is always
//! revalidated. Relative `import`s between modules stay inside one version.

mod assets;
mod order;
mod replay;
mod viewer;

use crate::state::AppState;
use askama::Template;
use assets::{REVALIDATE, module_closure, static_base};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/live/{broadcast_id}", get(viewer::viewer))
        .route("/replay/{broadcast_id}", get(replay::replay))
        .route("/shop/{shop_id}", get(replay::shop))
        .route("/o/{token}", get(order::private_order))
        .route("/studio", get(studio))
        .route("/studio/{*rest}", get(studio))
        .route("/static/{version}/{*path}", get(assets::asset))
        .route("/favicon.ico", get(assets::favicon))
        .fallback(not_found_page)
}

/// Who a page is for, which decides what search engines and referrers see.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Anyone: indexed, linked.
    Public,
    /// Not worth indexing (the studio, error pages).
    Unlisted,
    /// One person's private data: not indexed, and the link (which is the
    /// key to it) is not sent as the referrer anywhere.
    Private,
}

/// What `layout.html` puts around every page.
struct Frame {
    /// `<title>` text.
    title: String,
    /// Which page this is, for `data-page` (CSS and scripts key off it).
    page: &'static str,
    /// `/static/<version>`.
    assets: String,
    /// Every module the entry script imports, to preload.
    preloads: Vec<String>,
    /// The entry module's URL.
    script: String,
    indexed: bool,
    private: bool,
}

impl Frame {
    /// The frame for `page`, whose entry module is `js/<script>`.
    fn new(
        title: impl Into<String>,
        page: &'static str,
        script: &str,
        audience: Audience,
    ) -> Frame {
        let assets = static_base();
        let entry = format!("js/{script}");
        Frame {
            title: title.into(),
            page,
            preloads: module_closure(&entry)
                .iter()
                .map(|m| format!("{assets}/{m}"))
                .collect(),
            script: format!("{assets}/{entry}"),
            assets,
            indexed: audience == Audience::Public,
            private: audience == Audience::Private,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    frame: Frame,
}

#[derive(Template)]
#[template(path = "studio.html")]
struct StudioPage {
    frame: Frame,
}

#[derive(Template)]
#[template(path = "notfound.html")]
struct NotFoundPage {
    frame: Frame,
}

/// "Try again later": what a page shows when the database is not answering.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    frame: Frame,
}

impl ErrorPage {
    fn response(audience: Audience) -> Response {
        html(
            StatusCode::SERVICE_UNAVAILABLE,
            &ErrorPage {
                frame: Frame::new("请稍后再试 · 田间直播", "error", "common.js", audience),
            },
        )
    }
}

/// A page every visitor may cache as long as they revalidate it.
fn html(status: StatusCode, page: &impl Template) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "page template");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
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
fn private_html(status: StatusCode, page: &impl Template) -> Response {
    let mut response = html(status, page);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

async fn home() -> Response {
    html(
        StatusCode::OK,
        &HomePage {
            frame: Frame::new(
                "田间直播 fieldcast · 农户自己卖好粮",
                "home",
                "home.js",
                Audience::Public,
            ),
        },
    )
}

async fn studio() -> Response {
    html(
        StatusCode::OK,
        &StudioPage {
            frame: Frame::new(
                "农户工作台 · 田间直播",
                "studio",
                "studio.js",
                Audience::Unlisted,
            ),
        },
    )
}

async fn not_found_page() -> Response {
    html(
        StatusCode::NOT_FOUND,
        &NotFoundPage {
            frame: Frame::new(
                "找不到这个页面 · 田间直播",
                "notfound",
                "common.js",
                Audience::Unlisted,
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use assets::Assets;

    /// The template sources, read from `web/pages/` as askama does.
    fn templates() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/pages");
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        out.sort();
        assert!(out.len() >= 8, "{out:?}");
        out
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let hostile = r#""><img src=x onerror=alert(1)>"#;
        let page = NotFoundPage {
            frame: Frame::new(hostile, "notfound", "common.js", Audience::Unlisted),
        }
        .render()
        .unwrap();
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(page.contains("<title>&#34;&#62;&#60;img src=x"), "{page}");
    }

    #[test]
    fn the_layout_links_the_entry_script_and_its_imports() {
        let page = HomePage {
            frame: Frame::new("t", "home", "home.js", Audience::Public),
        }
        .render()
        .unwrap();
        let base = static_base();
        assert!(page.contains(&format!(
            r#"<script type="module" src="{base}/js/home.js">"#
        )));
        assert!(page.contains(&format!(
            r#"<link rel="modulepreload" href="{base}/js/home.js">"#
        )));
        assert!(page.contains(r#"<body data-page="home""#), "{page}");
        assert!(!page.contains("robots"), "a public page is indexed: {page}");
        let private = ErrorPage {
            frame: Frame::new("t", "error", "common.js", Audience::Private),
        }
        .render()
        .unwrap();
        assert!(private.contains(r#"<meta name="referrer" content="no-referrer">"#));
        assert!(private.contains(r#"content="noindex, nofollow""#));
    }

    #[test]
    fn every_script_and_stylesheet_a_page_names_exists() {
        for (name, text) in templates() {
            for link in text.split("{{ frame.assets }}/").skip(1) {
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
    fn pages_obey_the_content_security_policy() {
        // The CSP forbids inline script and style: nothing in a template
        // may rely on them (it would silently not work).
        for (name, text) in templates() {
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
            // Markup is composed in templates, never passed in as a value.
            assert!(!text.contains("|safe"), "{name}: unescaped value");
        }
    }
}
