// Generated from crates/protocol by `UPDATE_TS=1 cargo test -p chatnode-protocol typescript`. Do not edit:
// change the Rust types and regenerate. A test fails while this file is stale.
// (web/src/lib/protocol.gen.ts; see crates/protocol/src/typescript.rs)

/**
 * A user as a system admin sees them: contact data, suspension and role included.
 */
export type AdminUser = { email: string | null, phone: string | null, created_at: string, suspended_until: string | null, system_admin: boolean, 
/**
 * Why the account is suspended (extension; null when it is not).
 */
suspension_reason: string | null, 
/**
 * Bytes uploaded in the last 24 hours and in all (extension).
 */
upload_bytes_today: number, upload_bytes_total: number, id: string, username: string, display_name: string, avatar_url: string | null, bio: string | null, online: boolean, last_seen_at: string | null, 
/**
 * True for bots (`POST /bots`), false for people.
 */
bot: boolean, };

export type AdminUserList = { users: Array<AdminUser>, next_cursor: string | null, };

export type ApiError = { 
/**
 * A snake_case code; clients branch on it. Codes may be added over time.
 */
code: ErrorCode, 
/**
 * Human-readable text; do not parse.
 */
message: string, 
/**
 * For validation errors, the request field at fault (extension).
 */
field?: string, };

/**
 * One entry of the audit log: who did what, when.
 */
export type AuditEntry = { id: string, 
/**
 * The admin who acted; null for the server's command line (`chatnode admin ...`).
 */
actor: User | null, 
/**
 * `grant_admin`, `revoke_admin`, `suspend`, `unsuspend`, `delete_message`,
 * `resolve_report`, `create_registration_invite`, `revoke_registration_invite`.
 */
action: string, target_user: User | null, conversation_id: string | null, seq: number | null, 
/**
 * Free text: a suspension's reason and end, a report's note…
 */
details: string | null, created_at: string, };

export type AuditList = { entries: Array<AuditEntry>, next_cursor: string | null, };

export type AuthResponse = { user: Me, access_token: string, refresh_token: string, };

export type Block = { user: User, created_at: string, };

export type BlockList = { blocks: Array<Block>, };

/**
 * A new bot and its token (shown only here).
 */
export type BotCreated = { bot: User, token: string, };

export type BotList = { bots: Array<User>, };

/**
 * `POST /bots/{id}/token`: the new token; the old one stopped working.
 */
export type BotToken = { token: string, };

/**
 * `POST /users/me/password` (extension): every other login session ends.
 */
export type ChangePasswordRequest = { current_password: string, new_password: string, };

/**
 * Frames a client sends on `/api/v1/ws`.
 */
export type ClientFrame = { "type": "auth", token: string, } | { "type": "send", conversation_id: string, client_id: string, body: string, kind?: MessageKind, attachment_ids?: Array<string>, reply_to_seq?: number, } | { "type": "typing", conversation_id: string, typing: boolean, } | { "type": "read", conversation_id: string, seq: number, } | { "type": "sync", since: number, } | { "type": "view", conversation_id: string | null, } | { "type": "ping" };

/**
 * `POST /users/me/delete` (extension): the password confirms the deletion.
 */
export type ConfirmPasswordRequest = { password: string, };

export type Conversation = { id: string, kind: ConversationKind, name: string | null, avatar_url: string | null, description: string | null, public: boolean, created_at: string, last_message: Message | null, unread_count: number, my_role: Role, last_read_seq: number, member_count: number, 
/**
 * The other person, for `direct` conversations only.
 */
peer?: User, 
/**
 * Highest `seq` in the conversation (extension).
 */
last_seq: number, 
/**
 * For `direct` conversations: how far the other person has read (extension), so a
 * client can show "read" on its own messages after a reload.
 */
peer_last_read_seq?: number, 
/**
 * Until when notifications for this conversation are muted (extension); absent when not.
 */
muted_until?: string, 
/**
 * Messages after `last_read_seq` that mention the caller.
 */
unread_mentions: number, 
/**
 * While muted: whether mentions are muted too (extension; true when the mute was set
 * with `{"mentions": false}`, false when a mention still pushes). Absent when not muted.
 */
mute_mentions?: boolean, };

