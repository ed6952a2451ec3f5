//! Operators: `/admin/...` (system admins only), reports from any user, the registration
//! mode, and a user's own upload usage.
//!
//! Every `/admin/...` endpoint answers 404 `not_found` to anyone who is not a system admin
//! (no token, a bad token, or a user without the role): the [`SystemAdmin`] extractor decides
//! that before the handler runs, so an outsider learns nothing from them (not even whether a
//! user or report exists; the endpoints themselves are in the published OpenAPI document).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chatnode_protocol::{self as p, ErrorCode};
use serde::Deserialize;

use super::{
    ApiJson, ApiQuery, AuthUser, OptionalJson, created, next_cursor, no_content, parse_cursor,
};
use crate::SharedState;
use crate::auth::{hash_refresh_token, random_token};
use crate::domain::{self, ConversationId, ReportId, UserId};
use crate::error::{Error, Result};
use crate::store::{AdminTarget, NewReport};
use crate::time::now_ms;

/// The far future a suspension "until lifted" is stored as (see `store::sql::moderation`).
const FOREVER_MS: i64 = 253_402_300_799_000;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin/users", get(users))
        .route("/admin/users/{id}/grant-admin", post(grant))
        .route("/admin/users/{id}/revoke-admin", post(revoke))
        .route("/admin/users/{id}/suspend", post(suspend))
        .route("/admin/users/{id}/unsuspend", post(unsuspend))
        .route(
            "/admin/conversations/{id}/messages/{seq}",
            delete(delete_message),
        )
        .route("/admin/reports", get(reports))
        .route("/admin/reports/{id}/resolve", post(resolve))
        .route("/admin/audit", get(audit))
        .route("/admin/stats", get(stats))
        .route(
            "/admin/registration-invites",
            get(invites).post(create_invite),
        )
        .route("/admin/registration-invites/{id}", delete(revoke_invite))
        .route("/reports", post(report))
        .route("/auth/registration", get(registration))
        .route("/users/me/usage", get(usage))
}

/// A system admin's request. Anyone else (no token, a bad token, no role) gets 404.
pub struct SystemAdmin(pub AuthUser);

impl FromRequestParts<SharedState> for SystemAdmin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Error> {
        let hidden = || Error::new(ErrorCode::NotFound, "no such endpoint");
        let auth = AuthUser::from_request_parts(parts, state)
            .await
            .map_err(|_| hidden())?;
        if !state.store.is_system_admin(&auth.user_id).await? {
            return Err(hidden());
        }
        Ok(SystemAdmin(auth))
    }
}

fn user_id(id: &str) -> Result<UserId> {
    UserId::parse(id, "user")
}

