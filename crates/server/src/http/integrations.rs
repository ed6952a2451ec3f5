//! What other software does with ChatNode: bots (`/bots`), incoming webhooks
//! (`/conversations/{id}/webhooks`, and `/hooks/{id}/{secret}` that services post to), and
//! service notifications (`/notify` with a service token, `/notifications` for users).
//!
//! Every token and secret here is random, shown once, stored as its SHA-256 and never logged;
//! a webhook's secret is compared in constant time.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chatnode_protocol::{self as p, ErrorCode};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{ApiJson, ApiQuery, AuthUser, OptionalJson, created, no_content};
use crate::SharedState;
use crate::auth::{
    BOT_TOKEN_PREFIX, SERVICE_TOKEN_PREFIX, hash_refresh_token, prefixed_token, random_token,
};
use crate::domain::{self, ConversationId, UserId, Username};
use crate::error::{Error, Result};
use crate::store::NewMessage;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/bots", get(bots).post(create_bot))
        .route("/bots/{id}", delete(delete_bot))
        .route("/bots/{id}/token", post(rotate_token))
        .route(
            "/conversations/{id}/webhooks",
            get(webhooks).post(create_webhook),
        )
        .route(
            "/conversations/{id}/webhooks/{webhook_id}",
            delete(delete_webhook),
        )
        .route("/hooks/{id}/{secret}", post(hook))
        .route("/notify", post(notify))
        .route("/notifications", get(notifications))
        .route("/notifications/read", post(notifications_read))
}

