//! Wire types of the ChatNode API v1 (`shared/api-contract.md`).
//!
//! Everything that crosses the network is defined here once and shared by the server, the Rust
//! client, the CLI and the load generator, and rendered into TypeScript for the web client
//! ([`typescript`], `web/src/lib/protocol.gen.ts`). This crate owns shapes and names only: no
//! I/O, no validation rules beyond what serde enforces, no server logic.
//!
//! Timestamps are RFC 3339 strings in UTC; IDs are opaque strings (UUIDv7 on this server).

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

pub mod error;
pub mod integrations;
pub mod operators;
pub mod typescript;
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use integrations::*;
pub use operators::*;

/// Largest accepted message body, in bytes.
pub const MAX_MESSAGE_BODY: usize = 16 * 1024;
/// Largest accepted WebSocket text frame, in bytes; larger ones close the socket with 4009.
pub const MAX_WS_FRAME: usize = 64 * 1024;
/// Default and maximum page sizes for paginated lists.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// WebSocket close codes of the contract.
pub mod close_code {
    pub const UNAUTHENTICATED: u16 = 4001;
    pub const FORBIDDEN: u16 = 4003;
    pub const TOO_SLOW: u16 = 4008;
    pub const FRAME_TOO_LARGE: u16 = 4009;
    pub const RATE_LIMITED: u16 = 4029;
    pub const GOING_AWAY: u16 = 1001;
    /// RFC 6455's "try again later" (an extension of the contract's list): the server could
    /// not check the token just now (its database overloaded or away). Unlike 4001 the token
    /// is not in question: reconnect with it after a backoff, without refreshing it.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

/// A user as others see them. Email and phone never appear here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<String>,
    /// True for bots (`POST /bots`), false for people.
    #[serde(default)]
    pub bot: bool,
}

/// The signed-in user's own profile (`GET /users/me`): a [`User`] plus contact data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: String,
    /// Whether push notifications may show message text (extension; default true).
    #[serde(default = "yes")]
    pub notification_previews: bool,
    /// Whether this user administers the server (`/admin/...`).
    #[serde(default)]
    pub system_admin: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Direct,
    Group,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema, TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Conversation {
    pub id: String,
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub description: Option<String>,
    pub public: bool,
    pub created_at: String,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    pub my_role: Role,
    pub last_read_seq: i64,
    pub member_count: i64,
    /// The other person, for `direct` conversations only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub peer: Option<User>,
    /// Highest `seq` in the conversation (extension).
    #[serde(default)]
    pub last_seq: i64,
    /// For `direct` conversations: how far the other person has read (extension), so a
    /// client can show "read" on its own messages after a reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub peer_last_read_seq: Option<i64>,
    /// Until when notifications for this conversation are muted (extension); absent when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub muted_until: Option<String>,
    /// Messages after `last_read_seq` that mention the caller.
    #[serde(default)]
    pub unread_mentions: i64,
    /// While muted: whether mentions are muted too (extension; true when the mute was set
    /// with `{"mentions": false}`, false when a mention still pushes). Absent when not muted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mute_mentions: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: String,
    /// How far this member has read (extension; lets clients show read state in groups).
    #[serde(default)]
    pub last_read_seq: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    File,
    Video,
    /// A voice message (an `audio` attachment).
    Audio,
    System,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::File => "file",
            MessageKind::Video => "video",
            MessageKind::Audio => "audio",
            MessageKind::System => "system",
        }
    }
    pub fn parse(s: &str) -> Option<MessageKind> {
        match s {
            "text" => Some(MessageKind::Text),
            "image" => Some(MessageKind::Image),
            "file" => Some(MessageKind::File),
            "video" => Some(MessageKind::Video),
            "audio" => Some(MessageKind::Audio),
            "system" => Some(MessageKind::System),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub client_id: String,
    pub kind: MessageKind,
    pub body: String,
    pub attachments: Vec<Media>,
    pub reply_to_seq: Option<i64>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    /// Reactions, ordered by the first time each emoji was used. In events sent to many
    /// (`message`, `message.updated`) `me` is false; REST answers compute it for the caller.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    /// IDs of the users this message mentions (`@username`, `@all`).
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Set when the message was posted through an incoming webhook.
    #[serde(default)]
    pub via_webhook: Option<WebhookRef>,
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct Reaction {
    pub emoji: String,
    pub count: i64,
    /// Whether the caller is among those who reacted with it.
    pub me: bool,
}

/// The webhook a message came through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct WebhookRef {
    pub id: String,
    pub name: String,
}

/// Whom a deleted message disappears for: the `for` query parameter of
/// `DELETE /conversations/{id}/messages/{seq}?for=everyone|me` (default `everyone`) and the
/// `scope` of a `message.deleted` event.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS,
)]
#[serde(rename_all = "snake_case")]
pub enum DeleteScope {
    /// Every member sees a tombstone (`deleted: true`, empty body); the author, or an admin or
    /// the owner of a group.
    #[default]
    Everyone,
    /// Only the caller stops seeing it (on every device).
    Me,
}