export type ConversationKind = "direct" | "group";

export type ConversationList = { conversations: Array<Conversation>, next_cursor: string | null, };

/**
 * `POST /bots`.
 */
export type CreateBotRequest = { username: string, display_name?: string, };

export type CreateGroupRequest = { name: string, description?: string, avatar_media_id?: string, public?: boolean, member_ids?: Array<string>, };

export type CreateInviteRequest = { 
/**
 * Lifetime in seconds (default 7 days, at most 30 days).
 */
expires_in?: number, };

/**
 * `POST /admin/registration-invites`.
 */
export type CreateRegistrationInviteRequest = { uses: number, expires_at: string | null, };

/**
 * `POST /conversations/{id}/webhooks`.
 */
export type CreateWebhookRequest = { name: string, };

/**
 * `{id}`: what a create answers when the new object's ID is all there is to say.
 */
export type CreatedId = { id: string, };

/**
 * The query of `DELETE /conversations/{id}/messages/{seq}`.
 */
export type DeleteMessageQuery = { 
/**
 * Absent means `everyone`.
 */
for?: DeleteScope, };

/**
 * Whom a deleted message disappears for: the `for` query parameter of
 * `DELETE /conversations/{id}/messages/{seq}?for=everyone|me` (default `everyone`) and the
 * `scope` of a `message.deleted` event.
 */
export type DeleteScope = "everyone" | "me";

export type EditMessageRequest = { body: string, };

/**
 * The body of every non-2xx response.
 */
export type ErrorBody = { error: ApiError, };

/**
 * A snake_case error code. Codes may be added over time (a new code is an extension of the
 * contract); a client built against an older list decodes them as [`ErrorCode::Unknown`].
 */
export type ErrorCode = "invalid_request" | "unauthenticated" | "forbidden" | "not_friends" | "blocked" | "not_found" | "method_not_allowed" | "conflict" | "email_taken" | "phone_taken" | "username_taken" | "too_large" | "unsupported_media_type" | "rate_limited" | "internal" | "unavailable" | "invalid_emoji" | "too_many_reactions" | "account_suspended" | "registration_closed" | "quota_exceeded";

/**
 * `POST /friends/requests` answers 201 with a request, or 200 with `{friend}` when the other
 * person had already asked.
 */
export type FriendAdded = { friend: User, };

export type FriendList = { friends: Array<User>, };

export type FriendRequest = { id: string, from: User, to: User, created_at: string, };

export type FriendRequestList = { incoming: Array<FriendRequest>, outgoing: Array<FriendRequest>, };

export type GroupDirectory = { groups: Array<GroupSummary>, next_cursor: string | null, };

export type GroupSummary = { id: string, kind: ConversationKind, name: string | null, avatar_url: string | null, description: string | null, public: boolean, created_at: string, member_count: number, 
/**
 * Whether the caller is already a member.
 */
joined: boolean, };

export type HookAccepted = { ok: boolean, seq: number, };

/**
 * `POST /hooks/{id}/{secret}`: Slack's incoming-webhook payload (other fields are ignored).
 */
export type HookPost = { text?: string, username?: string, };

export type Invite = { code: string, expires_at: string, };

export type LoginRequest = { login: string, password: string, };

/**
 * The signed-in user's own profile (`GET /users/me`): a [`User`] plus contact data.
 */
export type Me = { email: string | null, phone: string | null, created_at: string, 
/**
 * Whether push notifications may show message text (extension; default true).
 */
notification_previews: boolean, 
/**
 * Whether this user administers the server (`/admin/...`).
 */
system_admin: boolean, id: string, username: string, display_name: string, avatar_url: string | null, bio: string | null, online: boolean, last_seen_at: string | null, 
/**
 * True for bots (`POST /bots`), false for people.
 */
bot: boolean, };

export type Media = { id: string, mime: string, size: number, name: string, url: string, width: number | null, height: number | null, thumbnail_url: string | null, 
/**
 * Length of an audio (voice) attachment, when known; null otherwise.
 */
duration_ms: number | null, };

