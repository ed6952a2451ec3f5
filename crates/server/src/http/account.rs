//! Account safety (extensions): change password, list and revoke login sessions, delete the
//! account, export everything stored about it.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chatnode_protocol::{self as p, ErrorCode};

use super::{ApiJson, AuthUser, no_content};
use crate::SharedState;
use crate::domain::{Password, SessionId, UserId};
use crate::error::{Error, Result};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/users/me/password", post(change_password))
        .route("/users/me/export", get(export))
        .route("/users/me/delete", post(delete_account))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(revoke))
}

/// The hash of an account made by single sign-on, which has no password yet.
const NO_PASSWORD_YET: &str = "!oidc";

async fn check_password(state: &SharedState, user_id: &UserId, password: String) -> Result<()> {
    let hash = state.store.password_hash(user_id).await?;
    if hash == NO_PASSWORD_YET {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "this account signs in with single sign-on and has no password yet: set one first",
        ));
    }
    if !state.auth.verify_password(password, Some(hash)).await? {
        return Err(Error::new(ErrorCode::Forbidden, "the password is wrong"));
    }
    Ok(())
}

/// Changes the password; every other login session ends and its sockets close.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "account", request_body = p::ChangePasswordRequest,
    responses((status = 204, description = "Changed; other sessions revoked"),
              (status = "4XX", description = "Error (403 when the current password is wrong)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn change_password(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::ChangePasswordRequest>,
) -> Result<Response> {
    let new = Password::parse(&req.new_password).map_err(|_| {
        Error::invalid(
            "new_password",
            "the new password must be at least 10 characters",
        )
    })?;
    // An account made by single sign-on sets its first password with an empty current one.
    let first = req.current_password.is_empty()
        && state.store.password_hash(&auth.user_id).await? == NO_PASSWORD_YET;
    if !first {
        check_password(&state, &auth.user_id, req.current_password).await?;
    }
    let hash = state.auth.hash_password(new.into_inner()).await?;
    let revoked = state
        .store
        .change_password(&auth.user_id, &hash, &auth.session_id)
        .await?;
    state.end_sessions(revoked);
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "account",
    responses((status = 200, description = "Your live login sessions", body = p::SessionList),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn sessions(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::SessionList>> {
    let sessions = state
        .store
        .sessions(&auth.user_id)
        .await?
        .into_iter()
        .map(|(id, at)| p::Session {
            current: id == auth.session_id,
            id: id.to_string(),
            created_at: crate::time::rfc3339(at),
        })
        .collect();
    Ok(Json(p::SessionList { sessions }))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "account", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked; its sockets closed"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = SessionId::parse(&id, "session")?;
    if !state.store.revoke_user_session(&auth.user_id, &id).await? {
        return Err(Error::not_found("session"));
    }
    state.end_sessions(vec![id]);
    Ok(no_content())
}

/// Deletes the account (the password confirms it): messages remain as "Deleted user".
#[utoipa::path(post, path = "/api/v1/users/me/delete", tag = "account", request_body = p::ConfirmPasswordRequest,
    responses((status = 204, description = "Deleted; every session ended"),
              (status = "4XX", description = "Error (403 when the password is wrong)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_account(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::ConfirmPasswordRequest>,
) -> Result<Response> {
    check_password(&state, &auth.user_id, req.password).await?;
    let revoked = state.store.delete_account(&auth.user_id).await?;
    state.end_sessions(revoked);
    tracing::info!(user_id = %auth.user_id, "account deleted");
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/users/me/export", tag = "account",
    responses((status = 200, description = "Everything stored about you, as JSON"),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(state.store.export(&auth.user_id).await?))
}
