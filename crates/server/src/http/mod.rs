//! The HTTP surface: one router per area merged under `/api/v1`, plus operations endpoints
//! and the embedded web client.
//!
//! The extractors here make every malformed request end in the contract's error shape with
//! a 4xx (never axum's plain-text rejections, never a 500): [`ApiJson`], [`ApiQuery`] and
//! [`AuthUser`].

use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use chatnode_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::SharedState;
pub use crate::auth::AuthUser;
use crate::auth::authenticate;
use crate::error::{Error, Result};

pub(crate) mod account;
pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod conversations;
pub(crate) mod integrations;
pub mod media;
pub mod messages;
pub mod openapi;
mod ops;
pub mod push;
pub(crate) mod social;
mod sso;

/// Largest JSON request body accepted by the API.
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// The page's Content-Security-Policy: no inline script or style, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn router(state: SharedState) -> Router {
    let hsts = state
        .config
        .tls
        .as_ref()
        .map(|_| HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    let api = Router::new()
        .merge(accounts::router())
        .merge(social::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(media::router(&state))
        .merge(push::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(integrations::router())
        .merge(sso::router())
        .route("/ws", get(crate::ws::upgrade))
        .route("/openapi.json", get(openapi::serve))
        .fallback(api_not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY));
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::router())
        .fallback(crate::web::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), shed))
        .layer(middleware::from_fn_with_state(state.clone(), role_gate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            // Only over TLS: the header is ignored on plain HTTP and would mislead there.
            move |_: &Response| hsts.clone(),
        ))
        .with_state(state)
}

async fn api_not_found() -> Error {
    Error::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> Error {
    Error::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this path",
    )
}

/// The role a path needs (`None`: every node serves it).
fn role_for(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" | "/readyz" | "/metrics" => None,
        "/api/v1/ws" => Some("gateway"),
        _ => Some("api"),
    }
}

/// Answers a route of a role this node does not run (`--roles`) with a clear error.
async fn role_gate(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let roles = state.config.roles;
    match role_for(req.uri().path()) {
        Some(role) if !roles.has(role) => Error::new(
            ErrorCode::Unavailable,
            format!(
                "this node does not run the {role} role (its roles: {}); send this request to a node that does",
                roles.names().join(",")
            ),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

/// Sheds load: past `--max-inflight` concurrent requests, answer 503 at once (clients retry
/// after `Retry-After`) rather than queue without bound. Operations endpoints and WebSocket
/// upgrades are exempt, so health checks and live connections keep working.
async fn shed(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/") || path == "/api/v1/ws" {
        return next.run(req).await;
    }
    match state.inflight.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            state
                .metrics
                .shed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Error::Api {
                code: ErrorCode::Unavailable,
                message: "the server is busy; retry shortly".into(),
                field: None,
                retry_after: Some(1),
            }
            .into_response()
        }
    }
}

/// Request metrics and a log line per API request (method, path, status, time; never the
/// query string or headers, which may hold secrets).
async fn observe(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let resp = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    state.metrics.observe_request(status, secs);
    if path.starts_with("/api/") {
        tracing::debug!(%method, %path, status, ms = secs * 1e3, "request");
    }
    if status >= 500 {
        tracing::warn!(%method, %path, status, "server error");
    }
    resp
}

/// A path as it may be logged: a webhook's URL carries its secret, which stays out.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/api/v1/hooks/") {
        Some(rest) => {
            let id = rest.split('/').next().unwrap_or("");
            format!("/api/v1/hooks/{id}/…")
        }
        None => path.to_owned(),
    }
}

/// A JSON body whose every failure maps to the contract: 415 without a JSON content type,
/// 413 over the size limit, 400 for invalid UTF-8, bad syntax, wrong types or missing fields.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let (is_json, body) = read_body(req, state).await?;
        if !is_json {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ));
        }
        parse_json(&body).map(ApiJson)
    }
}

/// An optional JSON body: empty means `T::default()`; otherwise as [`ApiJson`].
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let (is_json, body) = read_body(req, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ));
        }
        parse_json(&body).map(OptionalJson)
    }
}

/// Reads the whole body (bounded by `DefaultBodyLimit`) and tells whether it is declared JSON.
async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(bool, axum::body::Bytes), Error> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false);
    match axum::body::Bytes::from_request(req, state).await {
        Ok(b) => Ok((is_json, b)),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Error::new(ErrorCode::TooLarge, "request body is too large"))
        }
        Err(_) => Err(Error::bad_request("could not read the request body")),
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    // JSON text is UTF-8 (RFC 8259); serde would not notice bad bytes in a skipped field.
    if std::str::from_utf8(body).is_err() {
        return Err(Error::bad_request("request body is not valid UTF-8"));
    }
    serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
}

/// Query parameters; a wrong type is a 400 in the contract's shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Error::bad_request(e.body_text()))
            }
            Err(e) => Err(Error::bad_request(e.body_text())),
        }
    }
}

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(Error::unauthenticated)?;
        authenticate(&state.auth, &*state.store, token).await
    }
}

/// `Created` with a JSON body.
pub fn created<T: serde::Serialize>(v: T) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Offset cursors for lists ordered by a stable key.
pub fn parse_cursor(cursor: Option<&str>) -> Result<i64> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::invalid("cursor", "invalid cursor")),
    }
}

pub fn next_cursor(offset: i64, got: usize, limit: i64) -> Option<String> {
    (got as i64 == limit).then(|| (offset + limit).to_string())
}