export type Member = { user: User, role: Role, joined_at: string, 
/**
 * How far this member has read (extension; lets clients show read state in groups).
 */
last_read_seq: number, };

export type MemberList = { members: Array<Member>, next_cursor: string | null, };

export type Message = { id: string, conversation_id: string, seq: number, sender_id: string, client_id: string, kind: MessageKind, body: string, attachments: Array<Media>, reply_to_seq: number | null, created_at: string, edited_at: string | null, deleted: boolean, 
/**
 * Reactions, ordered by the first time each emoji was used. In events sent to many
 * (`message`, `message.updated`) `me` is false; REST answers compute it for the caller.
 */
reactions: Array<Reaction>, 
/**
 * IDs of the users this message mentions (`@username`, `@all`).
 */
mentions: Array<string>, 
/**
 * Set when the message was posted through an incoming webhook.
 */
via_webhook: WebhookRef | null, };

export type MessageKind = "text" | "image" | "file" | "video" | "audio" | "system";

export type MessageList = { messages: Array<Message>, 
/**
 * The `seq` to pass as `before_seq` (or `after_seq`) for the next page; null at the end.
 */
next_cursor: number | null, };

/**
 * `PUT /conversations/{id}/mute` (extension): `until` null or absent mutes forever.
 * Unknown fields are refused: with every field optional, a typo would otherwise silently
 * mean "forever".
 */
export type MuteRequest = { until?: string | null, 
/**
 * `false`: mentions are muted too. Absent or `true`: a mention still pushes.
 */
mentions?: boolean, };

export type MuteState = { conversation_id: string, muted_until: string | null, 
/**
 * Whether mentions still push while muted (true when not muted).
 */
mentions: boolean, };

export type NodeStats = { node_id: string, connections: number, };

export type Notification = { id: string, title: string, body: string, url: string | null, created_at: string, 
/**
 * Whether the user has seen it (extension; `POST /notifications/read`).
 */
read: boolean, };

export type NotificationList = { notifications: Array<Notification>, next_cursor: string | null, 
/**
 * How many of the user's notifications are unread (extension).
 */
unread_count: number, };

/**
 * `POST /notifications/read` (extension): marks the caller's notifications read, all of
 * them or up to (and including) `up_to`.
 */
export type NotificationsReadRequest = { up_to?: string, };

/**
 * `POST /notify` (service token).
 */
export type NotifyRequest = { user_id: string, title: string, body: string, url?: string, };

/**
 * `POST /auth/oidc/exchange`.
 */
export type OidcExchangeRequest = { code: string, };

export type OidcProvider = { id: string, name: string, };

/**
 * `GET /auth/providers`.
 */
export type ProviderList = { providers: Array<OidcProvider>, };

/**
 * Keys of a browser push subscription (`PushSubscription.toJSON().keys`).
 */
export type PushKeys = { 
/**
 * The browser's P-256 public key, base64url.
 */
p256dh: string, 
/**
 * The browser's 16-byte auth secret, base64url.
 */
auth: string, };

/**
 * The JSON inside a push notification (after decryption), for service workers.
 */
export type PushPayload = { "type": "message", conversation_id: string, seq: number, 
/**
 * The group's name, or null for a direct conversation.
 */
group: string | null, sender: string, body: string | null, kind: MessageKind, 
/**
 * Where the app should open.
 */
url: string, } | { "type": "clear", conversation_id: string, seq: number, } | { "type": "notification", id: string, title: string, body: string, 
/**
 * Where the app should open (a path or an https URL), if anywhere.
 */
url: string | null, };

export type PushSubscription = { id: string, endpoint: string, created_at: string, };

export type PushSubscriptionList = { subscriptions: Array<PushSubscription>, };

/**
 * `POST /push/subscriptions` (extension): the output of `PushSubscription.toJSON()`.
 */
export type PushSubscriptionRequest = { endpoint: string, keys: PushKeys, };

/**
 * `DELETE /push/subscriptions` (extension).
 */