impl DeleteScope {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteScope::Everyone => "everyone",
            DeleteScope::Me => "me",
        }
    }
}

/// The query of `DELETE /conversations/{id}/messages/{seq}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
pub struct DeleteMessageQuery {
    /// Absent means `everyone`.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub scope: Option<DeleteScope>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Media {
    pub id: String,
    pub mime: String,
    pub size: i64,
    pub name: String,
    pub url: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub thumbnail_url: Option<String>,
    /// Length of an audio (voice) attachment, when known; null otherwise.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct FriendRequest {
    pub id: String,
    pub from: User,
    pub to: User,
    pub created_at: String,
}

// ---------------------------------------------------------------------------------------------
// REST requests and responses
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct RegisterRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub phone: Option<String>,
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub display_name: Option<String>,
    /// Needed when registration is by invite (`GET /auth/registration` says `invite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub invite_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct AuthResponse {
    pub user: Me,
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct UpdateProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub avatar_media_id: Option<String>,
    /// Show message text in push notifications (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub notification_previews: Option<bool>,
}

/// `POST /users/me/password` (extension): every other login session ends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /users/me/delete` (extension): the password confirms the deletion.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ConfirmPasswordRequest {
    pub password: String,
}

/// A live login session (`GET /sessions`, extension).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct Session {
    pub id: String,
    pub created_at: String,
    /// The session this request was made with.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct UserList {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct UserIdRequest {
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct UserIdsRequest {
    pub user_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct FriendRequestList {
    pub incoming: Vec<FriendRequest>,
    pub outgoing: Vec<FriendRequest>,
}

/// `POST /friends/requests` answers 201 with a request, or 200 with `{friend}` when the other
/// person had already asked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct FriendAdded {
    pub friend: User,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct FriendList {
    pub friends: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct Block {
    pub user: User,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct BlockList {
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct CreateGroupRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub avatar_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub member_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct UpdateGroupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub avatar_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub public: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    pub next_cursor: Option<String>,
}

/// An entry of the public group directory.
pub type GroupList = GroupDirectory;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct GroupDirectory {
    pub groups: Vec<GroupSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct GroupSummary {
    pub id: String,
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub description: Option<String>,
    pub public: bool,
    pub created_at: String,
    pub member_count: i64,
    /// Whether the caller is already a member.
    pub joined: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct MemberList {
    pub members: Vec<Member>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct RoleRequest {
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct Invite {
    pub code: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct CreateInviteRequest {
    /// Lifetime in seconds (default 7 days, at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub expires_in: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct SendMessageRequest {
    pub client_id: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub kind: Option<MessageKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub attachment_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reply_to_seq: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct EditMessageRequest {
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ReadRequest {
    pub seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct MessageList {
    pub messages: Vec<Message>,
    /// The `seq` to pass as `before_seq` (or `after_seq`) for the next page; null at the end.
    pub next_cursor: Option<i64>,
}

/// Who reacted with one emoji (`GET /conversations/{id}/messages/{seq}/reactions`,
/// extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ReactionUsers {
    pub emoji: String,
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ReactionUsersList {
    pub reactions: Vec<ReactionUsers>,
}

/// `GET /search/messages`: matches, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct SearchResults {
    pub messages: Vec<Message>,
    /// Pass as `before` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct ReadMarker {
    pub conversation_id: String,
    pub last_read_seq: i64,
    pub unread_count: i64,
}

/// Keys of a browser push subscription (`PushSubscription.toJSON().keys`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The browser's 16-byte auth secret, base64url.
    pub auth: String,
}

/// `POST /push/subscriptions` (extension): the output of `PushSubscription.toJSON()`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct PushSubscriptionRequest {
    pub endpoint: String,
    pub keys: PushKeys,
}

/// `DELETE /push/subscriptions` (extension).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct PushUnsubscribeRequest {
    pub endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct PushSubscription {
    pub id: String,
    pub endpoint: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct PushSubscriptionList {
    pub subscriptions: Vec<PushSubscription>,
}

/// `GET /push/vapid-public-key` (extension): the `applicationServerKey` for `subscribe()`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct VapidPublicKey {
    /// Uncompressed P-256 point, base64url without padding.
    pub public_key: String,
}

/// `PUT /conversations/{id}/mute` (extension): `until` null or absent mutes forever.
/// Unknown fields are refused: with every field optional, a typo would otherwise silently
/// mean "forever".
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The contract documents `null` here too (same meaning as absent).
    #[ts(optional = nullable)]
    pub until: Option<String>,
    /// `false`: mentions are muted too. Absent or `true`: a mention still pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mentions: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, TS)]
pub struct MuteState {
    pub conversation_id: String,
    pub muted_until: Option<String>,
    /// Whether mentions still push while muted (true when not muted).
    #[serde(default = "yes")]
    pub mentions: bool,
}

/// The JSON inside a push notification (after decryption), for service workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushPayload {
    /// A new message. `body` is null when the recipient turned previews off.
    Message {
        conversation_id: String,
        seq: i64,
        /// The group's name, or null for a direct conversation.
        group: Option<String>,
        sender: String,
        body: Option<String>,
        kind: MessageKind,
        /// Where the app should open.
        url: String,
    },
    /// The conversation was read on another device: close its notification.
    Clear { conversation_id: String, seq: i64 },
    /// A service notification (`POST /notify`) for a user with no connection open.
    Notification {
        id: String,
        title: String,
        body: String,
        /// Where the app should open (a path or an https URL), if anywhere.
        url: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------------

/// Frames a client sends on `/api/v1/ws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Send {
        conversation_id: String,
        client_id: String,
        #[serde(default)]
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        kind: Option<MessageKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        attachment_ids: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        reply_to_seq: Option<i64>,
    },
    Typing {
        conversation_id: String,
        typing: bool,
    },
    Read {
        conversation_id: String,
        seq: i64,
    },
    Sync {
        since: i64,
    },
    /// Which conversation this client shows right now, `null` when none or when the app is
    /// in the background (extension; used to skip push notifications for what is in view).
    View {
        #[serde(default)]
        conversation_id: Option<String>,
    },
    Ping,
}

/// Frames the server sends on `/api/v1/ws`. Durable events carry `stream_pos`.
// Frames are short-lived values decoded one at a time; boxing the large variants would only
// make every match noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type")]
pub enum ServerFrame {
    #[serde(rename = "ready")]
    Ready { user: User, stream_pos: i64 },
    #[serde(rename = "ack")]
    Ack { client_id: String, message: Message },
    /// A frame was refused; `client_id` names the `send` it answers, when there is one.
    #[serde(rename = "error")]
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        client_id: Option<String>,
        code: ErrorCode,
        message: String,
    },
    #[serde(rename = "synced")]
    Synced { stream_pos: i64 },
    #[serde(rename = "pong")]
    Pong,
    #[serde(rename = "message")]
    Message {
        message: Message,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "message.updated")]
    MessageUpdated {
        message: Message,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        conversation_id: String,
        seq: i64,
        /// `everyone` or `me` (extension).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        scope: Option<DeleteScope>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "typing")]
    Typing {
        conversation_id: String,
        user_id: String,
        typing: bool,
    },
    #[serde(rename = "presence")]
    Presence {
        user_id: String,
        online: bool,
        last_seen_at: Option<String>,
    },
    #[serde(rename = "read")]
    Read {
        conversation_id: String,
        user_id: String,
        seq: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "friend.request")]
    FriendRequest {
        request: FriendRequest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    /// A friend request was accepted, declined or cancelled (extension), sent to both people.
    #[serde(rename = "friend.request.removed")]
    FriendRequestRemoved {
        request_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "friend.added")]
    FriendAdded {
        user: User,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "friend.removed")]
    FriendRemoved {
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "conversation.updated")]
    ConversationUpdated {
        conversation: Conversation,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "member.added")]
    MemberAdded {
        conversation_id: String,
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        role: Option<Role>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "member.removed")]
    MemberRemoved {
        conversation_id: String,
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        role: Option<Role>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    #[serde(rename = "member.updated")]
    MemberUpdated {
        conversation_id: String,
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        role: Option<Role>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    /// Someone added (`added: true`) or took back a reaction; to the conversation's members.
    #[serde(rename = "reaction")]
    Reaction {
        conversation_id: String,
        seq: i64,
        user_id: String,
        emoji: String,
        added: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
    /// A service notification (`POST /notify`), to every device of its user.
    #[serde(rename = "notification")]
    Notification {
        id: String,
        title: String,
        body: String,
        url: Option<String>,
        created_at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        stream_pos: Option<i64>,
    },
}

impl ServerFrame {
    /// The stream position of a durable event, if this frame is one.
    pub fn stream_pos(&self) -> Option<i64> {
        use ServerFrame::*;
        match self {
            Message { stream_pos, .. }
            | MessageUpdated { stream_pos, .. }
            | MessageDeleted { stream_pos, .. }
            | Read { stream_pos, .. }
            | FriendRequest { stream_pos, .. }
            | FriendRequestRemoved { stream_pos, .. }
            | FriendAdded { stream_pos, .. }
            | FriendRemoved { stream_pos, .. }
            | ConversationUpdated { stream_pos, .. }
            | MemberAdded { stream_pos, .. }
            | MemberRemoved { stream_pos, .. }
            | MemberUpdated { stream_pos, .. }
            | Reaction { stream_pos, .. }
            | Notification { stream_pos, .. } => *stream_pos,
            _ => None,
        }
    }

    /// Sets the stream position of a durable event (no effect on other frames).
    pub fn set_stream_pos(&mut self, pos: i64) {
        use ServerFrame::*;
        match self {
            Message { stream_pos, .. }
            | MessageUpdated { stream_pos, .. }
            | MessageDeleted { stream_pos, .. }
            | Read { stream_pos, .. }
            | FriendRequest { stream_pos, .. }
            | FriendRequestRemoved { stream_pos, .. }
            | FriendAdded { stream_pos, .. }
            | FriendRemoved { stream_pos, .. }
            | ConversationUpdated { stream_pos, .. }
            | MemberAdded { stream_pos, .. }
            | MemberRemoved { stream_pos, .. }
            | MemberUpdated { stream_pos, .. }
            | Reaction { stream_pos, .. }
            | Notification { stream_pos, .. } => *stream_pos = Some(pos),
            _ => {}
        }
    }

    /// The `type` tag of this frame.
    pub fn type_name(&self) -> &'static str {
        use ServerFrame::*;
        match self {
            Ready { .. } => "ready",
            Ack { .. } => "ack",
            Error { .. } => "error",
            Synced { .. } => "synced",
            Pong => "pong",
            Message { .. } => "message",
            MessageUpdated { .. } => "message.updated",
            MessageDeleted { .. } => "message.deleted",
            Typing { .. } => "typing",
            Presence { .. } => "presence",
            Read { .. } => "read",
            FriendRequest { .. } => "friend.request",
            FriendRequestRemoved { .. } => "friend.request.removed",
            FriendAdded { .. } => "friend.added",
            FriendRemoved { .. } => "friend.removed",
            ConversationUpdated { .. } => "conversation.updated",
            MemberAdded { .. } => "member.added",
            MemberRemoved { .. } => "member.removed",
            MemberUpdated { .. } => "member.updated",
            Reaction { .. } => "reaction",
            Notification { .. } => "notification",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_use_contract_tags() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","conversation_id":"c","client_id":"x","body":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(f, ClientFrame::Send { ref body, .. } if body == "hi"));
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping);
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
    }

    #[test]
    fn server_frames_round_trip_with_dotted_tags() {
        let f = ServerFrame::MemberUpdated {
            conversation_id: "c".into(),
            user_id: "u".into(),
            role: Some(Role::Admin),
            stream_pos: Some(7),
        };
        let s = serde_json::to_string(&f).unwrap();
        assert!(s.contains(r#""type":"member.updated""#), "{s}");
        assert!(s.contains(r#""role":"admin""#), "{s}");
        let back: ServerFrame = serde_json::from_str(&s).unwrap();
        assert_eq!(back.stream_pos(), Some(7));
        assert_eq!(back, f);
        assert_eq!(
            serde_json::to_string(&ServerFrame::Pong).unwrap(),
            r#"{"type":"pong"}"#
        );
    }
}
