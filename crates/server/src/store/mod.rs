//! Storage: what the server asks of its database, as one trait per area, and the backends.
//!
//! The traits speak in domain operations ("send these messages", "accept this request"), not
//! in rows: each operation runs in one transaction of the backend, checks the rules that
//! must hold atomically with the write (membership, roles, friendship, idempotency), assigns
//! `seq` and stream positions inside that transaction, and hands the durable events it wrote
//! to its [`EventSink`] only after the commit. The rest of the server holds an
//! `Arc<dyn Store>`: [`Store`] is every area trait at once.
//!
//! IDs come in as the typed IDs of [`crate::domain`] (parsed at the edge, or trusted because
//! they came from the database or a verified token); the store returns protocol types
//! directly; presence (`online`) comes from a [`Presence`]. Nothing here may depend on the
//! hub, HTTP or WebSocket layers.
//!
//! Where things are: this file has the traits; `types.rs` the records they take and return;
//! `sql/` the one implementation ([`sql::SqlStore`], a module per area), generic over
//! [`sql::Backend`]; `sqlite.rs` and `postgres.rs` open their databases and implement
//! `Backend` (what differs between them); migrations are in `migrations/{sqlite,postgres}`.

use async_trait::async_trait;
use chatnode_protocol as p;

use crate::domain::{ConversationId, FriendRequestId, MediaId, SessionId, UserId};
use crate::error::Result;
use crate::events::Durable;

pub mod postgres;
pub mod send_rules;
pub mod sql;
pub mod sqlite;
pub mod sqlite_writer;
mod types;

/// Commits batches of messages synchronously, on the thread that calls it (the SQLite
/// message writer), and does the writer's background work between them.
pub trait BlockingWriter: Send {
    /// Commits a batch: one answer per message, in order.
    fn commit(&mut self, batch: &[NewMessage]) -> Vec<Result<SendOutcome>>;
    /// Whether background work is waiting, and whether it is urgent: `Some(false)` runs it
    /// only when no send is queued, `Some(true)` also between batches under load.
    fn background_due(&self) -> Option<bool> {
        None
    }
    /// Does a bounded piece of the background work (the search index: see `sqlite_writer`).
    fn background(&mut self) {}
}

/// A [`BlockingWriter`] of a backend that has one.
pub type BlockingCommitter = Box<dyn BlockingWriter>;

pub use types::{
    AdminTarget, Credentials, FriendRequestOutcome, GroupPatch, HistoryPage,
    MAX_PUSH_SUBSCRIPTIONS, MediaRecord, NewGroup, NewMessage, NewReport, NewUser, OidcClaims,
    OidcLogin, OidcOutcome, ProfilePatch, PushContext, PushRecipient, PushTarget, ReencryptReport,
    RefreshOutcome, SeedConversation, SendOutcome, StoreStats, StoredEvent, WebhookRecord,
};

/// Where the store hands the durable events of a transaction, once it has committed (the
/// hub, on a serving node). Called with the node's write gate held, so events arrive in
/// commit order; it must not block or await.
pub trait EventSink: Send + Sync {
    fn publish(&self, events: Vec<Durable>);
}

/// Who is online, for the `online` of the user views the store builds (the hub knows).
pub trait Presence: Send + Sync {
    fn is_online(&self, user_id: &str) -> bool;
}

/// For commands that open the store while nobody is connected (`rotate-key`,
/// `bench-seed`): events go nowhere and nobody is online.
pub struct Offline;

impl EventSink for Offline {
    fn publish(&self, _events: Vec<Durable>) {}
}

impl Presence for Offline {
    fn is_online(&self, _user_id: &str) -> bool {
        false
    }
}

/// Everything the server stores, one trait per area. Code that needs one area can take that
/// trait; the server holds an `Arc<dyn Store>`.
pub trait Store:
    Accounts
    + Social
    + Conversations
    + Messages
    + Reactions
    + Search
    + Moderation
    + Bots
    + Webhooks
    + Notifications
    + SingleSignOn
    + MediaStore
    + PushStore
    + EventLog
    + Maintenance
    + 'static
{
}