export type PushUnsubscribeRequest = { endpoint: string, };

/**
 * One emoji's reactions on a message.
 */
export type Reaction = { emoji: string, count: number, 
/**
 * Whether the caller is among those who reacted with it.
 */
me: boolean, };

/**
 * Who reacted with one emoji (`GET /conversations/{id}/messages/{seq}/reactions`,
 * extension).
 */
export type ReactionUsers = { emoji: string, users: Array<User>, };

export type ReactionUsersList = { reactions: Array<ReactionUsers>, };

export type ReadMarker = { conversation_id: string, last_read_seq: number, unread_count: number, };

export type ReadRequest = { seq: number, };

export type RefreshRequest = { refresh_token: string, };

export type RegisterRequest = { email?: string, phone?: string, username: string, password: string, display_name?: string, 
/**
 * Needed when registration is by invite (`GET /auth/registration` says `invite`).
 */
invite_code?: string, };

/**
 * `GET /auth/registration`.
 */
export type RegistrationInfo = { mode: RegistrationMode, };

export type RegistrationInvite = { code: string, 
/**
 * Uses left.
 */
uses: number, expires_at: string | null, 
/**
 * When and by whom it was made (extensions; on `GET /admin/registration-invites`).
 */
created_at: string | null, created_by: string | null, 
/**
 * What `DELETE /admin/registration-invites/{id}` takes (extension; on the list only).
 */
id: string | null, };

/**
 * `GET /admin/registration-invites` (extension): the invites with uses left and not expired.
 */
export type RegistrationInviteList = { invites: Array<RegistrationInvite>, };

export type RegistrationMode = "open" | "invite" | "closed";

export type Report = { id: string, reporter: User, 
/**
 * The reported user (for a message: its author).
 */
user: User | null, message: Message | null, reason: string, created_at: string, status: ReportStatus, 
/**
 * The ID of the admin who resolved it.
 */
resolved_by: string | null, 
/**
 * When it was resolved, and the admin's note (extensions).
 */
resolved_at: string | null, note: string | null, 
/**
 * For a message: up to three messages before and after it (extension), oldest first.
 */
context: Array<Message>, };

export type ReportList = { reports: Array<Report>, };

/**
 * `POST /reports`: a user (`user_id`) or a message (`conversation_id` + `seq`).
 */
export type ReportRequest = { reason: string, user_id?: string, conversation_id?: string, seq?: number, };

export type ReportStatus = "open" | "resolved";

export type ResolveReportRequest = { note?: string, };

export type Role = "member" | "admin" | "owner";

export type RoleRequest = { role: Role, };

/**
 * `GET /search/messages`: matches, newest first.
 */
export type SearchResults = { messages: Array<Message>, 
/**
 * Pass as `before` for the next page; null at the end.
 */
next_cursor: string | null, };

export type SendMessageRequest = { client_id: string, body: string, kind?: MessageKind, attachment_ids?: Array<string>, reply_to_seq?: number, };

/**
 * Frames the server sends on `/api/v1/ws`. Durable events carry `stream_pos`.
 */
export type ServerFrame = { "type": "ready", user: User, stream_pos: number, } | { "type": "ack", client_id: string, message: Message, } | { "type": "error", client_id?: string, code: ErrorCode, message: string, } | { "type": "synced", stream_pos: number, } | { "type": "pong" } | { "type": "message", message: Message, stream_pos?: number, } | { "type": "message.updated", message: Message, stream_pos?: number, } | { "type": "message.deleted", conversation_id: string, seq: number, 
/**
 * `everyone` or `me` (extension).
 */
scope?: DeleteScope, stream_pos?: number, } | { "type": "typing", conversation_id: string, user_id: string, typing: boolean, } | { "type": "presence", user_id: string, online: boolean, last_seen_at: string | null, } | { "type": "read", conversation_id: string, user_id: string, seq: number, stream_pos?: number, } | { "type": "friend.request", request: FriendRequest, stream_pos?: number, } | { "type": "friend.request.removed", request_id: string, stream_pos?: number, } | { "type": "friend.added", user: User, stream_pos?: number, } | { "type": "friend.removed", user_id: string, stream_pos?: number, } | { "type": "conversation.updated", conversation: Conversation, stream_pos?: number, } | { "type": "member.added", conversation_id: string, user_id: string, role?: Role, stream_pos?: number, } | { "type": "member.removed", conversation_id: string, user_id: string, role?: Role, stream_pos?: number, } | { "type": "member.updated", conversation_id: string, user_id: string, role?: Role, stream_pos?: number, } | { "type": "reaction", conversation_id: string, seq: number, user_id: string, emoji: string, added: boolean, stream_pos?: number, } | { "type": "notification", id: string, title: string, body: string, url: string | null, created_at: string, stream_pos?: number, };

