//! The web client, built by `build.rs` from `web/` into `web/dist` and embedded in the binary.
//!
//! Unknown paths outside `/api` get `index.html` (the client routes them, e.g. `/invite/CODE`).
//! Hashed assets under `/assets/` are cached for a year; `index.html` is always revalidated.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const PLACEHOLDER: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>ChatNode</title></head>\
<body><h1>ChatNode</h1><p>The web client was not built into this binary (npm was unavailable at build time). \
The API is at <code>/api/v1</code>.</p></body></html>";

pub async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return crate::error::Error::not_found("endpoint").into_response();
    }
    // The page and its assets are read-only.
    if method != Method::GET && method != Method::HEAD {
        return crate::error::Error::new(
            chatnode_protocol::ErrorCode::MethodNotAllowed,
            "method not allowed on this path",
        )
        .into_response();
    }
    if !path.is_empty() {
        if let Some(file) = Assets::get(path) {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            return resp;
        }
        // A missing asset is a 404, not the app shell.
        if path.starts_with("assets/") || path.contains('.') {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
    }
    let body = match Assets::get("index.html") {
        Some(f) => f.data.into_owned(),
        None => PLACEHOLDER.as_bytes().to_vec(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
