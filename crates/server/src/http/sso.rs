//! Single sign-on endpoints (`/auth/providers`, `/auth/oidc/...`): the browser side of the
//! authorization code flow. The protocol is `crate::oidc`'s; accounts are the store's.
//!
//! `start` sends the browser to the provider with a fresh `state`, `nonce` and PKCE
//! challenge (the sign-in is kept in the database, so the callback may reach another node).
//! `callback` spends the state, exchanges the code, validates the ID token, finds or makes
//! the account, and sends the browser back to the path it came from with a one-time code in
//! the fragment (never in a query string, so it stays out of logs and Referer headers); the
//! page trades it for tokens with `POST /auth/oidc/exchange`. Every failure sends the browser
//! to `/#oidc_error=<code>`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chatnode_protocol::{self as p, ErrorCode};
use serde::Deserialize;

use super::integrations::public_base;
use super::{ApiJson, ApiQuery};
use crate::SharedState;
use crate::auth::{hash_refresh_token, random_token};
use crate::error::{Error, Result};
use crate::oidc::Secrets;
use crate::store::{OidcLogin, OidcOutcome};
use crate::time::now_ms;

/// A one-time code is good for this long.
const CODE_TTL_MS: i64 = 60_000;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/auth/providers", get(providers))
        .route("/auth/oidc/{provider}/start", get(start))
        .route("/auth/oidc/{provider}/callback", get(callback))
        .route("/auth/oidc/exchange", post(exchange))
}

/// A 302 that no cache keeps.
fn redirect(to: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn fail(code: &str) -> Response {
    redirect(&format!("/#oidc_error={code}"))
}

fn redirect_uri(state: &SharedState, headers: &HeaderMap, peer: SocketAddr, id: &str) -> String {
    format!(
        "{}/api/v1/auth/oidc/{id}/callback",
        public_base(state, headers, peer)
    )
}

/// A path on this server to come back to (never another site: no scheme, no `//`).
fn local_path(p: Option<&str>) -> Result<String> {
    let p = p.filter(|p| !p.is_empty()).unwrap_or("/");
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.len() <= 512
        && !p.chars().any(|c| c.is_control() || c.is_whitespace());
    if !ok {
        return Err(Error::invalid(
            "redirect_to",
            "redirect_to must be a path on this server",
        ));
    }
    // The code goes in the fragment: drop one the path brought.
    Ok(p.split('#').next().unwrap_or("/").to_owned())
}

#[utoipa::path(get, path = "/api/v1/auth/providers", tag = "accounts",
    responses((status = 200, description = "Single sign-on providers (empty when none)", body = p::ProviderList)))]
pub(crate) async fn providers(State(state): State<SharedState>) -> Json<p::ProviderList> {
    Json(p::ProviderList {
        providers: state
            .sso
            .providers()
            .iter()
            .map(|c| p::OidcProvider {
                id: c.id.clone(),
                name: c.name.clone(),
            })
            .collect(),
    })
}

#[derive(Deserialize)]
pub(crate) struct StartQuery {
    redirect_to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/start", tag = "accounts",
    params(("provider" = String, Path), ("redirect_to" = Option<String>, Query, description = "a path on this server to come back to")),
    responses((status = 302, description = "To the provider (authorization code flow, PKCE S256, state, nonce)"), (status = "4XX", description = "Error", body = p::ErrorBody)))]
pub(crate) async fn start(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(provider): Path<String>,
    ApiQuery(q): ApiQuery<StartQuery>,
) -> Result<Response> {
    // Each start writes a row: limited like login attempts, per client address.
    state
        .limits
        .login_address
        .take(&crate::limits::client_address(
            peer.ip(),
            &headers,
            &state.config.trusted_proxies,
        ))
        .map_err(Error::rate_limited)?;
    let p = state
        .sso
        .provider(&provider)
        .ok_or_else(|| Error::not_found("provider"))?;
    let redirect_to = local_path(q.redirect_to.as_deref())?;
    let secrets = Secrets::new();
    let callback = redirect_uri(&state, &headers, peer, &p.id);
    let url = match state.sso.authorization_url(p, &callback, &secrets).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(provider = %p.id, error = %format!("{e:#}"), "single sign-on: provider unavailable");
            return Ok(fail("oidc_failed"));
        }
    };
    state
        .store
        .begin_oidc_login(OidcLogin {
            state_hash: hash_refresh_token(&secrets.state),
            provider: p.id.clone(),
            nonce: secrets.nonce,
            verifier: secrets.verifier,
            redirect_to,
        })
        .await?;
    Ok(redirect(&url))
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/callback", tag = "accounts",
    params(("provider" = String, Path), ("code" = Option<String>, Query), ("state" = Option<String>, Query)),
    responses((status = 302, description = "To redirect_to#oidc_code=… (or /#oidc_error=…)")))]