/// An RFC 3339 time as milliseconds.
pub(crate) fn parse_time(field: &'static str, t: &str) -> Result<i64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::invalid(field, format!("{field} must be an RFC 3339 time")))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[derive(Deserialize)]
pub(crate) struct UsersQuery {
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    params(("q" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Users with contact data, suspension and role", body = p::AdminUserList), (status = "4XX", description = "Error (404 to anyone but a system admin)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn users(
    State(state): State<SharedState>,
    _admin: SystemAdmin,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Json<p::AdminUserList>> {
    let limit = domain::limit(q.limit)?;
    let offset = parse_cursor(q.cursor.as_deref())?;
    let users = state
        .store
        .admin_users(
            q.q.as_deref().unwrap_or(""),
            limit,
            offset,
            now_ms() - 86_400_000,
        )
        .await?;
    let next = next_cursor(offset, users.len(), limit);
    Ok(Json(p::AdminUserList {
        users,
        next_cursor: next,
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/grant-admin", tag = "admin", params(("id" = String, Path)),
    responses((status = 204, description = "The user is a system admin"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn grant(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path(id): Path<String>,
) -> Result<Response> {
    let target = user_id(&id)?;
    state
        .store
        .set_system_admin(Some(&admin.user_id), AdminTarget::Id(target), true)
        .await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/revoke-admin", tag = "admin", params(("id" = String, Path)),
    responses((status = 204, description = "The user is no longer a system admin"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path(id): Path<String>,
) -> Result<Response> {
    let target = user_id(&id)?;
    state
        .store
        .set_system_admin(Some(&admin.user_id), AdminTarget::Id(target), false)
        .await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/suspend", tag = "admin", params(("id" = String, Path)),
    request_body = p::SuspendRequest,
    responses((status = 204, description = "Suspended: every session ended, sockets closed with 4001"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn suspend(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::SuspendRequest>,
) -> Result<Response> {
    let target = user_id(&id)?;
    let reason = domain::text("reason", &req.reason, 1, 500)?;
    let until = match req.until.as_deref() {
        None => FOREVER_MS,
        Some(t) => {
            let ms = parse_time("until", t)?;
            if ms <= now_ms() {
                return Err(Error::invalid("until", "until must be in the future"));
            }
            ms
        }
    };
    if target == admin.user_id {
        return Err(Error::bad_request("you cannot suspend yourself"));
    }
    let sessions = state
        .store
        .suspend(&admin.user_id, &target, &reason, until)
        .await?;
    state.end_sessions(sessions);
    tracing::info!(user_id = %target, by = %admin.user_id, "account suspended");
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/admin/users/{id}/unsuspend", tag = "admin", params(("id" = String, Path)),
    responses((status = 204, description = "The suspension is lifted"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn unsuspend(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path(id): Path<String>,
) -> Result<Response> {
    let target = user_id(&id)?;
    state.store.unsuspend(&admin.user_id, &target).await?;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/api/v1/admin/conversations/{id}/messages/{seq}", tag = "admin",
    params(("id" = String, Path), ("seq" = i64, Path)),
    responses((status = 204, description = "Deleted for everyone, as a moderator"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_message(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path((id, seq)): Path<(String, String)>,
) -> Result<Response> {
    let id = ConversationId::parse(&id, "conversation")?;
    let seq = seq
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| Error::not_found("message"))?;
    state
        .store
        .moderate_delete(&admin.user_id, &id, seq)
        .await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/reports", tag = "admin", request_body = p::ReportRequest,
    responses((status = 201, description = "Reported", body = p::CreatedId), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn report(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::ReportRequest>,
) -> Result<Response> {
    state
        .limits
        .reports
        .take(auth.user_id.as_str())
        .map_err(Error::rate_limited)?;
    let reason = domain::text("reason", &req.reason, 1, 1000)?;
    let report = match (&req.user_id, &req.conversation_id, req.seq) {
        (Some(u), None, None) => NewReport::User {
            user_id: user_id(u)?,
            reason,
        },
        (None, Some(c), Some(seq)) => NewReport::Message {
            conversation_id: ConversationId::parse(c, "conversation")?,
            seq: Some(seq)
                .filter(|s| *s >= 1)
                .ok_or_else(|| Error::not_found("message"))?,
            reason,
        },
        _ => {
            return Err(Error::bad_request(
                "report a user (user_id) or a message (conversation_id and seq)",
            ));
        }
    };
    let id = state.store.create_report(&auth.user_id, report).await?;
    Ok(created(p::CreatedId { id }))
}

#[derive(Deserialize)]
pub(crate) struct ReportsQuery {
    status: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/admin/reports", tag = "admin",
    params(("status" = Option<String>, Query, description = "open (default) or resolved"), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Reports, open ones oldest first, resolved ones newest first", body = p::ReportList), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn reports(
    State(state): State<SharedState>,
    _admin: SystemAdmin,
    ApiQuery(q): ApiQuery<ReportsQuery>,
) -> Result<Json<p::ReportList>> {
    let resolved = match q.status.as_deref() {
        None | Some("") | Some("open") => false,
        Some("resolved") => true,
        Some(_) => return Err(Error::invalid("status", "status must be open or resolved")),
    };
    let limit = domain::limit(q.limit)?;
    Ok(Json(p::ReportList {
        reports: state.store.reports(resolved, limit).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/reports/{id}/resolve", tag = "admin", params(("id" = String, Path)),
    request_body = p::ResolveReportRequest,
    responses((status = 204, description = "Resolved"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn resolve(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<p::ResolveReportRequest>,
) -> Result<Response> {
    let id = ReportId::parse(&id, "report")?;
    let note = req
        .note
        .as_deref()
        .map(|n| domain::text("note", n, 0, 1000))
        .transpose()?
        .filter(|n| !n.is_empty());
    state
        .store
        .resolve_report(&admin.user_id, id.as_str(), note)
        .await?;
    Ok(no_content())
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    params(("cursor" = Option<String>, Query, description = "a next_cursor"), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Admin actions, newest first", body = p::AuditList), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<SharedState>,
    _admin: SystemAdmin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<p::AuditList>> {
    let limit = domain::limit(q.limit)?;
    let before = q.cursor.filter(|c| !c.is_empty());
    let entries = state.store.audit_log(before.as_deref(), limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(p::AuditList {
        entries,
        next_cursor: next,
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin",
    responses((status = 200, description = "Counts, and connections per node", body = p::Stats), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn stats(
    State(state): State<SharedState>,
    _admin: SystemAdmin,
) -> Result<Json<p::Stats>> {
    let s = state.store.stats(now_ms()).await?;
    let nodes = state.node_connections();
    Ok(Json(p::Stats {
        users: s.users,
        users_active_24h: s.users_active_24h,
        messages_24h: s.messages_24h,
        conversations: s.conversations,
        groups: s.groups,
        connections: nodes.iter().map(|n| n.connections).sum(),
        nodes,
        messages_per_hour: s.messages_per_hour,
        media_bytes: s.media_bytes,
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/registration-invites", tag = "admin",
    responses((status = 200, description = "Invites with uses left (codes shortened)", body = p::RegistrationInviteList), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn invites(
    State(state): State<SharedState>,
    _admin: SystemAdmin,
) -> Result<Json<p::RegistrationInviteList>> {
    Ok(Json(p::RegistrationInviteList {
        invites: state.store.registration_invites().await?,
    }))
}

/// Uses one invite may have at most.
const MAX_INVITE_USES: i64 = 10_000;

#[utoipa::path(post, path = "/api/v1/admin/registration-invites", tag = "admin",
    request_body = p::CreateRegistrationInviteRequest,
    responses((status = 201, description = "The code (shown only here)", body = p::RegistrationInvite), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_invite(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    ApiJson(req): ApiJson<p::CreateRegistrationInviteRequest>,
) -> Result<Response> {
    if !(1..=MAX_INVITE_USES).contains(&req.uses) {
        return Err(Error::invalid(
            "uses",
            format!("uses must be 1-{MAX_INVITE_USES}"),
        ));
    }
    let expires = match req.expires_at.as_deref() {
        None => None,
        Some(t) => {
            let ms = parse_time("expires_at", t)?;
            if ms <= now_ms() {
                return Err(Error::invalid(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(ms)
        }
    };
    // 128 bits, readable: the first characters are the hint admins see in lists.
    let code: String = random_token().chars().take(22).collect();
    let hint: String = code.chars().take(4).collect();
    state
        .store
        .create_registration_invite(
            &admin.user_id,
            &hash_refresh_token(&code),
            &hint,
            req.uses,
            expires,
        )
        .await?;
    Ok(created(p::RegistrationInvite {
        code,
        uses: req.uses,
        expires_at: req.expires_at,
        created_at: Some(crate::time::rfc3339(now_ms())),
        created_by: Some(admin.user_id.to_string()),
        id: None,
    }))
}

#[utoipa::path(delete, path = "/api/v1/admin/registration-invites/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204, description = "The invite no longer works"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke_invite(
    State(state): State<SharedState>,
    SystemAdmin(admin): SystemAdmin,
    Path(id): Path<String>,
) -> Result<Response> {
    if id.len() > 64 {
        return Err(Error::not_found("invite"));
    }
    state
        .store
        .revoke_registration_invite(&admin.user_id, &id)
        .await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/auth/registration", tag = "accounts",
    responses((status = 200, description = "Who may register: open, invite or closed", body = p::RegistrationInfo)))]
pub(crate) async fn registration(State(state): State<SharedState>) -> Json<p::RegistrationInfo> {
    Json(p::RegistrationInfo {
        mode: state.config.registration,
    })
}

#[utoipa::path(get, path = "/api/v1/users/me/usage", tag = "accounts",
    responses((status = 200, description = "The caller's uploads against the quotas", body = p::UploadUsage), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn usage(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::UploadUsage>> {
    let (today, total) = state
        .store
        .upload_usage(&auth.user_id, now_ms() - 86_400_000)
        .await?;
    Ok(Json(p::UploadUsage {
        bytes_today: today,
        bytes_total: total,
        daily_limit: state.config.upload_quota_daily.map(|q| q as i64),
        total_limit: state.config.upload_quota_total.map(|q| q as i64),
    }))
}
