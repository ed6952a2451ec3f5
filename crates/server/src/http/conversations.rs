//! Direct conversations, groups, members, roles and invites.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chatnode_protocol as p;
use serde::Deserialize;

use super::{
    ApiJson, ApiQuery, AuthUser, OptionalJson, created, next_cursor, no_content, parse_cursor,
};
use crate::SharedState;
use crate::domain::{self, ConversationId, MediaId, UserId};
use crate::error::{Error, Result};
use crate::store::{GroupPatch, NewGroup};

/// Invite lifetime: 7 days unless asked otherwise, at most 30.
const DEFAULT_INVITE_TTL: i64 = 7 * 86_400;
const MAX_INVITE_TTL: i64 = 30 * 86_400;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/conversations/direct", post(open_direct))
        .route("/conversations", get(list))
        .route("/conversations/{id}", get(one))
        .route("/groups", post(create_group).get(directory))
        .route("/groups/{id}", patch(update_group).get(one))
        .route("/groups/{id}/join", post(join))
        .route("/groups/{id}/invites", post(create_invite))
        .route("/invites/{code}/accept", post(accept_invite))
        .route("/groups/{id}/members", get(members).post(add_members))
        .route(
            "/groups/{id}/members/{user_id}",
            patch(set_role).delete(remove_member),
        )
        .route("/groups/{id}/transfer", post(transfer))
}

