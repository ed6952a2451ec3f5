//! Friend requests, friendships and blocks.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chatnode_protocol as p;

use super::{ApiJson, AuthUser, created, no_content};
use crate::SharedState;
use crate::domain::{FriendRequestId, UserId};
use crate::error::{Error, Result};
use crate::store::FriendRequestOutcome;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/friends/requests", post(send_request).get(requests))
        .route("/friends/requests/{id}/accept", post(accept))
        .route("/friends/requests/{id}/decline", post(decline))
        .route("/friends/requests/{id}", delete(cancel))
        .route("/friends", get(friends))
        .route("/friends/{user_id}", delete(remove_friend))
        .route("/blocks/{user_id}", put(block).delete(unblock))
        .route("/blocks", get(blocks))
}

#[utoipa::path(post, path = "/api/v1/friends/requests", tag = "social", request_body = p::UserIdRequest, responses((status = 201, description = "Request sent", body = p::FriendRequest), (status = 200, description = "They had asked you already: now friends", body = p::FriendAdded), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn send_request(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::UserIdRequest>,
) -> Result<Response> {
    state
        .limits
        .friend_requests
        .take(auth.user_id.as_str())
        .map_err(Error::rate_limited)?;
    let to = UserId::parse(&req.user_id, "user")?;
    Ok(
        match state.store.send_friend_request(&auth.user_id, &to).await? {
            FriendRequestOutcome::Requested(r) => created(r),
            FriendRequestOutcome::Friends(friend) => {
                Json(p::FriendAdded { friend }).into_response()
            }
        },
    )
}

#[utoipa::path(get, path = "/api/v1/friends/requests", tag = "social", responses((status = 200, description = "Pending requests", body = p::FriendRequestList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn requests(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::FriendRequestList>> {
    Ok(Json(state.store.friend_requests(&auth.user_id).await?))
}

#[utoipa::path(post, path = "/api/v1/friends/requests/{id}/accept", tag = "social", params(("id" = String, Path)), responses((status = 200, description = "Now friends", body = p::FriendAdded), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn accept(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::FriendAdded>> {
    let id = FriendRequestId::parse(&id, "friend request")?;
    let friend = state
        .store
        .accept_friend_request(&auth.user_id, &id)
        .await?;
    Ok(Json(p::FriendAdded { friend }))
}

#[utoipa::path(post, path = "/api/v1/friends/requests/{id}/decline", tag = "social", params(("id" = String, Path)), responses((status = 204, description = "Declined"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn decline(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = FriendRequestId::parse(&id, "friend request")?;
    state
        .store
        .decline_friend_request(&auth.user_id, &id)
        .await?;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/api/v1/friends/requests/{id}", tag = "social", params(("id" = String, Path)), responses((status = 204, description = "Cancelled"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = FriendRequestId::parse(&id, "friend request")?;
    state
        .store
        .cancel_friend_request(&auth.user_id, &id)
        .await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/friends", tag = "social", responses((status = 200, description = "Your friends", body = p::FriendList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn friends(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::FriendList>> {
    Ok(Json(p::FriendList {
        friends: state.store.friends(&auth.user_id).await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/friends/{user_id}", tag = "social", params(("user_id" = String, Path)), responses((status = 204, description = "Removed"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn remove_friend(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = UserId::parse(&id, "friend")?;
    state.store.remove_friend(&auth.user_id, &id).await?;
    Ok(no_content())
}

#[utoipa::path(put, path = "/api/v1/blocks/{user_id}", tag = "social", params(("user_id" = String, Path)), responses((status = 204, description = "Blocked"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn block(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = UserId::parse(&id, "user")?;
    state.store.block(&auth.user_id, &id).await?;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/api/v1/blocks/{user_id}", tag = "social", params(("user_id" = String, Path)), responses((status = 204, description = "Unblocked"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn unblock(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = UserId::parse(&id, "user")?;
    state.store.unblock(&auth.user_id, &id).await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/blocks", tag = "social", responses((status = 200, description = "Blocked users", body = p::BlockList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn blocks(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::BlockList>> {
    Ok(Json(p::BlockList {
        blocks: state.store.blocks(&auth.user_id).await?,
    }))
}
