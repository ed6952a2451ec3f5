//! Wire types for running a server: system administrators (`/admin/...`), reports and
//! moderation, the audit log, statistics, registration modes and invites, upload quotas
//! (contract additions of 2026-12-07, "Operators").

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

use crate::{Message, User};

/// `{id}`: what a create answers when the new object's ID is all there is to say.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct CreatedId {
    pub id: String,
}

/// A user as a system admin sees them: contact data, suspension and role included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AdminUser {
    #[serde(flatten)]
    pub user: User,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: String,
    pub suspended_until: Option<String>,
    pub system_admin: bool,
    /// Why the account is suspended (extension; null when it is not).
    #[serde(default)]
    pub suspension_reason: Option<String>,
    /// Bytes uploaded in the last 24 hours and in all (extension).
    #[serde(default)]
    pub upload_bytes_today: i64,
    #[serde(default)]
    pub upload_bytes_total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct AdminUserList {
    pub users: Vec<AdminUser>,
    pub next_cursor: Option<String>,
}

/// `POST /admin/users/{id}/suspend`: `until` null suspends until lifted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct SuspendRequest {
    pub reason: String,
    #[serde(default)]
    pub until: Option<String>,
}

/// `POST /reports`: a user (`user_id`) or a message (`conversation_id` + `seq`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct ReportRequest {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub seq: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Open,
    Resolved,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Open => "open",
            ReportStatus::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Report {
    pub id: String,
    pub reporter: User,
    /// The reported user (for a message: its author).
    pub user: Option<User>,
    pub message: Option<Message>,
    pub reason: String,
    pub created_at: String,
    pub status: ReportStatus,
    /// The ID of the admin who resolved it.
    pub resolved_by: Option<String>,
    /// When it was resolved, and the admin's note (extensions).
    #[serde(default)]
    pub resolved_at: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// For a message: up to three messages before and after it (extension), oldest first.
    #[serde(default)]
    pub context: Vec<Message>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ReportList {
    pub reports: Vec<Report>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct ResolveReportRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub note: Option<String>,
}

/// One entry of the audit log: who did what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AuditEntry {
    pub id: String,
    /// The admin who acted; null for the server's command line (`chatnode admin ...`).
    pub actor: Option<User>,
    /// `grant_admin`, `revoke_admin`, `suspend`, `unsuspend`, `delete_message`,
    /// `resolve_report`, `create_registration_invite`, `revoke_registration_invite`.
    pub action: String,
    pub target_user: Option<User>,
    pub conversation_id: Option<String>,
    pub seq: Option<i64>,
    /// Free text: a suspension's reason and end, a report's note…
    pub details: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct NodeStats {
    pub node_id: String,
    pub connections: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Stats {
    pub users: i64,
    pub users_active_24h: i64,
    pub messages_24h: i64,
    pub conversations: i64,
    pub groups: i64,
    /// WebSocket connections on every node.
    pub connections: i64,
    pub nodes: Vec<NodeStats>,
    /// Messages in each of the last 24 hours, oldest first (extension; the last entry is
    /// the hour under way).
    #[serde(default)]
    pub messages_per_hour: Vec<i64>,
    /// Bytes of uploads stored (extension).
    #[serde(default)]
    pub media_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationMode {
    Open,
    Invite,
    Closed,
}

impl RegistrationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Open => "open",
            RegistrationMode::Invite => "invite",
            RegistrationMode::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<RegistrationMode> {
        match s {
            "open" => Some(RegistrationMode::Open),
            "invite" => Some(RegistrationMode::Invite),
            "closed" => Some(RegistrationMode::Closed),
            _ => None,
        }
    }
}

/// `GET /auth/registration`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct RegistrationInfo {
    pub mode: RegistrationMode,
}

/// `POST /admin/registration-invites`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct CreateRegistrationInviteRequest {
    pub uses: i64,
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct RegistrationInvite {
    pub code: String,
    /// Uses left.
    pub uses: i64,
    pub expires_at: Option<String>,
    /// When and by whom it was made (extensions; on `GET /admin/registration-invites`).
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    /// What `DELETE /admin/registration-invites/{id}` takes (extension; on the list only).
    #[serde(default)]
    pub id: Option<String>,
}

/// `GET /admin/registration-invites` (extension): the invites with uses left and not expired.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct RegistrationInviteList {
    pub invites: Vec<RegistrationInvite>,
}

/// `GET /users/me/usage` (extension): the caller's uploads against their quotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UploadUsage {
    pub bytes_today: i64,
    pub bytes_total: i64,
    /// Null when there is no limit.
    pub daily_limit: Option<i64>,
    pub total_limit: Option<i64>,
}