impl<T> Store for T where
    T: Accounts
        + Social
        + Conversations
        + Messages
        + Reactions
        + Search
        + Moderation
        + Bots
        + Webhooks
        + Notifications
        + SingleSignOn
        + MediaStore
        + PushStore
        + EventLog
        + Maintenance
        + 'static
{
}

/// Accounts, login sessions and account safety: registration, profiles, user search,
/// refresh-token rotation, password changes, session revocation, deletion and export.
#[async_trait]
pub trait Accounts: Send + Sync {
    async fn create_user(&self, user: NewUser) -> Result<p::Me>;
    /// `login` is an email, an E.164 phone or a username, already normalized.
    async fn credentials(&self, login: &str) -> Result<Option<Credentials>>;
    async fn me(&self, user_id: &UserId) -> Result<p::Me>;
    async fn user(&self, viewer: &UserId, user_id: &UserId) -> Result<p::User>;
    async fn update_profile(&self, user_id: &UserId, patch: ProfilePatch) -> Result<p::Me>;
    async fn search_users(
        &self,
        viewer: &UserId,
        q: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::User>>;
    async fn set_last_seen(&self, user_id: &UserId, at_ms: i64) -> Result<()>;
    async fn create_session(
        &self,
        user_id: &UserId,
        refresh_hash: &str,
        expires_at_ms: i64,
    ) -> Result<SessionId>;
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at_ms: i64,
    ) -> Result<RefreshOutcome>;
    /// The (session, user) a refresh token belongs to, spent or not.
    async fn refresh_session(&self, refresh_hash: &str) -> Result<Option<(SessionId, UserId)>>;
    async fn revoke_session(&self, session_id: &SessionId) -> Result<()>;
    async fn session_active(&self, session_id: &SessionId, user_id: &UserId) -> Result<bool>;
    /// The bot and the live session a bot token (its SHA-256) authenticates as.
    async fn bot_session(&self, token_hash: &str) -> Result<Option<(UserId, SessionId)>>;
    async fn password_hash(&self, user_id: &UserId) -> Result<String>;
    /// Sets a new password hash and revokes every login session but `keep_session`; returns
    /// the revoked session IDs (their sockets must close).
    async fn change_password(
        &self,
        user_id: &UserId,
        new_hash: &str,
        keep_session: &SessionId,
    ) -> Result<Vec<SessionId>>;
    /// The user's live login sessions: (id, created_at ms).
    async fn sessions(&self, user_id: &UserId) -> Result<Vec<(SessionId, i64)>>;
    /// Revokes one of the user's sessions; false when it is not theirs or already revoked.
    async fn revoke_user_session(&self, user_id: &UserId, session_id: &SessionId) -> Result<bool>;
    /// Erases the account: contact data, credentials, profile, friendships, blocks, push
    /// subscriptions, group memberships (ownership passes on); messages stay, shown as
    /// "Deleted user". Returns the revoked session IDs.
    async fn delete_account(&self, user_id: &UserId) -> Result<Vec<SessionId>>;
    /// Everything stored about the user, as JSON.
    async fn export(&self, user_id: &UserId) -> Result<serde_json::Value>;
}

/// Friend requests, friendships and blocks.
#[async_trait]
pub trait Social: Send + Sync {
    async fn send_friend_request(&self, from: &UserId, to: &UserId)
    -> Result<FriendRequestOutcome>;
    async fn friend_requests(&self, user_id: &UserId) -> Result<p::FriendRequestList>;
    async fn accept_friend_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
    ) -> Result<p::User>;
    async fn decline_friend_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
    ) -> Result<()>;
    async fn cancel_friend_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
    ) -> Result<()>;
    async fn friends(&self, user_id: &UserId) -> Result<Vec<p::User>>;
    /// IDs of the user's friends (presence audience).
    async fn friend_ids(&self, user_id: &UserId) -> Result<Vec<UserId>>;
    async fn remove_friend(&self, user_id: &UserId, friend_id: &UserId) -> Result<()>;
    async fn block(&self, user_id: &UserId, target: &UserId) -> Result<()>;
    async fn unblock(&self, user_id: &UserId, target: &UserId) -> Result<()>;
    async fn blocks(&self, user_id: &UserId) -> Result<Vec<p::Block>>;
}

