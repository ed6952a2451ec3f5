//! Registration, login, token refresh, logout, profiles and user search.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chatnode_protocol::{self as p, ErrorCode};
use serde::Deserialize;

use super::{
    ApiJson, ApiQuery, AuthUser, OptionalJson, created, next_cursor, no_content, parse_cursor,
};
use crate::SharedState;
use crate::auth::{hash_refresh_token, random_token};
use crate::domain::{self, Email, MediaId, Password, Phone, UserId, Username};
use crate::error::{Error, Result};
use crate::limits::client_address;
use crate::store::{NewUser, ProfilePatch, RefreshOutcome};
use crate::time::now_ms;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/users/me", get(me).patch(update_me))
        .route("/users/{id}", get(user))
        .route("/users", get(search))
}

pub(crate) async fn issue_tokens(
    state: &SharedState,
    user_id: &UserId,
) -> Result<(String, String)> {
    let refresh = random_token();
    let expires = now_ms() + state.config.refresh_ttl_days * 86_400_000;
    let session = state
        .store
        .create_session(user_id, &hash_refresh_token(&refresh), expires)
        .await?;
    let access = state
        .auth
        .issue_access(user_id.as_str(), session.as_str())?;
    Ok((access, refresh))
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "accounts", request_body = p::RegisterRequest, responses((status = 201, description = "Registered and logged in", body = p::AuthResponse), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)))]
pub async fn register(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<p::RegisterRequest>,
) -> Result<Response> {
    state
        .limits
        .register_address
        .take(&client_address(
            peer.ip(),
            &headers,
            &state.config.trusted_proxies,
        ))
        .map_err(Error::rate_limited)?;
    // Who may register (`--registration`): closed answers before anything is looked at.
    let invite_code_hash = match state.config.registration {
        p::RegistrationMode::Open => None,
        p::RegistrationMode::Closed => {
            return Err(Error::new(
                ErrorCode::RegistrationClosed,
                "registration is closed on this server",
            ));
        }
        p::RegistrationMode::Invite => match req.invite_code.as_deref().map(str::trim) {
            Some(code) if !code.is_empty() && code.len() <= 256 => Some(hash_refresh_token(code)),
            _ => {
                return Err(Error::new(
                    ErrorCode::RegistrationClosed,
                    "registration on this server needs an invite code",
                ));
            }
        },
    };
    let username = Username::parse(&req.username)?;
    let email = req
        .email
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Email::parse)
        .transpose()?;
    let phone = req
        .phone
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Phone::parse)
        .transpose()?;
    if email.is_none() && phone.is_none() {
        return Err(Error::invalid(
            "email",
            "an email or a phone number is required",
        ));
    }
    let password = Password::parse(&req.password)?;
    let display_name = match req.display_name.as_deref() {
        Some(n) if !n.trim().is_empty() => domain::display_name(n)?,
        _ => username.as_str().to_owned(),
    };
    let password_hash = state.auth.hash_password(password.into_inner()).await?;
    let user = state
        .store
        .create_user(NewUser {
            username_key: username.key(),
            username: username.as_str().to_owned(),
            email: email.map(|e| e.as_str().to_owned()),
            phone: phone.map(|p| p.as_str().to_owned()),
            display_name,
            password_hash,
            invite_code_hash,
        })
        .await?;
    // Just created by the store.
    let user_id = UserId::trusted(user.user.id.as_str());
    let (access_token, refresh_token) = issue_tokens(&state, &user_id).await?;
    tracing::info!(user_id = %user.user.id, "user registered");
    Ok(created(p::AuthResponse {
        user,
        access_token,
        refresh_token,
    }))
}

/// 403 `account_suspended` (with the reason and until when) while the account is suspended.
pub(crate) async fn refuse_if_suspended(state: &SharedState, user_id: &UserId) -> Result<()> {
    if let Some((until, reason)) = state.store.suspension(user_id).await? {
        let until = if until >= 253_402_300_799_000 {
            "until further notice".to_owned()
        } else {
            format!("until {}", crate::time::rfc3339(until))
        };
        return Err(Error::new(
            ErrorCode::AccountSuspended,
            format!("this account is suspended {until}: {reason}"),
        ));
    }
    Ok(())
}

