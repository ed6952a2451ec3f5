//! Friend requests, friendships and blocks.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chatnode_protocol as p;

use super::{ApiJson, AuthUser, created, no_content};
use crate::SharedState;
use crate::domain;
use crate::error::Result;
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

async fn send_request(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::UserIdRequest>,
) -> Result<Response> {
    let to = domain::id(&req.user_id, "user")?;
    Ok(
        match state.store.send_friend_request(&auth.user_id, &to).await? {
            FriendRequestOutcome::Requested(r) => created(r),
            FriendRequestOutcome::Friends(friend) => {
                Json(p::FriendAdded { friend }).into_response()
            }
        },
    )
}

async fn requests(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::FriendRequestList>> {
    Ok(Json(state.store.friend_requests(&auth.user_id).await?))
}

async fn accept(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::FriendAdded>> {
    let id = domain::id(&id, "friend request")?;
    let friend = state
        .store
        .accept_friend_request(&auth.user_id, &id)
        .await?;
    Ok(Json(p::FriendAdded { friend }))
}

async fn decline(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = domain::id(&id, "friend request")?;
    state
        .store
        .decline_friend_request(&auth.user_id, &id)
        .await?;
    Ok(no_content())
}

async fn cancel(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = domain::id(&id, "friend request")?;
    state
        .store
        .cancel_friend_request(&auth.user_id, &id)
        .await?;
    Ok(no_content())
}

async fn friends(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<p::FriendList>> {
    Ok(Json(p::FriendList {
        friends: state.store.friends(&auth.user_id).await?,
    }))
}

async fn remove_friend(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = domain::id(&id, "friend")?;
    state.store.remove_friend(&auth.user_id, &id).await?;
    Ok(no_content())
}

async fn block(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = domain::id(&id, "user")?;
    state.store.block(&auth.user_id, &id).await?;
    Ok(no_content())
}

async fn unblock(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = domain::id(&id, "user")?;
    state.store.unblock(&auth.user_id, &id).await?;
    Ok(no_content())
}

async fn blocks(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<p::BlockList>> {
    Ok(Json(p::BlockList {
        blocks: state.store.blocks(&auth.user_id).await?,
    }))
}
