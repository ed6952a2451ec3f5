// The REST client of /api/v1: one method per endpoint the app uses, bearer auth with one
// refresh-and-retry on 401, and the contract's error body turned into an ApiError.
import { ApiError } from './errors';
import type { TokenManager } from './tokens';
import type {
  AdminUserList,
  AuditList,
  AuthResponse,
  BotCreated,
  BotList,
  BotToken,
  BlockList,
  Conversation,
  ConversationList,
  CreateGroupRequest,
  DeleteScope,
  ErrorBody,
  FriendAdded,
  FriendList,
  FriendRequest,
  FriendRequestList,
  GroupDirectory,
  Invite,
  Me,
  Member,
  MemberList,
  Message,
  MessageList,
  MuteRequest,
  MuteState,
  NotificationList,
  ProviderList,
  RegistrationInfo,
  RegistrationInvite,
  RegistrationInviteList,
  ReportList,
  ReportRequest,
  ReportStatus,
  CreatedId,
  Stats,
  UploadUsage,
  WebhookCreated,
  WebhookList,
  PushSubscriptionRequest,
  ReactionUsersList,
  SearchResults,
  RegisterRequest,
  Role,
  SendMessageRequest,
  TokenPair,
  UpdateGroupRequest,
  UpdateProfileRequest,
  User,
  UserList,
  VapidPublicKey,
} from './types';

export type FetchFn = typeof fetch;

export async function parseError(res: Response): Promise<ApiError> {
  let code: string = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as Partial<ErrorBody> | null;
    if (body && body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    /* not JSON */
  }
  const ra = res.headers.get('Retry-After');
  return new ApiError(res.status, code, message, ra ? Number(ra) || null : null);
}