/// Normalizes a login the way it was stored: emails and usernames lower-cased.
fn login_key(login: &str) -> String {
    let l = login.trim();
    if l.starts_with('+') {
        l.to_owned()
    } else {
        l.to_lowercase()
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = p::LoginRequest, responses((status = 200, description = "Logged in", body = p::AuthResponse), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)))]
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<p::LoginRequest>,
) -> Result<Json<p::AuthResponse>> {
    // Throttled per address (every attempt) and per account (failures): guessing slows to a
    // crawl, and the owner is never locked out for longer than the Retry-After.
    state
        .limits
        .login_address
        .take(&client_address(
            peer.ip(),
            &headers,
            &state.config.trusted_proxies,
        ))
        .map_err(Error::rate_limited)?;
    let account = login_key(&req.login);
    if let Some(wait) = state.limits.login_account.blocked_for(&account) {
        return Err(Error::rate_limited(wait));
    }
    if req.login.len() > 254 || req.password.len() > 256 {
        return Err(Error::new(
            ErrorCode::Unauthenticated,
            "wrong login or password",
        ));
    }
    let creds = state.store.credentials(&login_key(&req.login)).await?;
    let hash = creds.as_ref().map(|c| c.password_hash.clone());
    // Unknown logins are checked against a dummy hash: same work, same answer, same time.
    let ok = state.auth.verify_password(req.password, hash).await?;
    let exists = creds.is_some();
    let Some(creds) = creds.filter(|_| ok) else {
        // Only real accounts need protecting; unknown logins are covered by the address limit.
        if exists {
            let _ = state.limits.login_account.take(&account);
        }
        return Err(Error::new(
            ErrorCode::Unauthenticated,
            "wrong login or password",
        ));
    };
    refuse_if_suspended(&state, &creds.user_id).await?;
    let user = state.store.me(&creds.user_id).await?;
    let (access_token, refresh_token) = issue_tokens(&state, &creds.user_id).await?;
    Ok(Json(p::AuthResponse {
        user,
        access_token,
        refresh_token,
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts", request_body = p::RefreshRequest, responses((status = 200, description = "New token pair; the old refresh token is spent", body = p::TokenPair), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)))]
pub async fn refresh(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<p::RefreshRequest>,
) -> Result<Json<p::TokenPair>> {
    // A suspended account's sessions were revoked; it is told why, not just "invalid".
    if let Some((_, user_id)) = state
        .store
        .refresh_session(&hash_refresh_token(&req.refresh_token))
        .await?
    {
        refuse_if_suspended(&state, &user_id).await?;
    }
    let new_refresh = random_token();
    let expires = now_ms() + state.config.refresh_ttl_days * 86_400_000;
    let outcome = state
        .store
        .rotate_refresh(
            &hash_refresh_token(&req.refresh_token),
            &hash_refresh_token(&new_refresh),
            expires,
        )
        .await?;
    match outcome {
        RefreshOutcome::Rotated {
            user_id,
            session_id,
        } => {
            let access_token = state
                .auth
                .issue_access(user_id.as_str(), session_id.as_str())?;
            Ok(Json(p::TokenPair {
                access_token,
                refresh_token: new_refresh,
            }))
        }
        RefreshOutcome::Reused { session_id } => {
            tracing::warn!(%session_id, "refresh token reuse: session revoked");
            state.end_sessions(vec![session_id]);
            Err(Error::new(
                ErrorCode::Unauthenticated,
                "refresh token was already used; please log in again",
            ))
        }
        RefreshOutcome::Invalid => Err(Error::new(
            ErrorCode::Unauthenticated,
            "invalid or expired refresh token",
        )),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Logout {
    #[serde(default)]
    refresh_token: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", request_body = p::RefreshRequest, responses((status = 204, description = "Session ended"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<SharedState>,
    auth: AuthUser,
    OptionalJson(req): OptionalJson<Logout>,
) -> Result<Response> {
    // Ends the login session of this access token, and that of the given refresh token if it
    // is the caller's own (a client may hold both from different logins).
    let mut sessions = vec![auth.session_id.clone()];
    if let Some(rt) = req.refresh_token.filter(|t| !t.is_empty())
        && let Some((sid, uid)) = state
            .store
            .refresh_session(&hash_refresh_token(&rt))
            .await?
        && uid == auth.user_id
        && sid != auth.session_id
    {
        sessions.push(sid);
    }
    for sid in &sessions {
        state.store.revoke_session(sid).await?;
    }
    state.end_sessions(sessions);
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/users/me", tag = "accounts", responses((status = 200, description = "Your profile", body = p::Me), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn me(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<p::Me>> {
    Ok(Json(state.store.me(&auth.user_id).await?))
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "accounts", request_body = p::UpdateProfileRequest, responses((status = 200, description = "Updated profile", body = p::Me), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_me(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::UpdateProfileRequest>,
) -> Result<Json<p::Me>> {
    let patch = ProfilePatch {
        display_name: req
            .display_name
            .as_deref()
            .map(domain::display_name)
            .transpose()?,
        bio: req.bio.as_deref().map(domain::bio).transpose()?,
        notification_previews: req.notification_previews,
        avatar_media_id: req
            .avatar_media_id
            .as_deref()
            .map(|id| MediaId::parse(id, "media"))
            .transpose()?,
    };
    Ok(Json(
        state.store.update_profile(&auth.user_id, patch).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "accounts", params(("id" = String, Path, description = "User ID")), responses((status = 200, description = "A user", body = p::User), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn user(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::User>> {
    let id = UserId::parse(&id, "user")?;
    Ok(Json(state.store.user(&auth.user_id, &id).await?))
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", params(("q" = Option<String>, Query, description = "Username or display name prefix, or exact email/phone"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, description = "Matching users", body = p::UserList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn search(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<p::UserList>> {
    let limit = domain::limit(q.limit)?;
    let offset = parse_cursor(q.cursor.as_deref())?;
    if q.q.len() > 254 {
        return Err(Error::invalid("q", "search text is too long"));
    }
    let users = state
        .store
        .search_users(&auth.user_id, &q.q, limit, offset)
        .await?;
    let next = next_cursor(offset, users.len(), limit);
    Ok(Json(p::UserList {
        users,
        next_cursor: next,
    }))
}