#[utoipa::path(post, path = "/api/v1/conversations/direct", tag = "conversations", request_body = p::UserIdRequest, responses((status = 200, description = "The direct conversation with that friend", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn open_direct(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::UserIdRequest>,
) -> Result<Json<p::Conversation>> {
    let peer = UserId::parse(&req.user_id, "user")?;
    Ok(Json(state.store.open_direct(&auth.user_id, &peer).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", responses((status = 200, description = "Your conversations, most recent activity first", body = p::ConversationList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<p::ConversationList>> {
    let conversations = state.store.conversations(&auth.user_id).await?;
    Ok(Json(p::ConversationList {
        conversations,
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path)), responses((status = 200, description = "A conversation you are a member of", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn one(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::Conversation>> {
    let id = ConversationId::parse(&id, "conversation")?;
    Ok(Json(state.store.conversation(&auth.user_id, &id).await?))
}

fn media_id(id: Option<&str>) -> Result<Option<MediaId>> {
    id.map(|i| MediaId::parse(i, "media")).transpose()
}

#[utoipa::path(post, path = "/api/v1/groups", tag = "conversations", request_body = p::CreateGroupRequest, responses((status = 201, description = "Created; you are the owner", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_group(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<p::CreateGroupRequest>,
) -> Result<Response> {
    let member_ids = req.member_ids.unwrap_or_default();
    if member_ids.len() > 1000 {
        return Err(Error::invalid("member_ids", "at most 1000 members at once"));
    }
    let group = NewGroup {
        name: domain::group_name(&req.name)?,
        description: req
            .description
            .as_deref()
            .map(domain::description)
            .transpose()?
            .filter(|d| !d.is_empty()),
        avatar_media_id: media_id(req.avatar_media_id.as_deref())?,
        public: req.public.unwrap_or(false),
        member_ids: member_ids
            .iter()
            .map(|m| UserId::parse(m, "user"))
            .collect::<Result<_>>()?,
    };
    Ok(created(
        state.store.create_group(&auth.user_id, group).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "conversations", request_body = p::UpdateGroupRequest, params(("id" = String, Path)), responses((status = 200, description = "Updated", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_group(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::UpdateGroupRequest>,
) -> Result<Json<p::Conversation>> {
    let id = ConversationId::parse(&id, "group")?;
    let patch = GroupPatch {
        name: req.name.as_deref().map(domain::group_name).transpose()?,
        description: req
            .description
            .as_deref()
            .map(domain::description)
            .transpose()?,
        avatar_media_id: media_id(req.avatar_media_id.as_deref())?,
        public: req.public,
    };
    Ok(Json(
        state.store.update_group(&auth.user_id, &id, patch).await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    q: String,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "conversations", params(("q" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, description = "Public groups", body = p::GroupDirectory), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn directory(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<p::GroupDirectory>> {
    let limit = domain::limit(q.limit)?;
    let offset = parse_cursor(q.cursor.as_deref())?;
    if q.q.len() > 200 {
        return Err(Error::invalid("q", "search text is too long"));
    }
    let groups = state
        .store
        .group_directory(&auth.user_id, &q.q, limit, offset)
        .await?;
    let next = next_cursor(offset, groups.len(), limit);
    Ok(Json(p::GroupDirectory {
        groups,
        next_cursor: next,
    }))
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/join", tag = "conversations", params(("id" = String, Path)), responses((status = 200, description = "Joined", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn join(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<p::Conversation>> {
    let id = ConversationId::parse(&id, "group")?;
    Ok(Json(state.store.join_group(&auth.user_id, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/invites", tag = "conversations", request_body = p::CreateInviteRequest, params(("id" = String, Path)), responses((status = 201, description = "Invite code", body = p::Invite), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_invite(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<p::CreateInviteRequest>,
) -> Result<Response> {
    let id = ConversationId::parse(&id, "group")?;
    let ttl = req.expires_in.unwrap_or(DEFAULT_INVITE_TTL);
    if !(60..=MAX_INVITE_TTL).contains(&ttl) {
        return Err(Error::invalid(
            "expires_in",
            "expires_in must be 60 seconds to 30 days",
        ));
    }
    Ok(created(
        state.store.create_invite(&auth.user_id, &id, ttl).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/invites/{code}/accept", tag = "conversations", params(("code" = String, Path)), responses((status = 200, description = "Joined", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn accept_invite(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(code): Path<String>,
) -> Result<Json<p::Conversation>> {
    if code.is_empty() || code.len() > 64 {
        return Err(Error::new(
            p::ErrorCode::NotFound,
            "invite not found or expired",
        ));
    }
    Ok(Json(state.store.accept_invite(&auth.user_id, &code).await?))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "conversations", params(("id" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, description = "Members, owner and admins first", body = p::MemberList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn members(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<p::MemberList>> {
    let id = ConversationId::parse(&id, "group")?;
    let limit = domain::limit(q.limit)?;
    let offset = parse_cursor(q.cursor.as_deref())?;
    let members = state
        .store
        .members(&auth.user_id, &id, limit, offset)
        .await?;
    let next = next_cursor(offset, members.len(), limit);
    Ok(Json(p::MemberList {
        members,
        next_cursor: next,
    }))
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/members", tag = "conversations", request_body = p::UserIdsRequest, params(("id" = String, Path)), responses((status = 200, description = "Members added", body = p::MemberList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn add_members(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::UserIdsRequest>,
) -> Result<Json<p::MemberList>> {
    let id = ConversationId::parse(&id, "group")?;
    if req.user_ids.is_empty() || req.user_ids.len() > 1000 {
        return Err(Error::invalid(
            "user_ids",
            "user_ids must list 1-1000 users",
        ));
    }
    let ids = req
        .user_ids
        .iter()
        .map(|u| UserId::parse(u, "user"))
        .collect::<Result<Vec<_>>>()?;
    let members = state.store.add_members(&auth.user_id, &id, ids).await?;
    Ok(Json(p::MemberList {
        members,
        next_cursor: None,
    }))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}/members/{user_id}", tag = "conversations", params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204, description = "Removed (or left)"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn remove_member(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Response> {
    let id = ConversationId::parse(&id, "group")?;
    let user_id = UserId::parse(&user_id, "member")?;
    state
        .store
        .remove_member(&auth.user_id, &id, &user_id)
        .await?;
    Ok(no_content())
}

#[utoipa::path(patch, path = "/api/v1/groups/{id}/members/{user_id}", tag = "conversations", request_body = p::RoleRequest, params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 200, description = "Role changed", body = p::Member), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn set_role(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<p::RoleRequest>,
) -> Result<Json<p::Member>> {
    let id = ConversationId::parse(&id, "group")?;
    let user_id = UserId::parse(&user_id, "member")?;
    Ok(Json(
        state
            .store
            .set_role(&auth.user_id, &id, &user_id, req.role)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/transfer", tag = "conversations", request_body = p::UserIdRequest, params(("id" = String, Path)), responses((status = 200, description = "Ownership transferred", body = p::Conversation), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn transfer(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::UserIdRequest>,
) -> Result<Json<p::Conversation>> {
    let id = ConversationId::parse(&id, "group")?;
    let target = UserId::parse(&req.user_id, "member")?;
    Ok(Json(
        state
            .store
            .transfer_ownership(&auth.user_id, &id, &target)
            .await?,
    ))
}
