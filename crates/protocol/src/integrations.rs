//! Wire types for what other software does with ChatNode: bots, incoming webhooks, service
//! notifications and single sign-on (contract additions of 2026-12-07).

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

use crate::User;

/// `POST /bots`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct CreateBotRequest {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub display_name: Option<String>,
}

/// A new bot and its token (shown only here).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct BotCreated {
    pub bot: User,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct BotList {
    pub bots: Vec<User>,
}

/// `POST /bots/{id}/token`: the new token; the old one stopped working.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct BotToken {
    pub token: String,
}

/// `POST /conversations/{id}/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct CreateWebhookRequest {
    pub name: String,
}

/// A new webhook: `url` (with its secret) is shown only here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct WebhookCreated {
    pub id: String,
    pub name: String,
    pub url: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Who made it (extension).
    #[serde(default)]
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// `POST /hooks/{id}/{secret}`: Slack's incoming-webhook payload (other fields are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct HookPost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct HookAccepted {
    pub ok: bool,
    pub seq: i64,
}

/// `POST /notify` (service token).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct NotifyRequest {
    pub user_id: String,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Notification {
    pub id: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub created_at: String,
    /// Whether the user has seen it (extension; `POST /notifications/read`).
    #[serde(default)]
    pub read: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct NotificationList {
    pub notifications: Vec<Notification>,
    pub next_cursor: Option<String>,
    /// How many of the user's notifications are unread (extension).
    #[serde(default)]
    pub unread_count: i64,
}

/// `POST /notifications/read` (extension): marks the caller's notifications read, all of
/// them or up to (and including) `up_to`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct NotificationsReadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub up_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct OidcProvider {
    pub id: String,
    pub name: String,
}

/// `GET /auth/providers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ProviderList {
    pub providers: Vec<OidcProvider>,
}

/// `POST /auth/oidc/exchange`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct OidcExchangeRequest {
    pub code: String,
}
