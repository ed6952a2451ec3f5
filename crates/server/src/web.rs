//! The web client, built by `build.rs` from `web/` into `web/dist` and embedded in the binary.
//!
//! Unknown paths outside `/api` get `index.html` (the client routes them, e.g. `/invite/CODE`).
//! Hashed assets under `/assets/` are cached for a year; `index.html` is always revalidated.
//! The build writes a Brotli (`X.br`) and a gzip (`X.gz`) copy of every compressible file;
//! they are served, with `Content-Encoding` and `Vary: Accept-Encoding`, to clients whose
//! `Accept-Encoding` takes them (Brotli first), so nothing is compressed at request time.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const PLACEHOLDER: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>ChatNode</title></head>\
<body><h1>ChatNode</h1><p>The web client was not built into this binary (npm was unavailable at build time). \
The API is at <code>/api/v1</code>.</p></body></html>";

/// The precompressed copy of `path` this client accepts: (its bytes, the encoding).
fn precompressed(path: &str, headers: &HeaderMap) -> Option<(Vec<u8>, &'static str)> {
    let accepts = |enc: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or("").trim();
                // `q=0` refuses an encoding.
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                name.eq_ignore_ascii_case(enc) && !refused
            })
    };
    [("br", "br"), ("gzip", "gz")]
        .into_iter()
        .find(|(enc, _)| accepts(enc))
        .and_then(|(enc, ext)| {
            Assets::get(&format!("{path}.{ext}")).map(|f| (f.data.into_owned(), enc))
        })
}

/// A file of the build, precompressed when the client takes it.
fn file_response(path: &str, headers: &HeaderMap, body: Vec<u8>, cache: &'static str) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let (body, encoding) = match precompressed(path, headers) {
        Some((b, enc)) => (b, Some(enc)),
        None => (body, None),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    let mime = if path.ends_with(".html") {
        "text/html; charset=utf-8".to_owned()
    } else {
        mime.to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    resp
}

pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
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
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            return file_response(path, &headers, file.data.into_owned(), cache);
        }
        // A missing asset is a 404, not the app shell.
        if path.starts_with("assets/") || path.contains('.') {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
    }
    if let Some(f) = Assets::get("index.html") {
        return file_response("index.html", &headers, f.data.into_owned(), "no-cache");
    }
    let body = PLACEHOLDER.as_bytes().to_vec();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