/** Raw POST /auth/refresh, used by the TokenManager. */
export function makeRefreshCall(fetchFn: FetchFn, base = '/api/v1') {
  return async (refresh_token: string): Promise<TokenPair> => {
    let res: Response;
    try {
      res = await fetchFn(`${base}/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token }),
      });
    } catch {
      throw new ApiError(0, 'network', 'Network error');
    }
    if (!res.ok) throw await parseError(res);
    return res.json();
  };
}

export interface RequestOpts {
  auth?: boolean;
  query?: Record<string, string | number | undefined | null>;
}

/** REST client for /api/v1 with bearer auth and one refresh-and-retry on 401. */
export class Api {
  constructor(
    private tokens: TokenManager,
    private fetchFn: FetchFn = (...a) => fetch(...a),
    private base = '/api/v1',
  ) {}

  async request<T>(method: string, path: string, body?: unknown, opts: RequestOpts = {}): Promise<T> {
    const auth = opts.auth ?? true;
    let url = this.base + path;
    if (opts.query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
      const s = qs.toString();
      if (s) url += `?${s}`;
    }
    const send = async (token: string | null) => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (token) headers.Authorization = `Bearer ${token}`;
      try {
        return await this.fetchFn(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch {
        throw new ApiError(0, 'network', 'Network error');
      }
    };
    let res = await send(auth ? await this.tokens.getAccessToken() : null);
    if (auth && res.status === 401) {
      res = await send(await this.tokens.refresh());
    }
    if (!res.ok) throw await parseError(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  // Accounts
  register(b: RegisterRequest) {
    return this.request<AuthResponse>('POST', '/auth/register', b, { auth: false });
  }
  login(login: string, password: string) {
    return this.request<AuthResponse>('POST', '/auth/login', { login, password }, { auth: false });
  }
  logout(refresh_token: string) {
    // Needs the bearer token too (every endpoint but register, login, refresh and health does).
    return this.request<void>('POST', '/auth/logout', { refresh_token });
  }
  me() {
    return this.request<Me>('GET', '/users/me');
  }
  updateMe(b: UpdateProfileRequest) {
    return this.request<Me>('PATCH', '/users/me', b);
  }
  searchUsers(q: string) {
    return this.request<UserList>('GET', '/users', undefined, { query: { q } }).then((r) => r.users);
  }
  getUser(id: string) {
    return this.request<User>('GET', `/users/${encodeURIComponent(id)}`);
  }

  // Friends and blocks
  sendFriendRequest(user_id: string) {
    return this.request<FriendRequest | FriendAdded>('POST', '/friends/requests', { user_id });
  }
  friendRequests() {
    return this.request<FriendRequestList>('GET', '/friends/requests');
  }
  acceptRequest(id: string) {
    return this.request<FriendAdded>('POST', `/friends/requests/${encodeURIComponent(id)}/accept`);
  }
  declineRequest(id: string) {
    return this.request<unknown>('POST', `/friends/requests/${encodeURIComponent(id)}/decline`);
  }
  cancelRequest(id: string) {
    return this.request<unknown>('DELETE', `/friends/requests/${encodeURIComponent(id)}`);
  }
  friends() {
    return this.request<FriendList>('GET', '/friends').then((r) => r.friends);
  }
  removeFriend(user_id: string) {
    return this.request<unknown>('DELETE', `/friends/${encodeURIComponent(user_id)}`);
  }
  block(user_id: string) {
    return this.request<unknown>('PUT', `/blocks/${encodeURIComponent(user_id)}`);
  }
  unblock(user_id: string) {
    return this.request<unknown>('DELETE', `/blocks/${encodeURIComponent(user_id)}`);
  }
  blocks(): Promise<User[]> {
    return this.request<BlockList>('GET', '/blocks').then((r) => r.blocks.map((b) => b.user));
  }

  // Conversations
  openDirect(user_id: string) {
    return this.request<Conversation>('POST', '/conversations/direct', { user_id });
  }
  createGroup(b: CreateGroupRequest) {
    return this.request<Conversation>('POST', '/groups', b);
  }
  conversations() {
    return this.request<ConversationList>('GET', '/conversations', undefined, { query: { limit: 200 } }).then(
      (r) => r.conversations,
    );
  }
  conversation(id: string) {
    return this.request<Conversation>('GET', `/conversations/${encodeURIComponent(id)}`);
  }
  updateGroup(id: string, b: UpdateGroupRequest) {
    return this.request<Conversation>('PATCH', `/groups/${encodeURIComponent(id)}`, b);
  }
  groupDirectory(q: string) {
    return this.request<GroupDirectory>('GET', '/groups', undefined, { query: { q } }).then((r) => r.groups);
  }
  joinGroup(id: string) {
    return this.request<Conversation>('POST', `/groups/${encodeURIComponent(id)}/join`);
  }
  createInvite(id: string) {
    return this.request<Invite>('POST', `/groups/${encodeURIComponent(id)}/invites`);
  }
  acceptInvite(code: string) {
    return this.request<Conversation>('POST', `/invites/${encodeURIComponent(code)}/accept`);
  }
  members(id: string) {
    return this.request<MemberList>('GET', `/groups/${encodeURIComponent(id)}/members`).then((r) => r.members);
  }
  addMembers(id: string, user_ids: string[]) {
    return this.request<MemberList>('POST', `/groups/${encodeURIComponent(id)}/members`, { user_ids });
  }
  removeMember(id: string, user_id: string) {
    return this.request<unknown>('DELETE', `/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(user_id)}`);
  }
  setRole(id: string, user_id: string, role: Exclude<Role, 'owner'>) {
    return this.request<Member>('PATCH', `/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(user_id)}`, { role });
  }
  transfer(id: string, user_id: string) {
    return this.request<Conversation>('POST', `/groups/${encodeURIComponent(id)}/transfer`, { user_id });
  }

  // Notifications (extensions)
  vapidPublicKey() {
    return this.request<VapidPublicKey>('GET', '/push/vapid-public-key').then((r) => r.public_key);
  }
  addPushSubscription(b: PushSubscriptionRequest) {
    return this.request<unknown>('POST', '/push/subscriptions', b);
  }
  removePushSubscription(endpoint: string) {
    return this.request<void>('DELETE', '/push/subscriptions', { endpoint });
  }
  mute(id: string, b: MuteRequest) {
    return this.request<MuteState>('PUT', `/conversations/${encodeURIComponent(id)}/mute`, b);
  }
  unmute(id: string) {
    return this.request<void>('DELETE', `/conversations/${encodeURIComponent(id)}/mute`);
  }

  // Messages
  messages(id: string, q: { before_seq?: number; after_seq?: number; limit?: number }) {
    return this.request<MessageList>(
      'GET',
      `/conversations/${encodeURIComponent(id)}/messages`,
      undefined,
      { query: q },
    );
  }
  /**
   * Sets the media cookie (HttpOnly, path /api/v1/media) so <img> and <video> can load media:
   * browsers send no Authorization header for those. Called with each new access token.
   */
  async setMediaCookie(token: string): Promise<void> {
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}/media/cookie`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, credentials: 'same-origin' });
    } catch {
      throw new ApiError(0, 'network', 'Network error');
    }
    if (!res.ok) throw await parseError(res);
  }

  sendMessage(id: string, b: SendMessageRequest) {
    return this.request<Message>('POST', `/conversations/${encodeURIComponent(id)}/messages`, b);
  }
  editMessage(id: string, seq: number, body: string) {
    return this.request<Message>('PATCH', `/conversations/${encodeURIComponent(id)}/messages/${seq}`, { body });
  }
  deleteMessage(id: string, seq: number, forWhom: DeleteScope) {
    return this.request<unknown>('DELETE', `/conversations/${encodeURIComponent(id)}/messages/${seq}`, undefined, {
      query: { for: forWhom },
    });
  }
  /** `emoji` is percent-encoded here (one grapheme, at most 32 bytes). */
  react(id: string, seq: number, emoji: string, on: boolean) {
    return this.request<void>(on ? 'PUT' : 'DELETE', `/conversations/${encodeURIComponent(id)}/messages/${seq}/reactions/${encodeURIComponent(emoji)}`);
  }
  /** Who reacted with what (extension). */
  reactionUsers(id: string, seq: number) {
    return this.request<ReactionUsersList>('GET', `/conversations/${encodeURIComponent(id)}/messages/${seq}/reactions`).then((r) => r.reactions);
  }
  /** Message search, newest first; `before` is the previous page's `next_cursor`. */
  searchMessages(q: { q: string; conversation_id?: string; limit?: number; before?: string | null }) {
    return this.request<SearchResults>('GET', '/search/messages', undefined, { query: q });
  }
  markRead(id: string, seq: number) {
    return this.request<unknown>('POST', `/conversations/${encodeURIComponent(id)}/read`, { seq });
  }

  // Sign-in options (no token): registration mode, single sign-on providers, the code exchange
  registrationInfo() {
    return this.request<RegistrationInfo>('GET', '/auth/registration', undefined, { auth: false });
  }
  providers() {
    return this.request<ProviderList>('GET', '/auth/providers', undefined, { auth: false }).then((r) => r.providers);
  }
  oidcExchange(code: string) {
    return this.request<AuthResponse>('POST', '/auth/oidc/exchange', { code }, { auth: false });
  }

  // Account (extensions)
  changePassword(current_password: string, new_password: string) {
    return this.request<void>('POST', '/users/me/password', { current_password, new_password });
  }
  usage() {
    return this.request<UploadUsage>('GET', '/users/me/usage');
  }
  /** A user (`{user_id}`) or a message (`{conversation_id, seq}`), with a reason. */
  report(b: ReportRequest) {
    return this.request<CreatedId>('POST', '/reports', b);
  }

  // Bots, webhooks, service notifications
  bots() {
    return this.request<BotList>('GET', '/bots').then((r) => r.bots);
  }
  createBot(username: string, display_name?: string) {
    return this.request<BotCreated>('POST', '/bots', { username, ...(display_name ? { display_name } : {}) });
  }
  rotateBotToken(id: string) {
    return this.request<BotToken>('POST', `/bots/${encodeURIComponent(id)}/token`).then((r) => r.token);
  }
  deleteBot(id: string) {
    return this.request<void>('DELETE', `/bots/${encodeURIComponent(id)}`);
  }
  webhooks(cid: string) {
    return this.request<WebhookList>('GET', `/conversations/${encodeURIComponent(cid)}/webhooks`).then((r) => r.webhooks);
  }
  createWebhook(cid: string, name: string) {
    return this.request<WebhookCreated>('POST', `/conversations/${encodeURIComponent(cid)}/webhooks`, { name });
  }
  deleteWebhook(cid: string, id: string) {
    return this.request<void>('DELETE', `/conversations/${encodeURIComponent(cid)}/webhooks/${encodeURIComponent(id)}`);
  }
  notifications(q: { before?: string | null; limit?: number } = {}) {
    return this.request<NotificationList>('GET', '/notifications', undefined, { query: q });
  }
  /** Marks read up to (and including) `up_to`, or all of them. */
  markNotificationsRead(up_to?: string) {
    return this.request<void>('POST', '/notifications/read', up_to ? { up_to } : {});
  }

  // System admins (every /admin endpoint is 404 for anyone else)
  adminUsers(q: { q?: string; cursor?: string | null; limit?: number }) {
    return this.request<AdminUserList>('GET', '/admin/users', undefined, { query: q });
  }
  suspend(id: string, reason: string, until: string | null) {
    return this.request<void>('POST', `/admin/users/${encodeURIComponent(id)}/suspend`, { reason, until });
  }
  unsuspend(id: string) {
    return this.request<void>('POST', `/admin/users/${encodeURIComponent(id)}/unsuspend`);
  }
  setSystemAdmin(id: string, admin: boolean) {
    return this.request<void>('POST', `/admin/users/${encodeURIComponent(id)}/${admin ? 'grant-admin' : 'revoke-admin'}`);
  }
  moderateDelete(cid: string, seq: number) {
    return this.request<void>('DELETE', `/admin/conversations/${encodeURIComponent(cid)}/messages/${seq}`);
  }
  reports(status: ReportStatus) {
    return this.request<ReportList>('GET', '/admin/reports', undefined, { query: { status } }).then((r) => r.reports);
  }
  resolveReport(id: string, note?: string) {
    return this.request<void>('POST', `/admin/reports/${encodeURIComponent(id)}/resolve`, note ? { note } : {});
  }
  audit(q: { cursor?: string | null; limit?: number }) {
    return this.request<AuditList>('GET', '/admin/audit', undefined, { query: q });
  }
  stats() {
    return this.request<Stats>('GET', '/admin/stats');
  }
  registrationInvites() {
    return this.request<RegistrationInviteList>('GET', '/admin/registration-invites').then((r) => r.invites);
  }
  createRegistrationInvite(uses: number, expires_at: string | null) {
    return this.request<RegistrationInvite>('POST', '/admin/registration-invites', { uses, expires_at });
  }
  revokeRegistrationInvite(id: string) {
    return this.request<void>('DELETE', `/admin/registration-invites/${encodeURIComponent(id)}`);
  }
}
