//! The records that cross the store's boundary: what callers hand in (validated already)
//! and what the store hands back besides protocol types.

use chatnode_protocol as p;

use crate::domain::{ConversationId, MediaId, SessionId, UserId};

/// One fixture conversation: two members make a direct chat (and a friendship), more a group
/// owned by its first member.
pub struct SeedConversation {
    pub id: ConversationId,
    pub members: Vec<usize>,
}

/// A new account, already validated and hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub username_key: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub display_name: String,
    pub password_hash: String,
    /// Registration by invite: the SHA-256 of the code, spent in the same transaction (a
    /// code with no use left, expired or unknown: `registration_closed`).
    pub invite_code_hash: Option<String>,
}

/// Whom `set_system_admin` is about: an ID (the API) or a username (the command line).
#[derive(Debug, Clone)]
pub enum AdminTarget {
    Id(UserId),
    Username(String),
}

/// A report of a user or of a message, checked at the edge: exactly one of the two.
#[derive(Debug, Clone)]
pub enum NewReport {
    User {
        user_id: UserId,
        reason: String,
    },
    Message {
        conversation_id: ConversationId,
        seq: i64,
        reason: String,
    },
}

/// A webhook as the hook endpoint needs it.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: String,
    pub conversation_id: ConversationId,
    pub creator_id: UserId,
    pub name: String,
    pub secret_hash: String,
}

/// A single sign-on under way, between `/start` and `/callback`.
#[derive(Debug, Clone)]
pub struct OidcLogin {
    pub state_hash: String,
    pub provider: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// A path on this server.
    pub redirect_to: String,
}

/// What a validated ID token says about the person.
#[derive(Debug, Clone, Default)]
pub struct OidcClaims {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub enum OidcOutcome {
    /// An account (found, linked or made).
    User(UserId),
    /// No account and registration is not open.
    RegistrationClosed,
}

/// What the store counts for `GET /admin/stats`.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    pub users: i64,
    pub users_active_24h: i64,
    pub messages_24h: i64,
    pub conversations: i64,
    pub groups: i64,
    /// Messages in each of the last 24 hours, oldest first.
    pub messages_per_hour: Vec<i64>,
    pub media_bytes: i64,
}

/// What login needs to check a password.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: UserId,
    pub password_hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_media_id: Option<MediaId>,
    pub notification_previews: Option<bool>,
}

/// Push subscriptions kept per user. Each one costs a request to a push service per message,
/// so an account with hundreds could claim the push sender for itself; ten covers a person's
/// browsers and devices.
pub const MAX_PUSH_SUBSCRIPTIONS: i64 = 10;

/// A browser push subscription's delivery keys.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushTarget {
    pub user_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// Everything the notifier needs to decide on and word the pushes for one message.
#[derive(Debug, Clone)]
pub struct PushContext {
    pub conversation_id: String,
    pub group_name: Option<String>,
    pub sender_id: String,
    pub sender_name: String,
    pub body: String,
    pub kind: p::MessageKind,
    pub deleted: bool,
    /// Whom the message mentions (a mention passes a mute; see `PushRecipient`).
    pub mentions: Vec<String>,
    /// Members other than the sender who have at least one push subscription.
    pub recipients: Vec<PushRecipient>,
}

#[derive(Debug, Clone)]
pub struct PushRecipient {
    pub user_id: String,
    pub last_read_seq: i64,
    pub muted_until: Option<i64>,
    /// Muted with `{"mentions": false}`: mentions do not pass the mute.
    pub mute_mentions: bool,
    pub previews: bool,
    pub targets: Vec<PushTarget>,
}

#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    Rotated {
        user_id: UserId,
        session_id: SessionId,
    },
    /// A spent token came back: the session was revoked.
    Reused {
        session_id: SessionId,
    },
    Invalid,
}

#[derive(Debug, Clone)]
pub enum FriendRequestOutcome {
    Requested(p::FriendRequest),
    Friends(p::User),
}

#[derive(Debug, Clone, Default)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
    pub avatar_media_id: Option<MediaId>,
    pub public: bool,
    pub member_ids: Vec<UserId>,
}

#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub avatar_media_id: Option<MediaId>,
    pub public: Option<bool>,
}

/// One message to commit; fields are validated by the caller.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub sender_id: UserId,
    pub conversation_id: ConversationId,
    pub client_id: String,
    pub kind: p::MessageKind,
    pub body: String,
    /// As the client sent them: the store checks each names an upload of the sender's (an
    /// unknown one is "attachment not found", after the idempotency and membership checks),
    /// so they are not parsed at the edge.
    pub attachment_ids: Vec<String>,
    pub reply_to_seq: Option<i64>,
    /// Set when an incoming webhook posts it (the sender is the webhook's creator).
    pub via_webhook: Option<p::WebhookRef>,
}

impl NewMessage {
    /// The message as committed: a new ID, its `seq`, its attachments, whom it mentions and
    /// its creation time. It has no reactions yet.
    pub fn committed(
        &self,
        seq: i64,
        media: &[MediaRecord],
        mentions: Vec<String>,
        created_at: String,
    ) -> p::Message {
        p::Message {
            id: crate::time::new_id(),
            conversation_id: self.conversation_id.to_string(),
            seq,
            sender_id: self.sender_id.to_string(),
            client_id: self.client_id.clone(),
            kind: self.kind,
            body: self.body.clone(),
            attachments: media.iter().map(MediaRecord::to_protocol).collect(),
            reply_to_seq: self.reply_to_seq,
            created_at,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            mentions,
            via_webhook: self.via_webhook.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message: p::Message,
    /// False when the `client_id` had been used before and the original message came back.
    pub created: bool,
}

/// A stored upload, as the media service needs it (blob keys included).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRecord {
    pub id: String,
    pub owner_id: String,
    /// `image`, `video`, `audio` or `file`.
    pub kind: String,
    pub mime: String,
    pub size: i64,
    pub name: String,
    pub storage_key: String,
    pub sha256: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub thumb_key: Option<String>,
    pub thumb_size: Option<i64>,
    pub thumb_mime: Option<String>,
    pub thumb_sha256: Option<String>,
    pub avatar: bool,
    pub attached_at: Option<i64>,
    pub created_at: i64,
    /// Audio: the recording's length, as the uploader measured it.
    pub duration_ms: Option<i64>,
}

impl MediaRecord {
    pub fn to_protocol(&self) -> p::Media {
        p::Media {
            id: self.id.clone(),
            mime: self.mime.clone(),
            size: self.size,
            name: self.name.clone(),
            url: format!("/api/v1/media/{}", self.id),
            width: self.width,
            height: self.height,
            thumbnail_url: self
                .thumb_key
                .as_ref()
                .map(|_| format!("/api/v1/media/{}/thumbnail", self.id)),
            duration_ms: self.duration_ms,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum HistoryPage {
    Latest,
    Before(i64),
    After(i64),
}

/// A durable event as replayed by `sync`: its position and its frame's JSON with `stream_pos`.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub pos: i64,
    pub json: String,
}

/// What [`Maintenance::reencrypt`](super::Maintenance::reencrypt) did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReencryptReport {
    /// Whether the tables were gone through (false: everything was already under the
    /// current key and nothing was asked for).
    pub swept: bool,
    /// Values sealed anew (an email and a phone of one user count as two).
    pub values: u64,
    /// How many of those were still in plaintext (written before encryption at rest).
    pub plaintext: u64,
}