/// The server's public base URL: `--public-url`, else what the request was sent to (its
/// `Host`, and https when serving TLS or when a trusted proxy says so).
pub(crate) fn public_base(state: &SharedState, headers: &HeaderMap, peer: SocketAddr) -> String {
    if let Some(u) = &state.config.public_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.listen.to_string());
    let proxied_https = state.config.trusted_proxies.contains(&peer.ip())
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if state.config.tls.is_some() || proxied_https {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

fn user_id(id: &str) -> Result<UserId> {
    UserId::parse(id, "user")
}

// ---------------------------------------------------------------------------------------------
// Bots
// ---------------------------------------------------------------------------------------------

#[utoipa::path(post, path = "/api/v1/bots", tag = "integrations", request_body = p::CreateBotRequest,
    responses((status = 201, description = "The bot and its token (shown only here)", body = p::BotCreated), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_bot(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::CreateBotRequest>,
) -> Result<Response> {
    let username = Username::parse(&req.username)?;
    let display_name = match req.display_name.as_deref() {
        Some(n) if !n.trim().is_empty() => domain::display_name(n)?,
        _ => username.as_str().to_owned(),
    };
    let token = prefixed_token(BOT_TOKEN_PREFIX);
    let bot = state
        .store
        .create_bot(
            &auth.user_id,
            &username,
            &display_name,
            &hash_refresh_token(&token),
        )
        .await?;
    tracing::info!(bot = %bot.id, owner = %auth.user_id, "bot created");
    Ok(created(p::BotCreated { bot, token }))
}

#[utoipa::path(get, path = "/api/v1/bots", tag = "integrations",
    responses((status = 200, description = "The caller's bots", body = p::BotList), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn bots(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::BotList>> {
    Ok(Json(p::BotList {
        bots: state.store.bots(&auth.user_id).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/bots/{id}/token", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, description = "A new token; the old one stopped working and its sockets closed", body = p::BotToken), (status = "4XX", description = "Error (404 for another's bot)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn rotate_token(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::BotToken>> {
    let bot = UserId::parse(&id, "bot")?;
    let token = prefixed_token(BOT_TOKEN_PREFIX);
    let ended = state
        .store
        .rotate_bot_token(&auth.user_id, &bot, &hash_refresh_token(&token))
        .await?;
    state.end_sessions(ended);
    Ok(Json(p::BotToken { token }))
}

#[utoipa::path(delete, path = "/api/v1/bots/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 204, description = "The bot left every conversation; its token stopped working"), (status = "4XX", description = "Error (404 for another's bot)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_bot(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let bot = UserId::parse(&id, "bot")?;
    let ended = state.store.delete_bot(&auth.user_id, &bot).await?;
    state.end_sessions(ended);
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Incoming webhooks
// ---------------------------------------------------------------------------------------------

#[utoipa::path(post, path = "/api/v1/conversations/{id}/webhooks", tag = "integrations", params(("id" = String, Path)),
    request_body = p::CreateWebhookRequest,
    responses((status = 201, description = "The webhook; its url (with the secret) is shown only here", body = p::WebhookCreated), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_webhook(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::CreateWebhookRequest>,
) -> Result<Response> {
    let conv = ConversationId::parse(&id, "conversation")?;
    let name = domain::text("name", &req.name, 1, 80)?;
    let hook_id = crate::time::new_id();
    let secret = random_token();
    let hook = state
        .store
        .create_webhook(
            &auth.user_id,
            &conv,
            &hook_id,
            &name,
            &hash_refresh_token(&secret),
        )
        .await?;
    let url = format!(
        "{}/api/v1/hooks/{hook_id}/{secret}",
        public_base(&state, &headers, peer)
    );
    Ok(created(p::WebhookCreated {
        id: hook.id,
        name: hook.name,
        url,
        created_at: hook.created_at,
    }))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/webhooks", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, description = "The conversation's webhooks (no secrets)", body = p::WebhookList), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn webhooks(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::WebhookList>> {
    let conv = ConversationId::parse(&id, "conversation")?;
    Ok(Json(p::WebhookList {
        webhooks: state.store.webhooks(&auth.user_id, &conv).await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/webhooks/{webhook_id}", tag = "integrations",
    params(("id" = String, Path), ("webhook_id" = String, Path)),
    responses((status = 204, description = "The webhook stopped working"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_webhook(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, hook)): Path<(String, String)>,
) -> Result<Response> {
    let conv = ConversationId::parse(&id, "conversation")?;
    let hook = domain::WebhookId::parse(&hook, "webhook")?;
    state
        .store
        .delete_webhook(&auth.user_id, &conv, hook.as_str())
        .await?;
    Ok(no_content())
}

/// A webhook's body: Slack's JSON, sent as JSON (any content type), or as a form with a
/// `payload` field holding the JSON (what Slack's own clients send).
fn hook_body(headers: &HeaderMap, body: &[u8]) -> Result<p::HookPost> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let json: std::borrow::Cow<'_, [u8]> = if form && body.starts_with(b"payload=") {
        let payload = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        payload.into_bytes().into()
    } else {
        body.into()
    };
    if std::str::from_utf8(&json).is_err() {
        return Err(Error::bad_request("the body is not valid UTF-8"));
    }
    serde_json::from_slice(&json).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
}

#[utoipa::path(post, path = "/api/v1/hooks/{id}/{secret}", tag = "integrations",
    params(("id" = String, Path), ("secret" = String, Path)),
    request_body = p::HookPost,
    responses((status = 200, description = "Posted", body = p::HookAccepted), (status = "4XX", description = "Error (404 unknown webhook or wrong secret, 429 past 60 posts a minute)", body = p::ErrorBody)))]
pub(crate) async fn hook(
    State(state): State<SharedState>,
    Path((id, secret)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<p::HookAccepted>> {
    let unknown = || Error::not_found("webhook");
    if id.len() > 64 || secret.len() > 128 {
        return Err(unknown());
    }
    let hook = state.store.webhook(&id).await?.ok_or_else(unknown)?;
    let given = hash_refresh_token(&secret);
    if !bool::from(given.as_bytes().ct_eq(hook.secret_hash.as_bytes())) {
        return Err(unknown());
    }
    state
        .limits
        .webhook_posts
        .take(&hook.id)
        .map_err(Error::rate_limited)?;
    let post = hook_body(&headers, &body)?;
    let text = post.text.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(Error::invalid("text", "text must not be empty"));
    }
    if text.len() > p::MAX_MESSAGE_BODY {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("text is longer than {} bytes", p::MAX_MESSAGE_BODY),
        ));
    }
    let body = domain::message_body(&text, false)?;
    let name = post
        .username
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .and_then(|n| domain::text("username", n, 1, 80).ok())
        .unwrap_or_else(|| hook.name.clone());
    // A suspended creator's webhooks stop with them.
    if state.store.suspension(&hook.creator_id).await?.is_some() {
        return Err(unknown());
    }
    let m = NewMessage {
        sender_id: hook.creator_id.clone(),
        conversation_id: hook.conversation_id.clone(),
        client_id: format!("hook:{}", crate::time::new_id()),
        kind: p::MessageKind::Text,
        body,
        attachment_ids: Vec::new(),
        reply_to_seq: None,
        via_webhook: Some(p::WebhookRef {
            id: hook.id.clone(),
            name,
        }),
    };
    match state.batcher.send(m).await {
        Ok(outcome) => Ok(Json(p::HookAccepted {
            ok: true,
            seq: outcome.message.seq,
        })),
        // The creator is no longer a member: the webhook stopped working.
        Err(e) if e.code() == ErrorCode::NotFound => Err(unknown()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Service notifications
// ---------------------------------------------------------------------------------------------

#[utoipa::path(post, path = "/api/v1/notify", tag = "integrations", request_body = p::NotifyRequest,
    responses((status = 202, description = "Accepted: a durable notification event for the user, a Web Push if no device is connected", body = p::CreatedId), (status = "4XX", description = "Error (401 without a service token, 404 unknown user)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn notify(
    State(state): State<SharedState>,
    Service(service): Service,
    ApiJson(req): ApiJson<p::NotifyRequest>,
) -> Result<Response> {
    let user = user_id(&req.user_id)?;
    let title = domain::text("title", &req.title, 1, 100)?;
    let body = domain::text("body", &req.body, 0, 1000)?;
    let url = match req.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => None,
        Some(u) if (u.starts_with('/') && !u.starts_with("//")) || u.starts_with("https://") => {
            if u.len() > 2000 || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(Error::invalid("url", "url is not a valid URL"));
            }
            Some(u.to_owned())
        }
        Some(_) => return Err(Error::invalid("url", "url must be an https URL or a path")),
    };
    let n = state
        .store
        .notify(&service, &user, &title, &body, url.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(p::CreatedId { id: n.id })).into_response())
}

/// A request with a service token (`chatnode service-token create`): the service's name.
/// Anything else (a user's or a bot's token, none) is 401, before the body is looked at.
pub struct Service(pub String);

impl axum::extract::FromRequestParts<SharedState> for Service {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &SharedState,
    ) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| t.starts_with(SERVICE_TOKEN_PREFIX))
            .ok_or_else(Error::unauthenticated)?;
        let name = state
            .store
            .service_by_token(&hash_refresh_token(token))
            .await?
            .ok_or_else(Error::unauthenticated)?;
        Ok(Service(name))
    }
}

#[derive(Deserialize)]
pub(crate) struct NotificationsQuery {
    before: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "integrations",
    params(("before" = Option<String>, Query, description = "a next_cursor"), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "The caller's notifications, newest first", body = p::NotificationList), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn notifications(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<NotificationsQuery>,
) -> Result<Json<p::NotificationList>> {
    let limit = domain::limit(q.limit)?;
    let before = q.before.filter(|b| !b.is_empty());
    if before.as_deref().is_some_and(|b| b.len() > 64) {
        return Err(Error::invalid("before", "before must be a next_cursor"));
    }
    let (list, unread) = state
        .store
        .notifications(&auth.user_id, before.as_deref(), limit)
        .await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|n| n.id.clone()))
        .flatten();
    Ok(Json(p::NotificationList {
        notifications: list,
        next_cursor: next,
        unread_count: unread,
    }))
}

#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "integrations",
    request_body = p::NotificationsReadRequest,
    responses((status = 204, description = "Marked read (all, or up to `up_to`)"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn notifications_read(
    State(state): State<SharedState>,
    auth: AuthUser,
    OptionalJson(req): OptionalJson<p::NotificationsReadRequest>,
) -> Result<Response> {
    let up_to = req.up_to.filter(|u| !u.is_empty());
    if up_to.as_deref().is_some_and(|u| u.len() > 64) {
        return Err(Error::invalid("up_to", "up_to must be a notification's id"));
    }
    state
        .store
        .mark_notifications_read(&auth.user_id, up_to.as_deref())
        .await?;
    Ok(no_content())
}
