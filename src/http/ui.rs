//! The web dashboard at `/ui/`: the files under `ui/`, embedded at build
//! time and served with their content type, an ETag (so a reload is a 304)
//! and a strict Content-Security-Policy (scripts and styles from this origin
//! only, no inline script). The dashboard itself only calls the `/v1` API.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use super::{SharedState, error::ApiError};

/// `(path under /ui/, content type, bytes)`; `index.html` is also `/ui/`.
const FILES: [(&str, &str, &[u8]); 10] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/api.js"),
    ),
    (
        "links.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/links.js"),
    ),
    (
        "stats.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/stats.js"),
    ),
    (
        "webhooks.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/webhooks.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/style.css"),
    ),
    (
        "vendor/preact-htm.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/vendor/preact-htm.mjs"),
    ),
    (
        "vendor/qrcode.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/vendor/qrcode.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../ui/favicon.svg"),
    ),
];

/// The page may load and call only this origin; QR codes are `data:` images.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: HeaderValue,
}

/// ETags from the content, computed once.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(path, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            Asset {
                path,
                content_type,
                bytes,
                etag: HeaderValue::from_str(&format!("\"{tag}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\"")),
            }
        })
        .collect()
});

/// `/ui` (to `/ui/`), `/ui/` and `/ui/<asset>`; merged into the main router.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/ui/{*asset}",
            get(|Path(asset): Path<String>, headers: HeaderMap| async move {
                serve(&asset, &headers)
            }),
        )
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::not_found("asset").into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.as_bytes() == asset.etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.bytes.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, asset.etag.clone());
    // File names carry no hash: revalidate each load (a 304 when unchanged).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_path_and_an_etag() {
        let mut paths: Vec<_> = ASSETS.iter().map(|a| a.path).collect();
        paths.dedup();
        assert_eq!(paths.len(), FILES.len());
        assert!(ASSETS.iter().all(|a| a.etag.len() == 26));
    }

    #[test]
    fn a_matching_etag_is_a_304_and_an_unknown_file_a_404() {
        let first = serve("app.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        assert!(
            first.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("app.js", &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
