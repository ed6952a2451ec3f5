//! Message history, send (REST twin of the WebSocket `send`), edit, delete, read markers,
//! reactions and search.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use chatnode_protocol as p;
use serde::Deserialize;

use super::{ApiJson, ApiQuery, AuthUser, no_content};
use crate::SharedState;
use crate::domain::{self, ConversationId};
use crate::error::{Error, Result};
use crate::messages::new_message;
use crate::store::HistoryPage;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/conversations/{id}/messages", get(history).post(send))
        .route(
            "/conversations/{id}/messages/{seq}",
            patch(edit).delete(delete),
        )
        .route("/conversations/{id}/read", post(read))
        .route(
            "/conversations/{id}/messages/{seq}/reactions/{emoji}",
            put(react).delete(unreact),
        )
        .route(
            "/conversations/{id}/messages/{seq}/reactions",
            get(reactors),
        )
        .route("/search/messages", get(search))
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "messages", params(("id" = String, Path), ("before_seq" = Option<i64>, Query), ("after_seq" = Option<i64>, Query), ("limit" = Option<u32>, Query)), responses((status = 200, description = "A page of messages", body = p::MessageList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn history(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<p::MessageList>> {
    let id = ConversationId::parse(&id, "conversation")?;
    let limit = domain::limit(q.limit)?;
    let page = match (q.before_seq, q.after_seq) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "before_seq",
                "use before_seq or after_seq, not both",
            ));
        }
        (Some(b), None) => HistoryPage::Before(b),
        (None, Some(a)) => HistoryPage::After(a),
        (None, None) => HistoryPage::Latest,
    };
    let (messages, next_cursor) = state
        .store
        .messages(&auth.user_id, &id, page, limit)
        .await?;
    Ok(Json(p::MessageList {
        messages,
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "messages", request_body = p::SendMessageRequest, params(("id" = String, Path)), responses((status = 201, description = "Committed", body = p::Message), (status = 200, description = "This client_id was used before: the original message", body = p::Message), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn send(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::SendMessageRequest>,
) -> Result<Response> {
    state
        .limits
        .rest_sends
        .take(auth.user_id.as_str())
        .map_err(Error::rate_limited)?;
    let m = new_message(
        &auth.user_id,
        &id,
        &req.client_id,
        &req.body,
        req.kind,
        req.attachment_ids.as_deref(),
        req.reply_to_seq,
    )?;
    let outcome = state.batcher.send(m).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome.message)).into_response())
}

fn parse_seq(seq: &str) -> Result<i64> {
    seq.parse::<i64>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| Error::not_found("message"))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}/messages/{seq}", tag = "messages", request_body = p::EditMessageRequest, params(("id" = String, Path), ("seq" = i64, Path)), responses((status = 200, description = "Edited", body = p::Message), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn edit(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, seq)): Path<(String, String)>,
    ApiJson(req): ApiJson<p::EditMessageRequest>,
) -> Result<Json<p::Message>> {
    let id = ConversationId::parse(&id, "conversation")?;
    let seq = parse_seq(&seq)?;
    let body = domain::message_body(&req.body, false)?;
    Ok(Json(
        state
            .store
            .edit_message(&auth.user_id, &id, seq, body)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{seq}", tag = "messages", params(("id" = String, Path), ("seq" = i64, Path), ("for" = Option<p::DeleteScope>, Query, description = "everyone (default) or me")), responses((status = 204, description = "Deleted"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, seq)): Path<(String, String)>,
    query: Result<ApiQuery<p::DeleteMessageQuery>, Error>,
) -> Result<Response> {
    let id = ConversationId::parse(&id, "conversation")?;
    let seq = parse_seq(&seq)?;
    // Checked after the path, as before; the query's one parameter is `for`, so any failure to
    // read it is about `for` (and keeps the field-specific error of the other validations).
    let ApiQuery(q) = query.map_err(|_| Error::invalid("for", "for must be `everyone` or `me`"))?;
    let scope = q.scope.unwrap_or_default();
    state
        .store
        .delete_message(&auth.user_id, &id, seq, scope == p::DeleteScope::Everyone)
        .await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "messages", request_body = p::ReadRequest, params(("id" = String, Path)), responses((status = 200, description = "The read marker after the call", body = p::ReadMarker), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn read(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<p::ReadRequest>,
) -> Result<Json<p::ReadMarker>> {
    let id = ConversationId::parse(&id, "conversation")?;
    Ok(Json(
        state.store.mark_read(&auth.user_id, &id, req.seq).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/messages/{seq}/reactions/{emoji}", tag = "messages",
    params(("id" = String, Path), ("seq" = i64, Path), ("emoji" = String, Path, description = "one emoji, percent-encoded")),
    responses((status = 204, description = "The caller reacts with this emoji (idempotent)"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn react(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, seq, emoji)): Path<(String, String, String)>,
) -> Result<Response> {
    set_reaction(&state, &auth, &id, &seq, &emoji, true).await
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{seq}/reactions/{emoji}", tag = "messages",
    params(("id" = String, Path), ("seq" = i64, Path), ("emoji" = String, Path, description = "one emoji, percent-encoded")),
    responses((status = 204, description = "The caller no longer reacts with this emoji (idempotent)"), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn unreact(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, seq, emoji)): Path<(String, String, String)>,
) -> Result<Response> {
    set_reaction(&state, &auth, &id, &seq, &emoji, false).await
}

async fn set_reaction(
    state: &SharedState,
    auth: &AuthUser,
    id: &str,
    seq: &str,
    emoji: &str,
    on: bool,
) -> Result<Response> {
    let id = ConversationId::parse(id, "conversation")?;
    let seq = parse_seq(seq)?;
    let emoji = domain::emoji(emoji)?;
    state
        .store
        .set_reaction(&auth.user_id, &id, seq, &emoji, on)
        .await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages/{seq}/reactions", tag = "messages",
    params(("id" = String, Path), ("seq" = i64, Path)),
    responses((status = 200, description = "Who reacted with what (extension)", body = p::ReactionUsersList), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn reactors(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, seq)): Path<(String, String)>,
) -> Result<Json<p::ReactionUsersList>> {
    let id = ConversationId::parse(&id, "conversation")?;
    let seq = parse_seq(&seq)?;
    let reactions = state
        .store
        .reactors(&auth.user_id, &id, seq)
        .await?
        .into_iter()
        .map(|(emoji, users)| p::ReactionUsers { emoji, users })
        .collect();
    Ok(Json(p::ReactionUsersList { reactions }))
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    conversation_id: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/search/messages", tag = "messages",
    params(("q" = String, Query, description = "words; each matches a whole word or a word's start, case- and accent-insensitive"),
           ("conversation_id" = Option<String>, Query), ("limit" = Option<u32>, Query), ("before" = Option<String>, Query, description = "a next_cursor")),
    responses((status = 200, description = "Matching messages the caller can read, newest first", body = p::SearchResults), (status = "4XX", description = "Error (see ErrorBody.code)", body = chatnode_protocol::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn search(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<p::SearchResults>> {
    let query = crate::search::Query::parse(q.q.as_deref().unwrap_or(""))?;
    let limit = domain::limit(q.limit)?;
    let conversation = q
        .conversation_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| ConversationId::parse(c, "conversation"))
        .transpose()?;
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            b.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::invalid("before", "before must be a next_cursor"))?,
        ),
    };
    let (messages, next) = state
        .store
        .search_messages(&auth.user_id, &query, conversation.as_ref(), before, limit)
        .await?;
    Ok(Json(p::SearchResults {
        messages,
        next_cursor: next.map(|n| n.to_string()),
    }))
}
