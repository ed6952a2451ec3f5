//! The OpenAPI document, generated from the handlers' annotations and the protocol types.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(
        super::account::change_password,
        super::account::sessions,
        super::account::revoke,
        super::account::delete_account,
        super::account::export,
        super::push::vapid_public_key,
        super::push::subscribe,
        super::push::unsubscribe,
        super::push::list,
        super::push::mute,
        super::push::unmute,
        super::media::upload,
        super::media::cookie,
        super::media::original,
        super::media::thumbnail,
        super::accounts::register,
        super::accounts::login,
        super::accounts::refresh,
        super::accounts::logout,
        super::accounts::me,
        super::accounts::update_me,
        super::accounts::user,
        super::accounts::search,
        super::social::send_request,
        super::social::requests,
        super::social::accept,
        super::social::decline,
        super::social::cancel,
        super::social::friends,
        super::social::remove_friend,
        super::social::block,
        super::social::unblock,
        super::social::blocks,
        super::conversations::open_direct,
        super::conversations::list,
        super::conversations::one,
        super::conversations::create_group,
        super::conversations::update_group,
        super::conversations::directory,
        super::conversations::join,
        super::conversations::create_invite,
        super::conversations::accept_invite,
        super::conversations::members,
        super::conversations::add_members,
        super::conversations::remove_member,
        super::conversations::set_role,
        super::conversations::transfer,
        super::messages::history,
        super::messages::send,
        super::messages::edit,
        super::messages::delete,
        super::messages::read,
        super::messages::react,
        super::messages::unreact,
        super::messages::reactors,
        super::messages::search,
        super::admin::users,
        super::admin::grant,
        super::admin::revoke,
        super::admin::suspend,
        super::admin::unsuspend,
        super::admin::delete_message,
        super::admin::report,
        super::admin::reports,
        super::admin::resolve,
        super::admin::audit,
        super::admin::stats,
        super::admin::invites,
        super::admin::create_invite,
        super::admin::revoke_invite,
        super::admin::registration,
        super::admin::usage,
        super::integrations::create_bot,
        super::integrations::bots,
        super::integrations::rotate_token,
        super::integrations::delete_bot,
        super::integrations::create_webhook,
        super::integrations::webhooks,
        super::integrations::delete_webhook,
        super::integrations::hook,
        super::integrations::notify,
        super::integrations::notifications,
        super::integrations::notifications_read,
        super::sso::providers,
        super::sso::start,
        super::sso::callback,
        super::sso::exchange
    ),
    modifiers(&BearerAuth),
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
        // Query parameters' schemas are not collected on their own.
        chatnode_protocol::DeleteScope,
    ))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "media_cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new(super::media::COOKIE),
            )),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` names a schema the document defines (a type used only in `params(...)` is
    /// not collected by utoipa and must be listed in `components`).
    #[test]
    fn every_schema_reference_resolves() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v.as_str()) {
                            ("$ref", Some(r)) => out.push(r.to_owned()),
                            _ => walk(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "dangling {r}");
        }
    }
}
