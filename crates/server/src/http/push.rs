//! Web Push endpoints (extensions of the contract): the VAPID public key, subscriptions, and
//! per-conversation mute. Notification previews are a profile setting (`PATCH /users/me`).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chatnode_protocol as p;

use super::{ApiJson, AuthUser, OptionalJson, created, no_content};
use crate::SharedState;
use crate::domain::ConversationId;
use crate::error::{Error, Result};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/push/vapid-public-key", get(vapid_public_key))
        .route(
            "/push/subscriptions",
            post(subscribe).delete(unsubscribe).get(list),
        )
        .route("/conversations/{id}/mute", put(mute).delete(unmute))
}

/// Mutes with no `until` last until unmuted (stored as the end of year 9999).
const FOREVER_MS: i64 = 253_402_300_799_000;

#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "push",
    responses((status = 200, description = "The applicationServerKey for PushManager.subscribe", body = p::VapidPublicKey),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn vapid_public_key(
    State(state): State<SharedState>,
    _auth: AuthUser,
) -> Json<p::VapidPublicKey> {
    Json(p::VapidPublicKey {
        public_key: state.push.public_key().to_owned(),
    })
}

#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "push", request_body = p::PushSubscriptionRequest,
    responses((status = 201, description = "Subscribed (one per browser: an endpoint is re-assigned; at most 10 per account, the oldest is dropped)", body = p::PushSubscription),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn subscribe(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::PushSubscriptionRequest>,
) -> Result<Response> {
    crate::push::validate_subscription(&req.endpoint, &req.keys.p256dh, &req.keys.auth)
        .map_err(|why| Error::invalid("endpoint", why))?;
    let sub = state
        .store
        .add_push_subscription(
            &auth.user_id,
            &req.endpoint,
            &req.keys.p256dh,
            &req.keys.auth,
        )
        .await?;
    state.push.note_subscribed();
    Ok(created(sub))
}

#[utoipa::path(delete, path = "/api/v1/push/subscriptions", tag = "push", request_body = p::PushUnsubscribeRequest,
    responses((status = 204, description = "Unsubscribed"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn unsubscribe(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::PushUnsubscribeRequest>,
) -> Result<Response> {
    if !state
        .store
        .remove_push_subscription(&auth.user_id, &req.endpoint)
        .await?
    {
        return Err(Error::not_found("subscription"));
    }
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/push/subscriptions", tag = "push",
    responses((status = 200, description = "Your subscriptions", body = p::PushSubscriptionList),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::PushSubscriptionList>> {
    Ok(Json(p::PushSubscriptionList {
        subscriptions: state.store.push_subscriptions(&auth.user_id).await?,
    }))
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/mute", tag = "push", request_body = p::MuteRequest,
    params(("id" = String, Path)),
    responses((status = 200, description = "Muted until the given time, or forever", body = p::MuteState),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn mute(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<p::MuteRequest>,
) -> Result<Json<p::MuteState>> {
    let id = ConversationId::parse(&id, "conversation")?;
    let until = match req.until.as_deref() {
        None => FOREVER_MS,
        Some(t) => {
            let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| Error::invalid("until", "until must be an RFC 3339 time"))?;
            let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
            if ms <= crate::time::now_ms() {
                return Err(Error::invalid("until", "until must be in the future"));
            }
            ms
        }
    };
    Ok(Json(
        state
            .store
            .set_mute(
                &auth.user_id,
                &id,
                Some(until),
                req.mentions.unwrap_or(true),
            )
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/mute", tag = "push",
    params(("id" = String, Path)),
    responses((status = 204, description = "Unmuted"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn unmute(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = ConversationId::parse(&id, "conversation")?;
    state.store.set_mute(&auth.user_id, &id, None, true).await?;
    Ok(no_content())
}