/// Direct conversations and groups: creating them, their settings, the public directory,
/// joining, invites, members and roles.
#[async_trait]
pub trait Conversations: Send + Sync {
    async fn open_direct(&self, user_id: &UserId, peer_id: &UserId) -> Result<p::Conversation>;
    async fn create_group(&self, user_id: &UserId, group: NewGroup) -> Result<p::Conversation>;
    async fn conversations(&self, user_id: &UserId) -> Result<Vec<p::Conversation>>;
    async fn conversation(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<p::Conversation>;
    async fn update_group(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        patch: GroupPatch,
    ) -> Result<p::Conversation>;
    async fn group_directory(
        &self,
        user_id: &UserId,
        q: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::GroupSummary>>;
    async fn join_group(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
    ) -> Result<p::Conversation>;
    async fn create_invite(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        ttl_secs: i64,
    ) -> Result<p::Invite>;
    async fn accept_invite(&self, user_id: &UserId, code: &str) -> Result<p::Conversation>;
    async fn members(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::Member>>;
    async fn add_members(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        user_ids: Vec<UserId>,
    ) -> Result<Vec<p::Member>>;
    async fn remove_member(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        target: &UserId,
    ) -> Result<()>;
    async fn set_role(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        target: &UserId,
        role: p::Role,
    ) -> Result<p::Member>;
    async fn transfer_ownership(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        target: &UserId,
    ) -> Result<p::Conversation>;
    /// Current member IDs, if `user_id` is one of them (typing fan-out).
    async fn member_ids_if_member(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<Option<Vec<UserId>>>;
}

/// Messages: the group-commit send, history, edits, deletions and read markers.
#[async_trait]
pub trait Messages: Send + Sync {
    /// Commits a batch in one transaction (group commit); one result per input, in order.
    async fn send_messages(&self, batch: Vec<NewMessage>) -> Vec<Result<SendOutcome>>;
    /// A committer to run on a thread of its own instead of [`Messages::send_messages`],
    /// when the backend has one (SQLite). Each call opens a new one.
    fn blocking_committer(&self) -> Option<BlockingCommitter>;
    async fn messages(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        page: HistoryPage,
        limit: i64,
    ) -> Result<(Vec<p::Message>, Option<i64>)>;
    async fn edit_message(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
        body: String,
    ) -> Result<p::Message>;
    async fn delete_message(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
        for_everyone: bool,
    ) -> Result<()>;
    async fn mark_read(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<p::ReadMarker>;
}

/// Reactions on messages.
#[async_trait]
pub trait Reactions: Send + Sync {
    /// Puts (`on`) or takes back a reaction; no change, no event. 404 for non-members and
    /// unknown messages, 400 on deleted and system messages, 400 `too_many_reactions` past
    /// the limit.
    async fn set_reaction(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
        emoji: &str,
        on: bool,
    ) -> Result<()>;
    /// Who reacted with what on a message, emoji in the order they were first used.
    async fn reactors(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<Vec<(String, Vec<p::User>)>>;
}

/// Message search (see `crate::search` and `sql/search.rs`).
#[async_trait]
pub trait Search: Send + Sync {
    /// Messages the user can read (in one conversation of theirs, or in all) matching the
    /// query, newest first, below the stream position `before`; and the `before` of the next
    /// page.
    async fn search_messages(
        &self,
        user_id: &UserId,
        query: &crate::search::Query,
        conversation: Option<&ConversationId>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<p::Message>, Option<i64>)>;
    /// Makes sure the index is under the current key (at the first start with search, or
    /// after a key rotation, it is emptied and a backfill starts). Before taking sends.
    async fn prepare_search(&self) -> Result<()>;
    /// Indexes up to `batch` messages from before the index (or its key) existed, newest
    /// first; answers whether any are left.
    async fn backfill_search(&self, batch: i64) -> Result<bool>;
    /// Indexes up to `batch` new messages past the index's horizon and answers how many it
    /// looked at (0 when another node is at it); `None` when this backend indexes new
    /// messages elsewhere (SQLite: its message writer), so no task needs to.
    async fn index_search(&self, batch: i64) -> Result<Option<usize>>;
}

/// Running the server: system admins, suspensions, reports, moderation, the audit log,
/// statistics, registration invites and upload usage. Every admin action is written to the
/// audit log in the transaction that does it; `actor` None is the server's command line.
#[async_trait]
pub trait Moderation: Send + Sync {
    async fn is_system_admin(&self, user_id: &UserId) -> Result<bool>;
    /// Grants or revokes the system admin role; returns the user's ID (404 for no such user).
    async fn set_system_admin(
        &self,
        actor: Option<&UserId>,
        target: AdminTarget,
        admin: bool,
    ) -> Result<UserId>;
    /// Users whose username or display name starts with `q` (or whose email or phone is
    /// `q`), everyone for an empty `q`, by username; with uploads since `since_ms`.
    async fn admin_users(
        &self,
        q: &str,
        limit: i64,
        offset: i64,
        since_ms: i64,
    ) -> Result<Vec<p::AdminUser>>;
    /// Suspends until `until_ms` (far future: until lifted) and revokes every login session;
    /// returns them, so their sockets close.
    async fn suspend(
        &self,
        actor: &UserId,
        target: &UserId,
        reason: &str,
        until_ms: i64,
    ) -> Result<Vec<SessionId>>;
    async fn unsuspend(&self, actor: &UserId, target: &UserId) -> Result<()>;
    /// `(until_ms, reason)` while the user is suspended.
    async fn suspension(&self, user_id: &UserId) -> Result<Option<(i64, String)>>;
    /// Deletes a message for everyone in any conversation, as a moderator.
    async fn moderate_delete(
        &self,
        actor: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<()>;
    async fn create_report(&self, reporter: &UserId, report: NewReport) -> Result<String>;
    async fn reports(&self, resolved: bool, limit: i64) -> Result<Vec<p::Report>>;
    async fn resolve_report(&self, actor: &UserId, id: &str, note: Option<String>) -> Result<()>;
    /// Newest first, older than the entry `before`.
    async fn audit_log(&self, before: Option<&str>, limit: i64) -> Result<Vec<p::AuditEntry>>;
    /// Counts for `GET /admin/stats` (connections come from the hub and the cluster).
    async fn stats(&self, now_ms: i64) -> Result<StoreStats>;
    async fn create_registration_invite(
        &self,
        actor: &UserId,
        code_hash: &str,
        hint: &str,
        uses: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<()>;
    /// Invites with uses left that have not expired.
    async fn registration_invites(&self) -> Result<Vec<p::RegistrationInvite>>;
    async fn revoke_registration_invite(&self, actor: &UserId, id: &str) -> Result<()>;
    /// Bytes of the user's uploads since `since_ms`, and in all.
    async fn upload_usage(&self, user_id: &UserId, since_ms: i64) -> Result<(i64, i64)>;
}

/// Bots: accounts with an owner, authenticated by a token (its SHA-256 stored) that belongs
/// to a login session of the bot's, so rotating or deleting ends that session like a logout.
#[async_trait]
pub trait Bots: Send + Sync {
    /// At most [`MAX_BOTS`] per owner; the owner must be a person.
    async fn create_bot(
        &self,
        owner: &UserId,
        username: &crate::domain::Username,
        display_name: &str,
        token_hash: &str,
    ) -> Result<p::User>;
    async fn bots(&self, owner: &UserId) -> Result<Vec<p::User>>;
    /// A new token; the sessions of the old one end (returned). 404 for another's bot.
    async fn rotate_bot_token(
        &self,
        owner: &UserId,
        bot: &UserId,
        token_hash: &str,
    ) -> Result<Vec<SessionId>>;
    /// The bot leaves every conversation and its token stops working; returns its sessions.
    async fn delete_bot(&self, owner: &UserId, bot: &UserId) -> Result<Vec<SessionId>>;
    async fn is_bot(&self, user_id: &UserId) -> Result<bool>;
}

/// Bots one user may own.
pub const MAX_BOTS: i64 = 10;

/// Incoming webhooks (Slack's shape): their secrets are stored as SHA-256.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// In a group its admins and owner, in a direct chat either member (403 otherwise, 404
    /// for non-members).
    async fn create_webhook(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        id: &str,
        name: &str,
        secret_hash: &str,
    ) -> Result<p::Webhook>;
    /// A conversation's webhooks, for its members.
    async fn webhooks(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<Vec<p::Webhook>>;
    /// Who may make one may delete one.
    async fn delete_webhook(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        id: &str,
    ) -> Result<()>;
    /// A webhook that was not deleted.
    async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>>;
}

/// Service tokens and the notifications services send through `POST /notify`.
#[async_trait]
pub trait Notifications: Send + Sync {
    /// 409 when the name is taken.
    async fn create_service_token(&self, name: &str, token_hash: &str) -> Result<()>;
    /// False when there was no such token.
    async fn revoke_service_token(&self, name: &str) -> Result<bool>;
    /// The service a token (its SHA-256) belongs to.
    async fn service_by_token(&self, token_hash: &str) -> Result<Option<String>>;
    /// Stores it and writes the durable `notification` event to the user (404: no user).
    async fn notify(
        &self,
        service: &str,
        user_id: &UserId,
        title: &str,
        body: &str,
        url: Option<&str>,
    ) -> Result<p::Notification>;
    /// Newest first, older than the notification `before`; and how many are unread.
    async fn notifications(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<p::Notification>, i64)>;
    /// Marks the user's notifications read, all or up to (and with) `up_to`.
    async fn mark_notifications_read(&self, user_id: &UserId, up_to: Option<&str>) -> Result<()>;
}

/// Single sign-on: sign-ins under way, accounts found by the provider's `sub`, and the
/// one-time codes that hand a finished sign-in to the browser.
#[async_trait]
pub trait SingleSignOn: Send + Sync {
    async fn begin_oidc_login(&self, login: OidcLogin) -> Result<()>;
    /// The sign-in for this `state` (its SHA-256), removed as it is read; None when unknown
    /// or older than ten minutes.
    async fn take_oidc_login(&self, state_hash: &str) -> Result<Option<OidcLogin>>;
    /// The account for a validated ID token: by `(provider, sub)`, else linked by a verified
    /// email, else made new (when `may_register`).
    async fn oidc_account(
        &self,
        provider: &str,
        claims: &OidcClaims,
        may_register: bool,
    ) -> Result<OidcOutcome>;
    async fn create_oidc_code(
        &self,
        code_hash: &str,
        user_id: &UserId,
        expires_ms: i64,
    ) -> Result<()>;
    /// The user of a one-time code (its SHA-256), removed as it is read; None when unknown or
    /// expired.
    async fn take_oidc_code(&self, code_hash: &str) -> Result<Option<UserId>>;
}

/// The records of uploads (the bytes are the media service's, see [`crate::media`]).
#[async_trait]
pub trait MediaStore: Send + Sync {
    async fn create_media(&self, media: MediaRecord) -> Result<p::Media>;
    /// The media if `viewer` may read it: its uploader, a member of a conversation it was sent
    /// in, or anyone (even anonymous) for avatars.
    async fn media_for(
        &self,
        viewer: Option<&UserId>,
        media_id: &MediaId,
    ) -> Result<Option<MediaRecord>>;
    /// Deletes up to `limit` uploads never attached to anything and older than the cutoff;
    /// returns them so their blobs can be removed.
    async fn take_orphan_media(
        &self,
        created_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<MediaRecord>>;
}

/// Web Push: subscriptions, per-conversation mutes, and what the notifier needs to word a
/// push.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Subscribes the endpoint for `user_id` (taking it over from whoever had it) as the
    /// user's newest subscription; past [`MAX_PUSH_SUBSCRIPTIONS`] the oldest are dropped.
    async fn add_push_subscription(
        &self,
        user_id: &UserId,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<p::PushSubscription>;
    /// Removes the caller's subscription with this endpoint; false when there was none.
    async fn remove_push_subscription(&self, user_id: &UserId, endpoint: &str) -> Result<bool>;
    async fn push_subscriptions(&self, user_id: &UserId) -> Result<Vec<p::PushSubscription>>;
    async fn push_targets(&self, user_id: &UserId) -> Result<Vec<PushTarget>>;
    /// The push service said the endpoint is gone (404/410).
    async fn drop_push_endpoint(&self, endpoint: &str) -> Result<()>;
    async fn any_push_subscriptions(&self) -> Result<bool>;
    /// `until`: `Some(ms)` mutes until then, `None` unmutes. `mentions`: whether a mention
    /// still pushes while muted.
    async fn set_mute(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        until: Option<i64>,
        mentions: bool,
    ) -> Result<p::MuteState>;
    async fn push_context(
        &self,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<Option<PushContext>>;
}

/// The durable event stream: its head, a user's events since a position (`sync`), and every
/// event after a position (what a cluster node fills gaps in live delivery from). Positions
/// are stream positions: given in commit order, dense on PostgreSQL (see `postgres.rs`).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// The last stream position given.
    async fn stream_head(&self) -> Result<i64>;
    /// Durable events for `user_id` after `since`, oldest first, at most `limit`.
    async fn events_since(
        &self,
        user_id: &UserId,
        since: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>>;
    /// Every durable event after stream position `after`, in order, at most `limit`, with
    /// its recipients as `sync` sees them (a conversation's members who had joined before
    /// it, or its one user).
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Durable>>;
}

/// Health, the backend's name, encryption at rest (run before serving; see
/// [`crate::encryption`]) and benchmark fixtures (`chatnode bench-seed`).
#[async_trait]
pub trait Maintenance: Send + Sync {
    async fn ping(&self) -> Result<()>;
    /// Closes the store's connections (shutdown: after every write has finished).
    async fn close(&self);
    /// Gives stream positions to committed events still without one and publishes them
    /// (PostgreSQL; nothing on SQLite). Every node runs it once a second: it covers a node
    /// that died between a commit and its stamp, and a stamp that gave up waiting.
    async fn stamp_pending(&self) -> Result<()>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// The id of the key the database's data is under (its canary's), or `None` for a
    /// database no version with encryption at rest has opened yet.
    async fn encryption_key_id(&self) -> anyhow::Result<Option<String>>;
    /// Checks the store's keyring against the database's canary (a wrong key is an error),
    /// then, if any value may be in plaintext or under another key (or `all`), seals every
    /// encrypted value under the current key and recomputes the lookup hashes, in batches of
    /// one transaction each, and finally marks the database as all under the current key.
    /// Interrupted, it leaves every value readable with the same keyring and picks up where
    /// it stopped when run again.
    async fn reencrypt(&self, all: bool) -> anyhow::Result<ReencryptReport>;
    /// Load-test fixtures in one transaction (`chatnode bench-seed`): users named
    /// `{prefix}{index}` with one session each (their ids returned in order), and the
    /// conversations. Never reachable over the network.
    async fn bulk_seed(
        &self,
        prefix: &str,
        user_ids: &[UserId],
        password_hash: &str,
        conversations: &[SeedConversation],
    ) -> Result<Vec<SessionId>>;
}