pub(crate) async fn callback(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(provider): Path<String>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> Response {
    match finish(&state, peer, &headers, &provider, q).await {
        Ok(to) => redirect(&to),
        Err(code) => fail(code),
    }
}

/// Where the browser goes after a sign-in, or the error code of a failed one.
async fn finish(
    state: &SharedState,
    peer: SocketAddr,
    headers: &HeaderMap,
    provider: &str,
    q: CallbackQuery,
) -> std::result::Result<String, &'static str> {
    let failed = |why: &str| {
        tracing::info!(%provider, why, "single sign-on failed");
        "oidc_failed"
    };
    let Some(p) = state.sso.provider(provider) else {
        return Err(failed("unknown provider"));
    };
    let Some(st) = q.state.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return Err(failed("no state"));
    };
    // The state is spent whatever happens next: a sign-in is tried once.
    let login = match state.store.take_oidc_login(&hash_refresh_token(&st)).await {
        Ok(Some(l)) if l.provider == p.id => l,
        Ok(_) => return Err(failed("unknown or expired state")),
        Err(_) => return Err(failed("database")),
    };
    if let Some(e) = q.error {
        tracing::info!(%provider, error = %e.chars().take(64).collect::<String>(), "single sign-on: the provider said no");
        return Err("oidc_failed");
    }
    // RFC 9207: when the provider names itself in the response, it must be this one.
    if let Some(iss) = q.iss
        && iss.trim_end_matches('/') != p.issuer
    {
        return Err(failed("iss of another issuer"));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return Err(failed("no code"));
    };
    let callback = redirect_uri(state, headers, peer, &p.id);
    let claims = match state
        .sso
        .finish(p, &code, &callback, &login.verifier, &login.nonce)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%provider, error = %format!("{e:#}"), "single sign-on: the sign-in did not validate");
            return Err("oidc_failed");
        }
    };
    let may_register = state.config.registration == p::RegistrationMode::Open;
    let user = match state.store.oidc_account(&p.id, &claims, may_register).await {
        Ok(OidcOutcome::User(u)) => u,
        Ok(OidcOutcome::RegistrationClosed) => return Err("registration_closed"),
        Err(_) => return Err(failed("database")),
    };
    match state.store.suspension(&user).await {
        Ok(None) => {}
        Ok(Some(_)) => return Err("account_suspended"),
        Err(_) => return Err(failed("database")),
    }
    let one_time = random_token();
    if state
        .store
        .create_oidc_code(
            &hash_refresh_token(&one_time),
            &user,
            now_ms() + CODE_TTL_MS,
        )
        .await
        .is_err()
    {
        return Err(failed("database"));
    }
    tracing::info!(%provider, user_id = %user, "single sign-on");
    Ok(format!("{}#oidc_code={one_time}", login.redirect_to))
}

#[utoipa::path(post, path = "/api/v1/auth/oidc/exchange", tag = "accounts", request_body = p::OidcExchangeRequest,
    responses((status = 200, description = "Logged in, as with a password", body = p::AuthResponse), (status = "4XX", description = "Error (401: unknown, spent or expired code)", body = p::ErrorBody)))]
pub(crate) async fn exchange(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<p::OidcExchangeRequest>,
) -> Result<Json<p::AuthResponse>> {
    if req.code.is_empty() || req.code.len() > 256 {
        return Err(Error::unauthenticated());
    }
    let user = state
        .store
        .take_oidc_code(&hash_refresh_token(&req.code))
        .await?
        .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "this sign-in code is not valid"))?;
    super::accounts::refuse_if_suspended(&state, &user).await?;
    let me = state.store.me(&user).await?;
    let (access_token, refresh_token) = super::accounts::issue_tokens(&state, &user).await?;
    Ok(Json(p::AuthResponse {
        user: me,
        access_token,
        refresh_token,
    }))
}
