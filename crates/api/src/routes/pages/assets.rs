//! The static assets under `/static/<version>/`: embedded from `web/static`
//! in release builds, named by a version hash so they can be cached for a
//! year, typed by extension. Compression happens once for the whole app
//! (`tower_http` in [`crate::app`]).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Files served under `/static/<version>/`.
#[derive(RustEmbed)]
#[folder = "../../web/static"]
pub(super) struct Assets;

pub(super) const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub(super) const REVALIDATE: &str = "no-cache";

/// The asset version: the first 12 hex digits of a hash over every asset's
/// name and content hash. Release builds compute it once; debug builds read
/// assets from disk, so they recompute it for every page.
pub(super) fn asset_version() -> Cow<'static, str> {
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

/// Where this build's assets live: `/static/<version>`.
pub(super) fn static_base() -> String {
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
pub(super) fn module_closure(entry: &str) -> Vec<String> {
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

pub(super) async fn asset(Path((version, path)): Path<(String, String)>) -> Response {
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
    let mut response = file.data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub(super) async fn favicon() -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn scripts_write_no_markup() {
        // With the CSP, text that became markup could not run, but it
        // could still forge the page: scripts build DOM nodes instead.
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
}