/**
 * A live login session (`GET /sessions`, extension).
 */
export type Session = { id: string, created_at: string, 
/**
 * The session this request was made with.
 */
current: boolean, };

export type SessionList = { sessions: Array<Session>, };

export type Stats = { users: number, users_active_24h: number, messages_24h: number, conversations: number, groups: number, 
/**
 * WebSocket connections on every node.
 */
connections: number, nodes: Array<NodeStats>, 
/**
 * Messages in each of the last 24 hours, oldest first (extension; the last entry is
 * the hour under way).
 */
messages_per_hour: Array<number>, 
/**
 * Bytes of uploads stored (extension).
 */
media_bytes: number, };

/**
 * `POST /admin/users/{id}/suspend`: `until` null suspends until lifted.
 */
export type SuspendRequest = { reason: string, until: string | null, };

export type TokenPair = { access_token: string, refresh_token: string, };

export type UpdateGroupRequest = { name?: string, description?: string, avatar_media_id?: string, public?: boolean, };

export type UpdateProfileRequest = { display_name?: string, bio?: string, avatar_media_id?: string, 
/**
 * Show message text in push notifications (extension).
 */
notification_previews?: boolean, };

/**
 * `GET /users/me/usage` (extension): the caller's uploads against their quotas.
 */
export type UploadUsage = { bytes_today: number, bytes_total: number, 
/**
 * Null when there is no limit.
 */
daily_limit: number | null, total_limit: number | null, };

/**
 * A user as others see them. Email and phone never appear here.
 */
export type User = { id: string, username: string, display_name: string, avatar_url: string | null, bio: string | null, online: boolean, last_seen_at: string | null, 
/**
 * True for bots (`POST /bots`), false for people.
 */
bot: boolean, };

export type UserIdRequest = { user_id: string, };

export type UserIdsRequest = { user_ids: Array<string>, };

export type UserList = { users: Array<User>, next_cursor: string | null, };

/**
 * `GET /push/vapid-public-key` (extension): the `applicationServerKey` for `subscribe()`.
 */
export type VapidPublicKey = { 
/**
 * Uncompressed P-256 point, base64url without padding.
 */
public_key: string, };

export type Webhook = { id: string, name: string, created_at: string, 
/**
 * Who made it (extension).
 */
created_by: string | null, };

/**
 * A new webhook: `url` (with its secret) is shown only here.
 */
export type WebhookCreated = { id: string, name: string, url: string, created_at: string, };

export type WebhookList = { webhooks: Array<Webhook>, };

/**
 * The webhook a message came through.
 */
export type WebhookRef = { id: string, name: string, };

/** WebSocket close codes of the contract. */
export const CLOSE_CODE = {
  UNAUTHENTICATED: 4001,
  FORBIDDEN: 4003,
  TOO_SLOW: 4008,
  FRAME_TOO_LARGE: 4009,
  RATE_LIMITED: 4029,
  GOING_AWAY: 1001,
  TRY_AGAIN_LATER: 1013,
} as const;

export type CloseCode = (typeof CLOSE_CODE)[keyof typeof CLOSE_CODE];

/** Largest accepted message body, in bytes. */
export const MAX_MESSAGE_BODY = 16384;

/** Largest accepted WebSocket text frame, in bytes; larger ones close the socket with 4009. */
export const MAX_WS_FRAME = 65536;
