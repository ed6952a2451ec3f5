//! The OpenAPI document, generated from the handlers' annotations and the protocol types.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ChatNode API",
        version = "1",
        description = "REST API of ChatNode. The WebSocket protocol is documented in docs/protocol.md."
    ),
    components(schemas(
        chatnode_protocol::ErrorBody,
        chatnode_protocol::ApiError,
        chatnode_protocol::User,
        chatnode_protocol::Me,
        chatnode_protocol::Conversation,
        chatnode_protocol::Member,
        chatnode_protocol::Message,
        chatnode_protocol::Media,
        chatnode_protocol::FriendRequest,
        chatnode_protocol::RegisterRequest,
        chatnode_protocol::LoginRequest,
        chatnode_protocol::AuthResponse,
        chatnode_protocol::RefreshRequest,
        chatnode_protocol::TokenPair,
    ))
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
