// The logged-in session: REST, the WebSocket, the outbox, the service notifications and all the
// stores the views read; signing in (password, registration, single sign-on) and out.
import { get, writable, type Writable } from 'svelte/store';
import { Api, makeRefreshCall } from './api';
import {
  addPending,
  applyDeleted,
  applyMessage,
  applyReactionEvent,
  applyPresence,
  applyRead,
  applyReadMarkers,
  applyUpdated,
  conversationTitle,
  displayName,
  dropPending,
  emptyState,
  failPending,
  markUnavailable,
  maxSeq,
  mergeHistory,
  mergeNewer,
  replaceHistory,
  replaceWithWindow,
  removeMessageLocally,
  setConversations,
  setMuted,
  setTyping,
  totalUnread,
  upsertConversation,
  withMyReactions,
  type ChatState,
} from './chat';
import { fragmentWithoutAuth, OIDC_EXCHANGE_FAILED, oidcErrorText, parseAuthFragment } from './auth';
import { ApiError, friendlyError } from './errors';
import { applyFirstPage, applyLiveNotification, applyOlderPage, emptyInbox, markReadUpTo, notificationTarget, type InboxState } from './inbox';
import { titleWithUnread } from './format';
import { defaultLock } from './lock';
import { messagePreviewText, uploadMedia, type Upload } from './media';
import { makeSnapshot, OfflineStore, stateFromSnapshot } from './offline';
import { hasMine, MAX_REACTIONS_PER_USER, myReactionCount } from './reactions';
import {
  base64UrlToBytes,
  isMuted,
  muteRequest,
  PUSH_TEXT,
  PushSetupError,
  shouldPageNotify,
  subscribeErrorText,
  subscriptionBody,
  viewTarget,
  withTimeout,
} from './notify';
import { Outbox, sendFrame } from './outbox';
import { PresenceTrust } from './presence';
import { Realtime, wsUrl, type ConnState } from './realtime';
import { navigate } from './router';
import { StreamPos } from './streampos';
import { TokenManager } from './tokens';
import { TypingSender } from './typing';
import type { AuthResponse, Conversation, FriendRequest, Me, Media, Member, Message, MessageKind, MessageList, OutboxItem, ReactionUsers, RegisterRequest, SearchResults, ServerFrame, User } from './types';

/** Messages asked for when a chat opens (older ones as it is scrolled up). */
const LATEST_PAGE = 50;
/** Service notifications per page of the bell's list. */
const INBOX_PAGE = 20;

const SESSION_ENDED = 'Your session has ended. Please log in again.';
/** Another tab's reason for ending the session (written and removed at once: only the event counts). */
const NOTICE_KEY = 'chatnode.auth_notice';
/** The account this browser last signed in with single sign-on (Settings offers "Set a password"). */
export const SSO_KEY = 'chatnode.sso_user';

export type AuthStatus = 'loading' | 'anon' | 'authed';

/** Web Push on this browser, as the Settings page shows it. */
export interface PushState {
  /** Service worker + PushManager + Notification available (and a secure context). */
  supported: boolean;
  /** Notification.permission, or 'unsupported'. */
  permission: NotificationPermission | 'unsupported';
  /** This browser has a push subscription registered with the server for this account. */
  subscribed: boolean;
  /** Subscribing or unsubscribing right now. */
  busy: boolean;
  /** The last failure, in plain words. */
  error: string | null;
}

/** How long `pushManager.subscribe()` may take before we say the push service is unreachable. */
const SUBSCRIBE_TIMEOUT_MS = 15_000;

export interface Toast {
  id: number;
  text: string;
  kind: 'error' | 'info';
}

function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // Fallback for non-secure contexts (plain http on a LAN address).
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The server's answer for a conversation this user may not read: 404, which also hides whether
 * it exists at all (403 means an action was refused, not that the conversation is gone).
 */
function isNotReadable(e: unknown): boolean {
  return e instanceof ApiError && e.status === 404;
}

/** A page that holds seq 1 is the start of the conversation: nothing older to ask for. */
function startsAtOne(list: Message[]): boolean {
  return list.some((m) => m.seq === 1);
}

/** The logged-in session: REST, the WebSocket, the outbox and all the stores the views read. */
export class Session {
  readonly tokens: TokenManager;
  readonly api: Api;
  readonly status = writable<AuthStatus>('loading');
  readonly me = writable<Me | null>(null);
  readonly chat = writable<ChatState>(emptyState());
  readonly conn = writable<ConnState>('offline');
  /**
   * Whether the online/offline state of people can be shown: only while connected and after
   * fresh data came in on this connection (see PresenceTrust). Views show "unknown" otherwise.
   */
  readonly presenceTrusted = writable(false);
  private trust = new PresenceTrust((t) => this.presenceTrusted.set(t));
  readonly friends = writable<User[]>([]);
  readonly requests = writable<{ incoming: FriendRequest[]; outgoing: FriendRequest[] }>({ incoming: [], outgoing: [] });
  readonly blocks = writable<User[]>([]);
  readonly users = writable<Record<string, User>>({});
  readonly toasts = writable<Toast[]>([]);
  readonly active = writable<string | null>(null);
  /** Bumped when a group's membership changed (panels reload their member list). */
  readonly membersVersion = writable(0);
  readonly notificationsEnabled = writable(false);
  readonly push = writable<PushState>({ supported: false, permission: 'unsupported', subscribed: false, busy: false, error: null });
  /**
   * A message to bring into view (a search result was chosen): the chat view scrolls to it and
   * highlights it briefly, then clears this. `n` makes choosing the same message again count.
   */
  readonly focus = writable<{ cid: string; seq: number; n: number } | null>(null);
  /** Showing the last loaded chats from this browser's copy: the server could not be reached at start. */
  readonly offlineStart = writable(false);
  /**
   * Why the login page is shown (the session ended, the account was suspended — with the reason
   * and until when —, a single sign-on failed); null once someone logs in.
   */
  readonly authNotice = writable<string | null>(null);
  /** Service notifications (the bell). */
  readonly inbox = writable<InboxState>(emptyInbox());
  private focusN = 0;
  private offline: OfflineStore;
  /** Conversations whose messages were loaded from the server in this session (not only the offline copy). */
  private fresh = new Set<string>();
  /** Group members, one request per group until something changes (member events, a reconnect). */
  private memberLists = new Map<string, Promise<Member[]>>();
  /** Who reacted, per message, until a reaction on it changes. */
  private reactionLists = new Map<string, Promise<ReactionUsers[]>>();
  private snapshotTimer: ReturnType<typeof setTimeout> | null = null;
  private firstLoadTimer: ReturnType<typeof setTimeout> | null = null;
  private loadedSinceLive = false;
  /** Between `ready` and live: events are a `sync` replay of what happened while away. */
  private replaying = false;
  private swRegistration: Promise<ServiceWorkerRegistration | null> = Promise.resolve(null);

  private rt: Realtime | null = null;
  private outbox: Outbox | null = null;
  private streamPos: StreamPos | null = null;
  private typingSenders = new Map<string, TypingSender>();
  private fetchingConv = new Set<string>();
  private fetchingUser = new Set<string>();
  private resendTimer: ReturnType<typeof setInterval> | null = null;
  private toastId = 0;
  private storage: Storage;

  constructor(storage: Storage = localStorage) {
    this.storage = storage;
    this.offline = new OfflineStore(storage);
    this.tokens = new TokenManager({
      storage,
      lock: defaultLock(),
      refreshCall: makeRefreshCall((...a) => fetch(...a)),
      onSessionEnded: (why) => this.sessionRefused(why),
      // Every new access token renews the media cookie (same lifetime), so <img>/<video> keep loading.
      onAccessToken: (t) => this.renewMediaCookie(t),
    });
    this.api = new Api(this.tokens);
    this.notificationsEnabled.set(storage.getItem('chatnode.notify') === '1' && typeof Notification !== 'undefined' && Notification.permission === 'granted');
    if (typeof window !== 'undefined') {
      window.addEventListener('storage', (e) => {
        // Another tab logged out.
        if (e.key === 'chatnode.refresh_token' && e.newValue === null && get(this.status) === 'authed') this.endSession();
        // …because the account was suspended: say so here too.
        if (e.key === NOTICE_KEY && e.newValue) this.authNotice.set(e.newValue);
      });
      window.addEventListener('online', () => {
        if (get(this.offlineStart) && !this.rt) void this.init();
        else this.rt?.reconnectNow();
      });
      // The offline copy is written a moment after changes, and when the page goes away.
      window.addEventListener('pagehide', () => this.saveSnapshot());
      window.addEventListener('offline', () => this.conn.set('offline'));
      document.addEventListener('visibilitychange', () => this.visibilityChanged());
      window.addEventListener('focus', () => this.markActiveRead());
    }
    this.conn.subscribe((st) => this.trust.connection(st));
    this.active.subscribe(() => this.updateView());
    this.chat.subscribe((s) => {
      if (typeof document !== 'undefined') document.title = titleWithUnread(totalUnread(s));
      this.scheduleSnapshot();
    });
  }

  toast(text: string, kind: Toast['kind'] = 'error'): void {
    const id = ++this.toastId;
    // At most three at a time (the oldest goes first), so a burst never covers the page.
    this.toasts.update((t) => [...t, { id, text, kind }].slice(-3));
    setTimeout(() => this.dismissToast(id), 6000);
  }
  dismissToast(id: number): void {
    this.toasts.update((t) => t.filter((x) => x.id !== id));
  }
  /** Runs an action, showing a friendly toast on failure. */
  async attempt<T>(fn: () => Promise<T>, ok?: string): Promise<T | undefined> {
    try {
      const r = await fn();
      if (ok) this.toast(ok, 'info');
      return r;
    } catch (e) {
      this.toast(friendlyError(e));
      return undefined;
    }
  }

  // ---------- media cookie and uploads ----------

  private mediaCookie: Promise<void> = Promise.resolve();
  private mediaCookieAt = 0;

  private renewMediaCookie(token: string): Promise<void> {
    this.mediaCookieAt = Date.now();
    this.mediaCookie = this.api.setMediaCookie(token).catch(() => undefined);
    return this.mediaCookie;
  }

  /** Waits (briefly) for the media cookie of the current token. */
  private async mediaCookieReady(): Promise<void> {
    await Promise.race([this.mediaCookie, new Promise((r) => setTimeout(r, 5000))]);
  }

  /**
   * Called when a media element failed to load: the cookie may have expired (a sleeping tab).
   * Renews it (at most every few seconds) and resolves when the element can retry.
   */
  async refreshMediaAccess(): Promise<void> {
    if (get(this.status) !== 'authed') return;
    if (Date.now() - this.mediaCookieAt < 5000) return this.mediaCookie;
    try {
      const token = await this.tokens.getAccessToken();
      // Getting the token may have refreshed it, which renewed the cookie already.
      if (Date.now() - this.mediaCookieAt < 5000) return this.mediaCookie;
      await this.renewMediaCookie(token);
    } catch {
      /* offline: the element keeps its fallback */
    }
  }

  /** Uploads one file (raw body, progress events). */
  upload(file: Blob, name: string, onProgress?: (loaded: number, total: number) => void, extra?: { contentType?: string; query?: Record<string, string | number> }): Upload {
    return uploadMedia(file, name, {
      getToken: () => this.tokens.getAccessToken(),
      refresh: () => this.tokens.refresh(),
      onProgress,
      ...extra,
    });
  }

  // ---------- lifecycle ----------

  private initializing: Promise<void> | null = null;

  /** Starts (or, after an offline start, resumes) the session; one at a time. */
  init(): Promise<void> {
    this.initializing ??= this.doInit().finally(() => (this.initializing = null));
    return this.initializing;
  }

  private async doInit(): Promise<void> {
    // Back from a single sign-on: `#oidc_code=…` is traded for tokens (like a login),
    // `#oidc_error=…` says why it failed. Either way the fragment goes from the address bar.
    const frag = typeof location !== 'undefined' ? parseAuthFragment(location.hash) : null;
    if (frag) {
      history.replaceState(history.state, '', `${location.pathname}${location.search}${fragmentWithoutAuth(location.hash)}`);
      if (frag.kind === 'error') this.authNotice.set(oidcErrorText(frag.code));
      else if (await this.signInWithCode(frag.code)) return;
    }
    if (!this.tokens.hasSession()) {
      this.status.set('anon');
      return;
    }
    // The chats this browser showed last, drawn at once (in the page's first task) while the
    // session is renewed; replaced by the server's answers as they come.
    if (get(this.status) === 'loading') {
      const snap = this.offline.load();
      if (snap) this.startOffline(snap.me, 'connecting');
    }
    try {
      await this.tokens.refresh();
      // A reload on a chat: ask for it and its messages now, with the profile, rather than after.
      this.prefetchRoute();
      const me = await this.api.me();
      await this.mediaCookieReady();
      this.startSession(me);
    } catch (e) {
      // 401: the session ended; 403: the account is suspended (the notice says why).
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        if (get(this.offlineStart)) this.endSession();
        this.offline.clear();
        this.offlineStart.set(false);
        this.status.set('anon');
      } else {
        // Server unreachable: keep the session and retry shortly. Meanwhile show the last
        // loaded chats from this browser's copy, if there is one.
        const snap = get(this.status) === 'authed' ? null : this.offline.load();
        if (snap) this.startOffline(snap.me);
        else if (get(this.status) !== 'authed') this.status.set('loading');
        this.conn.set('offline');
        setTimeout(() => {
          if (get(this.status) !== 'anon' && (!this.rt || get(this.offlineStart))) void this.init();
        }, 3000);
      }
    }
  }

  private prefetched: { id: string; conv: Promise<Conversation> | null; page: Promise<MessageList> | null } | null = null;

  /** The answer asked for at start (once; null when there is none for this chat). */
  private takePrefetched<K extends 'conv' | 'page'>(id: string, k: K): NonNullable<NonNullable<Session['prefetched']>[K]> | null {
    const p = this.prefetched;
    if (!p || p.id !== id) return null;
    const v = p[k];
    p[k] = null;
    if (!p.conv && !p.page) this.prefetched = null;
    return (v ?? null) as never;
  }

  private prefetchRoute(): void {
    if (typeof location === 'undefined') return;
    const id = /^\/c\/([^/]+)$/.exec(location.pathname)?.[1];
    if (!id) return;
    const quiet = <T>(p: Promise<T>) => (p.catch(() => undefined), p);
    this.prefetched = { id, conv: get(this.chat).conversations[id] ? null : quiet(this.api.conversation(id)), page: quiet(this.api.messages(id, { limit: LATEST_PAGE })) };
  }

  /** Shows the offline copy of the chats (no server): read-only until the server answers. */
  private startOffline(user: Me, conn: ConnState = 'offline'): void {
    const snap = this.offline.load(user.id);
    if (!snap) return;
    this.conn.set(conn);
    this.offlineStart.set(true);
    this.me.set(snap.me);
    this.rememberUsers([snap.me, ...snap.conversations.flatMap((c) => (c.peer ? [c.peer] : []))]);
    this.outbox = new Outbox(this.storage, user.id);
    let st = stateFromSnapshot(snap);
    for (const item of this.outbox.list()) st = addPending(st, item);
    this.chat.set(st);
    this.status.set('authed');
  }

  /** Trades a single sign-on's one-time code for a session; false (with a notice) when refused. */
  private async signInWithCode(code: string): Promise<boolean> {
    let r: AuthResponse;
    try {
      r = await this.api.oidcExchange(code);
    } catch (e) {
      this.authNotice.set(e instanceof ApiError && e.status === 401 ? OIDC_EXCHANGE_FAILED : friendlyError(e));
      if (!this.tokens.hasSession()) this.status.set('anon');
      return false;
    }
    this.storage.setItem(SSO_KEY, r.user.id);
    await this.signedIn(r);
    return true;
  }

  /** Login, registration and single sign-on all end here. */
  private async signedIn(r: AuthResponse): Promise<void> {
    this.tokens.setTokens(r);
    await this.mediaCookieReady();
    this.startSession(r.user);
  }

  async login(login: string, password: string): Promise<void> {
    let r;
    try {
      r = await this.api.login(login, password);
    } catch (e) {
      // The server answers a wrong login or password with 401 `unauthenticated`, the same code
      // as an ended session: here it means the credentials, so say that.
      if (e instanceof ApiError && e.status === 401) throw new ApiError(401, 'invalid_credentials', e.message);
      throw e;
    }
    await this.signedIn(r);
  }

  async register(b: RegisterRequest): Promise<void> {
    await this.signedIn(await this.api.register(b));
  }

  async logout(): Promise<void> {
    try {
      // Get a valid access token first: a refresh would rotate the token we are revoking.
      await this.tokens.getAccessToken();
      // This browser should not keep getting the account's notifications after a logout.
      await this.unsubscribePush().catch(() => undefined);
      const rt = this.tokens.refreshToken;
      if (rt) await this.api.logout(rt);
    } catch {
      /* offline or already gone: forget it locally anyway */
    }
    this.outbox?.clear();
    this.endSession();
  }

  /**
   * The server refused to renew the session: it ended (401), or the account is suspended (403
   * `account_suspended`, whose message says why and until when: the login page shows it, here
   * and in this browser's other tabs).
   */
  private sessionRefused(why: ApiError): void {
    if (why.code === 'account_suspended') {
      const text = friendlyError(why);
      try {
        this.storage.setItem(NOTICE_KEY, text);
        this.storage.removeItem(NOTICE_KEY);
      } catch {
        /* storage full or blocked: this tab says it anyway */
      }
      this.endSession(text, true);
    } else this.endSession(SESSION_ENDED);
  }

  /**
   * Back to the login page. `notice` says why there; a later, vaguer reason (the socket's "session
   * ended" after a suspension was already explained) does not replace it unless `force`.
   */
  private endSession(notice?: string, force = false): void {
    const was = get(this.status);
    if (notice && (force || was !== 'anon' || !get(this.authNotice))) this.authNotice.set(notice);
    this.storage.removeItem(SSO_KEY);
    // This browser keeps no copy of an account that logged out (or whose session ended).
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    this.snapshotTimer = null;
    if (this.firstLoadTimer) clearTimeout(this.firstLoadTimer);
    this.firstLoadTimer = null;
    this.offline.clear();
    this.offlineStart.set(false);
    this.fresh.clear();
    this.memberLists.clear();
    this.reactionLists.clear();
    this.rt?.stop();
    this.rt = null;
    this.tokens.clear();
    if (this.resendTimer) clearInterval(this.resendTimer);
    this.resendTimer = null;
    this.outbox = null;
    this.streamPos = null;
    this.me.set(null);
    this.chat.set(emptyState());
    this.friends.set([]);
    this.requests.set({ incoming: [], outgoing: [] });
    this.blocks.set([]);
    this.users.set({});
    this.active.set(null);
    this.inbox.set(emptyInbox());
    this.status.set('anon');
  }

  private startSession(user: Me): void {
    this.authNotice.set(null);
    const wasOffline = get(this.offlineStart) && get(this.chat).me === user.id;
    this.offlineStart.set(false);
    this.me.set(user);
    this.rememberUsers([user]);
    this.outbox = new Outbox(this.storage, user.id);
    this.streamPos = new StreamPos(this.storage, user.id);
    this.fresh.clear();
    this.memberLists.clear();
    this.reactionLists.clear();
    // Start from what this browser showed last (rendered at once; replaced by the server's
    // answers as they come), or from nothing.
    const snap = wasOffline ? null : this.offline.load(user.id);
    let st = wasOffline ? { ...get(this.chat), pending: {} } : snap ? stateFromSnapshot(snap) : emptyState(user.id);
    if (snap) this.rememberUsers(snap.conversations.flatMap((c) => (c.peer ? [c.peer] : [])));
    for (const item of this.outbox.list()) st = addPending(st, item);
    this.chat.set(st);
    this.status.set('authed');
    // The conversation list and friends are loaded once the WebSocket is live (onLive), so
    // that events cover everything after the answers and nothing is asked twice. Should the
    // socket take long, they are loaded anyway (and again once it is live).
    this.loadedSinceLive = false;
    if (this.firstLoadTimer) clearTimeout(this.firstLoadTimer);
    this.firstLoadTimer = setTimeout(() => {
      this.firstLoadTimer = null;
      if (!this.loadedSinceLive) {
        void this.loadConversations();
        void this.loadPeople();
      }
    }, 2500);
    const open = get(this.active);
    if (open) void this.openConversation(open);
    this.rt?.stop();
    this.rt = new Realtime({
      url: wsUrl(location),
      createSocket: (url) => new WebSocket(url) as never,
      getToken: () => this.tokens.getAccessToken(),
      refreshToken: () => this.tokens.refresh(),
      streamPos: () => this.streamPos,
      onEvent: (ev) => this.handleEvent(ev),
      onState: (s) => this.conn.set(s),
      onLive: () => this.onLive(),
      // Usually the refresh already ended the session (and said why): nothing more to say then.
      onAuthFailed: () => {
        if (get(this.status) !== 'anon') this.endSession(SESSION_ENDED);
      },
      isOnline: () => (typeof navigator !== 'undefined' ? navigator.onLine : true),
    });
    this.updateView();
    this.rt.start();
    void this.syncPushSubscription();
    if (this.resendTimer) clearInterval(this.resendTimer);
    // Unacked messages are resent (same client_id, so never duplicated) while connected.
    this.resendTimer = setInterval(() => this.flushOutbox(10_000), 10_000);
  }

  private lastSent = new Map<string, number>();

  private flushOutbox(olderThanMs = 0): void {
    if (!this.outbox || !this.rt?.isLive) return;
    const now = Date.now();
    this.outbox.flush((item) => {
      if (olderThanMs && now - (this.lastSent.get(item.client_id) ?? 0) < olderThanMs) return true;
      const ok = this.rt!.send(sendFrame(item));
      if (ok) this.lastSent.set(item.client_id, now);
      return ok;
    });
  }

  private onLive(): void {
    this.replaying = false;
    this.lastSent.clear();
    this.flushOutbox();
    const first = !this.loadedSinceLive;
    this.loadedSinceLive = true;
    if (this.firstLoadTimer) clearTimeout(this.firstLoadTimer);
    this.firstLoadTimer = null;
    // Counts may have moved while we were away; the replay covered events, this covers the rest.
    // Presence comes back with these answers (people shown online/offline again), not before.
    const trusted = this.trust.beginRefresh();
    void Promise.all([this.loadConversations(), this.loadPeople()]).then(([a, b]) => trusted(a && b));
    // The bell: its first page and the unread count (events cover what comes after).
    void this.loadInbox();
    this.markActiveRead();
    // On the first connection of a page the open chat was just loaded; after a reconnect, what
    // it shows may be stale: members (read markers, presence) are asked for again.
    if (first) return;
    this.memberLists.clear();
    this.reactionLists.clear();
    const a = get(this.active);
    if (a) void this.loadGroupReadMarkers(a);
    // An open group panel reloads its members (their presence too).
    this.membersVersion.update((n) => n + 1);
  }

  // ---------- the offline copy ----------

  private scheduleSnapshot(): void {
    if (this.snapshotTimer || typeof window === 'undefined') return;
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = null;
      this.saveSnapshot();
    }, 1000);
  }

  /** Writes the copy of the chats shown now (nothing while logged out). */
  saveSnapshot(): void {
    const me = get(this.me);
    const st = get(this.chat);
    if (get(this.status) !== 'authed' || !me || st.me !== me.id || !this.tokens.hasSession()) return;
    if (get(this.offlineStart)) return; // nothing new to keep
    this.offline.save(makeSnapshot(me, st));
  }

  // ---------- loading ----------

  /** Reloads the conversation list; false when that failed. */
  async loadConversations(): Promise<boolean> {
    try {
      const list = await this.api.conversations();
      this.rememberUsers(list.flatMap((c) => (c.peer ? [c.peer] : [])));
      const active = get(this.active);
      const hadActive = !!active && !!get(this.chat).conversations[active];
      this.chat.update((s) => setConversations(s, list));
      // The open chat is no longer listed (removed from the group while we were away and the
      // event was missed): ask for it, so the chat says it is gone rather than loading forever.
      if (active && hadActive && !list.some((c) => c.id === active)) void this.fetchConversation(active);
      return true;
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'network')) this.toast(friendlyError(e));
      return false;
    }
  }

  private peopleLoadedAt = 0;

  /**
   * People was opened: reload friends and requests unless this page just did (or is about to,
   * once the WebSocket is live); events keep them current in between.
   */
  refreshPeople(): void {
    if (!this.loadedSinceLive || Date.now() - this.peopleLoadedAt < 10_000) return;
    void this.loadPeople();
  }

  /** Reloads friends and friend requests; false when that failed. */
  async loadPeople(): Promise<boolean> {
    this.peopleLoadedAt = Date.now();
    try {
      const [friends, requests] = await Promise.all([this.api.friends(), this.api.friendRequests()]);
      this.friends.set(friends);
      this.requests.set(requests);
      this.rememberUsers([...friends, ...requests.incoming.map((r) => r.from), ...requests.outgoing.map((r) => r.to)]);
      return true;
    } catch {
      /* shown elsewhere */
      return false;
    }
  }

  async loadBlocks(): Promise<void> {
    const b = await this.attempt(() => this.api.blocks());
    if (b) this.blocks.set(b);
  }

  rememberUsers(list: User[]): void {
    if (!list.length) return;
    this.users.update((u) => {
      const n = { ...u };
      for (const x of list) n[x.id] = { ...(n[x.id] ?? {}), ...x };
      return n;
    });
  }

  /** A user's name for display; fetches unknown users in the background. */
  userName(id: string): string {
    const u = get(this.users)[id];
    if (u) return displayName(u);
    if (!this.fetchingUser.has(id) && get(this.status) === 'authed') {
      this.fetchingUser.add(id);
      this.api.getUser(id).then(
        (x) => this.rememberUsers([x]),
        () => undefined,
      );
    }
    return '…';
  }

  private async fetchConversation(id: string, then?: (s: ChatState) => ChatState): Promise<void> {
    if (this.fetchingConv.has(id)) return;
    this.fetchingConv.add(id);
    try {
      const c = await (this.takePrefetched(id, 'conv') ?? this.api.conversation(id));
      if (c.peer) this.rememberUsers([c.peer]);
      this.chat.update((s) => {
        const n = upsertConversation(s, c);
        return then ? then(n) : n;
      });
    } catch (e) {
      // Not (or no longer) ours to read: say so. Network trouble: keep what we have.
      if (isNotReadable(e)) this.conversationUnavailable(id);
    } finally {
      this.fetchingConv.delete(id);
    }
  }

  /**
   * The conversation cannot be read by this user any more (removed from the group, or a stale
   * link): the chat view says so, and its unsent messages are dropped (the server would refuse
   * them all).
   */
  private conversationUnavailable(id: string): void {
    for (const item of this.outbox?.list(id) ?? []) this.outbox?.remove(item.client_id);
    this.typingSenders.get(id)?.stop();
    this.chat.update((s) => markUnavailable(s, id));
  }

  // ---------- events ----------

  private activeVisible(): string | null {
    const a = get(this.active);
    if (!a || typeof document === 'undefined') return null;
    return document.visibilityState === 'visible' ? a : null;
  }

  handleEvent(ev: ServerFrame): void {
    const me = get(this.me);
    switch (ev.type) {
      case 'ready': {
        this.replaying = true;
        // `ready` carries the public profile; the contact data stays from `GET /users/me`.
        const cur = get(this.me);
        if (cur) this.me.set({ ...cur, ...ev.user });
        this.rememberUsers([ev.user]);
        break;
      }
      case 'ack':
        this.outbox?.remove(ev.client_id);
        this.chat.update((s) => applyMessage(s, withMyReactions(s, ev.message), { activeVisible: this.activeVisible() }));
        break;
      case 'error': {
        const clientId = ev.client_id;
        if (clientId) {
          this.outbox?.remove(clientId);
          const text = friendlyError(new ApiError(400, ev.code, ev.message));
          this.chat.update((s) => failPending(s, clientId, text));
          this.toast(`Message not sent: ${text}`);
        }
        break;
      }
      case 'message': {
        const m = ev.message;
        const known = !!get(this.chat).conversations[m.conversation_id];
        this.chat.update((s) => applyMessage(s, withMyReactions(s, m), { activeVisible: this.activeVisible() }));
        if (m.sender_id === me?.id) this.outbox?.remove(m.client_id);
        if (!known) void this.fetchConversation(m.conversation_id);
        if (m.sender_id !== me?.id) {
          this.notify(m);
          if (this.activeVisible() === m.conversation_id) this.markActiveRead();
        }
        break;
      }
      case 'message.updated':
        this.chat.update((s) => applyUpdated(s, withMyReactions(s, ev.message)));
        break;
      case 'reaction':
        this.reactionLists.delete(`${ev.conversation_id}:${ev.seq}`);
        this.chat.update((s) => applyReactionEvent(s, ev.conversation_id, ev.seq, ev.emoji, ev.added, ev.user_id === me?.id));
        break;
      case 'notification': {
        const had = get(this.inbox).items.some((n) => n.id === ev.id);
        this.inbox.update((s) => applyLiveNotification(s, ev));
        if (!had && !this.replaying) this.announceNotification(ev.title, ev.body, ev.url, ev.id);
        break;
      }
      case 'message.deleted':
        // scope "me" (extension): deleted for me only, from another tab or device of mine.
        if (ev.scope === 'me') this.chat.update((s) => removeMessageLocally(s, ev.conversation_id, ev.seq));
        else this.chat.update((s) => applyDeleted(s, ev.conversation_id, ev.seq));
        break;
      case 'typing':
        this.chat.update((s) => setTyping(s, ev.conversation_id, ev.user_id, ev.typing));
        if (ev.typing) setTimeout(() => this.chat.update((s) => ({ ...s })), 5100); // re-render to expire
        break;
      case 'read':
        this.chat.update((s) => applyRead(s, ev.conversation_id, ev.user_id, ev.seq));
        break;
      case 'presence':
        this.chat.update((s) => applyPresence(s, ev.user_id, ev.online, ev.last_seen_at));
        this.friends.update((f) => f.map((u) => (u.id === ev.user_id ? { ...u, online: ev.online, last_seen_at: ev.last_seen_at ?? u.last_seen_at } : u)));
        this.users.update((u) => (u[ev.user_id] ? { ...u, [ev.user_id]: { ...u[ev.user_id], online: ev.online, last_seen_at: ev.last_seen_at ?? u[ev.user_id].last_seen_at } } : u));
        break;
      case 'friend.request':
        void this.loadPeople();
        if (ev.request?.from && ev.request.from.id !== me?.id) this.toast(`${displayName(ev.request.from)} sent you a friend request`, 'info');
        break;
      case 'friend.request.removed':
        // Extension: a request was accepted, declined or cancelled (sent to both people).
        this.requests.update((r) => ({
          incoming: r.incoming.filter((x) => x.id !== ev.request_id),
          outgoing: r.outgoing.filter((x) => x.id !== ev.request_id),
        }));
        void this.loadPeople();
        break;
      case 'friend.added':
      case 'friend.removed':
        void this.loadPeople();
        break;
      case 'conversation.updated':
        this.chat.update((s) => upsertConversation(s, ev.conversation));
        break;
      case 'member.added':
      case 'member.updated':
      case 'member.removed':
        if (ev.user_id === me?.id && ev.type === 'member.removed') {
          // Removed (or left on another device): an open chat switches to "You are no longer a
          // member of …" at once, with no message box (anything typed would only fail).
          this.conversationUnavailable(ev.conversation_id);
        } else {
          void this.fetchConversation(ev.conversation_id);
        }
        this.memberLists.delete(ev.conversation_id);
        this.membersVersion.update((n) => n + 1);
        break;
    }
  }

  private notify(m: Message): void {
    if (typeof document === 'undefined' || typeof Notification === 'undefined') return;
    const c = get(this.chat).conversations[m.conversation_id];
    const ok = shouldPageNotify({
      enabled: get(this.notificationsEnabled),
      permission: Notification.permission,
      hidden: document.hidden,
      muted: isMuted(c),
      // With a push subscription the server pushes (the page says nothing is in view while
      // hidden) and the service worker shows it: the page stays quiet so nothing shows twice.
      pushActive: get(this.push).subscribed,
    });
    if (!ok) return;
    const who = this.userName(m.sender_id);
    const title = c && c.kind === 'group' ? `${who} in ${conversationTitle(c)}` : who;
    try {
      const n = new Notification(title, { body: m.deleted ? '' : messagePreviewText(m).slice(0, 140), tag: m.conversation_id });
      n.onclick = () => {
        window.focus();
        navigate(`/c/${m.conversation_id}`);
        n.close();
      };
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  }

  // ---------- service notifications (the bell) ----------

  private inboxAsked = 0;

  /** The newest page and the unread count; false when that failed (the bell keeps what it has). */
  async loadInbox(): Promise<boolean> {
    const n = ++this.inboxAsked;
    try {
      const page = await this.api.notifications({ limit: INBOX_PAGE });
      if (n === this.inboxAsked && get(this.status) === 'authed') this.inbox.update((s) => applyFirstPage(s, page));
      return true;
    } catch {
      return false;
    }
  }

  private loadingOlderInbox = false;

  /** The next older page of the list. */
  async loadOlderNotifications(): Promise<void> {
    const before = get(this.inbox).next;
    if (!before || this.loadingOlderInbox) return;
    this.loadingOlderInbox = true;
    try {
      const page = await this.api.notifications({ before, limit: INBOX_PAGE });
      this.inbox.update((s) => applyOlderPage(s, page));
    } catch (e) {
      this.toast(friendlyError(e));
    } finally {
      this.loadingOlderInbox = false;
    }
  }

  /** The list was seen: everything up to the newest one shown is read (newer ones keep counting). */
  async markInboxRead(): Promise<void> {
    const s = get(this.inbox);
    const newest = s.items[0];
    if (!newest || s.unread === 0) return;
    this.inbox.update((x) => markReadUpTo(x, newest.id));
    try {
      await this.api.markNotificationsRead(newest.id);
    } catch {
      /* the count comes back from the server with the next load */
    }
  }

  /** Opens where a notification leads: a view of the app, or an https page in a new tab. */
  openNotificationTarget(url: string | null): void {
    const t = notificationTarget(url);
    if (t?.kind === 'app') navigate(t.path);
    else if (t?.kind === 'external') window.open(t.href, '_blank', 'noopener,noreferrer');
  }

  /**
   * A new notification while this page is connected (the server sends no push then): a toast,
   * and a system notification when the page is hidden and notifications are on.
   */
  private announceNotification(title: string, body: string, url: string | null, id: string): void {
    this.toast(`New notification: ${title}`, 'info');
    if (typeof document === 'undefined' || typeof Notification === 'undefined') return;
    if (!document.hidden || !get(this.notificationsEnabled) || Notification.permission !== 'granted') return;
    try {
      const n = new Notification(title, { body: body.slice(0, 180), tag: `notification-${id}` });
      n.onclick = () => {
        window.focus();
        this.openNotificationTarget(url);
        n.close();
      };
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  }

  // ---------- view frame, service worker, Web Push ----------

  /** The page was hidden or shown: update the `view` and mark the open chat read. */
  visibilityChanged(): void {
    this.updateView();
    this.markActiveRead();
  }

  /** Tells the server which conversation is on screen (none while the page is hidden). */
  private updateView(): void {
    if (typeof document === 'undefined') return;
    this.rt?.setView(viewTarget(get(this.active), document.visibilityState));
  }

  /** The conversation reported in the last `view` (for tests). */
  get viewedConversation(): string | null {
    return this.rt?.currentView ?? null;
  }

  private static pushSupported(): boolean {
    return (
      typeof window !== 'undefined' &&
      typeof navigator !== 'undefined' &&
      'serviceWorker' in navigator &&
      'PushManager' in window &&
      typeof Notification !== 'undefined' &&
      window.isSecureContext !== false
    );
  }

  private setPush(p: Partial<PushState>): void {
    this.push.update((x) => ({ ...x, ...p }));
  }

  /** Registers /sw.js (scope /) when the browser has service workers. Called once at startup. */
  registerServiceWorker(): void {
    this.setPush({ supported: Session.pushSupported(), permission: typeof Notification === 'undefined' ? 'unsupported' : Notification.permission });
    if (typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return;
    this.swRegistration = navigator.serviceWorker.register('/sw.js', { scope: '/' }).then(
      (reg) => reg,
      () => null,
    );
    navigator.serviceWorker.addEventListener('message', (e: MessageEvent) => {
      const d = e.data as { type?: string; url?: string } | null;
      if (d?.type === 'navigate' && typeof d.url === 'string' && d.url.startsWith('/') && !d.url.startsWith('//')) {
        window.focus();
        navigate(d.url);
      } else if (d?.type === 'push-subscription-changed') {
        void this.syncPushSubscription();
      }
    });
  }

  private async readyRegistration(): Promise<ServiceWorkerRegistration> {
    const reg = await this.swRegistration;
    if (!reg) throw new PushSetupError('unsupported', PUSH_TEXT.unsupported);
    // Wait for an active worker (pushManager.subscribe needs one).
    return withTimeout(navigator.serviceWorker.ready, 10_000);
  }

  /**
   * On session start: if this browser already has a push subscription, register it again
   * for the account now logged in (the server re-assigns an endpoint to its last subscriber),
   * which also recovers a subscription the browser renewed while no page was open.
   */
  async syncPushSubscription(): Promise<void> {
    if (!Session.pushSupported()) return;
    this.setPush({ permission: Notification.permission });
    try {
      const reg = await this.swRegistration;
      const sub = reg ? await reg.pushManager.getSubscription() : null;
      if (!sub || Notification.permission !== 'granted') {
        this.setPush({ subscribed: false });
        return;
      }
      const body = subscriptionBody(sub.toJSON());
      if (!body || get(this.status) !== 'authed') return;
      await this.api.addPushSubscription(body);
      this.setPush({ subscribed: true, error: null });
    } catch {
      /* offline: try again with the next session start */
    }
  }

  /**
   * Turns notifications on (call only from a click: the permission prompt needs one). Asks
   * for permission, then subscribes to Web Push and registers the subscription with the server.
   * When push is not available, in-page notifications (while a tab is open) still work.
   */
  async enableNotifications(): Promise<void> {
    if (typeof Notification === 'undefined') {
      this.setPush({ error: PUSH_TEXT.unsupported });
      return;
    }
    this.setPush({ busy: true, error: null });
    try {
      const p = await Notification.requestPermission();
      this.setPush({ permission: p });
      if (p !== 'granted') {
        this.notificationsEnabled.set(false);
        this.storage.setItem('chatnode.notify', '0');
        this.setPush({ error: p === 'denied' ? PUSH_TEXT.denied : PUSH_TEXT.dismissed });
        return;
      }
      this.notificationsEnabled.set(true);
      this.storage.setItem('chatnode.notify', '1');
      if (!Session.pushSupported()) {
        this.setPush({ error: window.isSecureContext === false ? PUSH_TEXT.insecure : PUSH_TEXT.unsupported });
        return;
      }
      await this.subscribePush();
      this.setPush({ subscribed: true, error: null });
    } catch (e) {
      this.setPush({ subscribed: false, error: e instanceof ApiError ? `The server did not accept this browser’s subscription: ${friendlyError(e)}` : subscribeErrorText(e) });
    } finally {
      this.setPush({ busy: false });
    }
  }

  private async subscribePush(): Promise<void> {
    const key = await this.api.vapidPublicKey();
    const reg = await this.readyRegistration();
    const appKey = base64UrlToBytes(key);
    let sub = await reg.pushManager.getSubscription();
    if (sub) {
      // A subscription made for another server key (keys were regenerated) cannot be reused.
      const old = sub.options?.applicationServerKey;
      const same = old && new Uint8Array(old).length === appKey.length && new Uint8Array(old).every((b, i) => b === appKey[i]);
      if (!same) {
        await sub.unsubscribe().catch(() => undefined);
        sub = null;
      }
    }
    if (!sub) {
      const pending = reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: appKey });
      try {
        sub = await withTimeout(pending, SUBSCRIBE_TIMEOUT_MS);
      } catch (e) {
        // Gave up waiting, but the push service may still answer: register it if it does.
        if ((e as Error)?.name === 'TimeoutError') {
          pending.then(
            () => {
              if (get(this.notificationsEnabled)) void this.syncPushSubscription();
            },
            () => undefined,
          );
        }
        throw e;
      }
    }
    const body = subscriptionBody(sub.toJSON());
    if (!body) throw new PushSetupError('push-service', PUSH_TEXT.pushService);
    await this.api.addPushSubscription(body);
  }

  /** Removes this browser's subscription (server and browser). */
  private async unsubscribePush(): Promise<void> {
    const reg = await this.swRegistration;
    const sub = reg ? await reg.pushManager?.getSubscription() : null;
    if (!sub) return;
    try {
      await this.api.removePushSubscription(sub.endpoint);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    } finally {
      await sub.unsubscribe().catch(() => undefined);
      this.setPush({ subscribed: false });
    }
  }

  /** Turns notifications off on this browser. */
  async disableNotifications(): Promise<void> {
    this.notificationsEnabled.set(false);
    this.storage.setItem('chatnode.notify', '0');
    this.setPush({ busy: true, error: null });
    try {
      await this.unsubscribePush();
    } catch (e) {
      this.setPush({ error: `Could not turn off notifications on the server: ${friendlyError(e)}` });
    } finally {
      this.setPush({ busy: false });
    }
  }

  /** `notification_previews`: whether pushes carry the message text. */
  async setNotificationPreviews(on: boolean): Promise<void> {
    const u = await this.attempt(() => this.api.updateMe({ notification_previews: on }), on ? 'Notifications will show message text' : 'Notifications will not show message text');
    if (u) this.me.set(u);
  }

  // ---------- mute ----------

  /**
   * Mutes a conversation for `ms` (null = until unmuted). `muteMentions`: mentions of me are
   * muted too (by default a mention still notifies).
   */
  async muteConversation(id: string, ms: number | null, muteMentions = false): Promise<void> {
    const r = await this.attempt(() => this.api.mute(id, { ...muteRequest(ms), ...(muteMentions ? { mentions: false } : {}) }));
    if (r) this.chat.update((s) => setMuted(s, id, r.muted_until, r.mentions ?? !muteMentions));
  }

  /** While muted: whether mentions are muted too (keeps until when). */
  async setMentionsMuted(id: string, muteMentions: boolean): Promise<void> {
    const c = get(this.chat).conversations[id];
    if (!c?.muted_until) return;
    const forever = Date.parse(c.muted_until) >= Date.UTC(9000, 0, 1);
    const r = await this.attempt(() => this.api.mute(id, { until: forever ? null : c.muted_until, mentions: !muteMentions }));
    if (r) this.chat.update((s) => setMuted(s, id, r.muted_until, r.mentions ?? !muteMentions));
  }

  async unmuteConversation(id: string): Promise<void> {
    try {
      await this.api.unmute(id);
      this.chat.update((s) => setMuted(s, id, null));
    } catch (e) {
      this.toast(friendlyError(e));
    }
  }

  // ---------- conversations and messages ----------

  /** Opens a conversation: loads its latest messages if needed and marks it read. */
  async openConversation(id: string): Promise<void> {
    this.active.set(id);
    // What was asked for at start is for the chat the page opened on, not for a later one.
    if (this.prefetched && this.prefetched.id !== id) this.prefetched = null;
    // Offline start: the copy is all there is until the server answers (then this runs again).
    if (get(this.offlineStart)) return;
    if (!get(this.chat).conversations[id]) await this.fetchConversation(id);
    if (get(this.chat).unavailable[id] || get(this.active) !== id) return;
    const f = get(this.focus);
    if (f?.cid === id) await this.ensureAround(id, f.seq);
    else if (!this.fresh.has(id)) await this.loadLatest(id);
    this.markActiveRead();
    void this.loadGroupReadMarkers(id);
  }

  private loadingLatest = new Map<string, Promise<void>>();

  /** The newest page of a conversation, replacing what was shown (an offline copy, a window). */
  loadLatest(id: string): Promise<void> {
    let p = this.loadingLatest.get(id);
    if (p) return p;
    p = (async () => {
      try {
        const limit = LATEST_PAGE;
        const r = await (this.takePrefetched(id, 'page') ?? this.api.messages(id, { limit }));
        const hasMore = (r.next_cursor !== null && r.next_cursor !== undefined ? true : r.messages.length >= limit) && !startsAtOne(r.messages);
        this.fresh.add(id);
        this.chat.update((st) => replaceHistory(st, id, r.messages, hasMore && r.messages.length > 0));
      } catch (e) {
        if (isNotReadable(e)) this.conversationUnavailable(id);
        else if (!(e instanceof ApiError && e.code === 'network')) this.toast(friendlyError(e));
      } finally {
        this.loadingLatest.delete(id);
      }
    })();
    this.loadingLatest.set(id, p);
    return p;
  }

  /**
   * Loads the messages around `seq` unless it is already loaded (a search result was chosen):
   * the window replaces what was shown, and newer messages come as the list is scrolled down.
   */
  async ensureAround(id: string, seq: number): Promise<void> {
    const have = get(this.chat).messages[id] ?? [];
    if (this.fresh.has(id) && have.some((m) => m.seq === seq)) return;
    const limit = 25;
    try {
      const [older, newer] = await Promise.all([
        this.api.messages(id, { before_seq: seq + 1, limit }),
        this.api.messages(id, { after_seq: seq, limit }),
      ]);
      const hasOlder = (older.next_cursor !== null && older.next_cursor !== undefined ? true : older.messages.length >= limit) && !startsAtOne(older.messages);
      const hasNewer = newer.next_cursor !== null && newer.next_cursor !== undefined;
      this.fresh.add(id);
      this.chat.update((s) => replaceWithWindow(s, id, [...older.messages, ...newer.messages], { hasOlder, hasNewer }));
    } catch (e) {
      if (isNotReadable(e)) this.conversationUnavailable(id);
      else this.toast(friendlyError(e));
    }
  }

  private loadingNewer = new Set<string>();

  /** After a jump: the next newer page, until the newest is reached. */
  async loadNewer(id: string): Promise<void> {
    const gap = get(this.chat).gapAfter[id];
    if (gap === undefined || this.loadingNewer.has(id)) return;
    this.loadingNewer.add(id);
    try {
      const r = await this.api.messages(id, { after_seq: gap, limit: 50 });
      const more = r.next_cursor !== null && r.next_cursor !== undefined;
      this.chat.update((s) => mergeNewer(s, id, r.messages, more));
    } catch (e) {
      this.toast(friendlyError(e));
    } finally {
      this.loadingNewer.delete(id);
    }
  }

  /**
   * Opens a conversation at one message (a search result): loads the history around it, scrolls
   * to it and highlights it (the chat view does, on `focus`).
   */
  async jumpTo(cid: string, seq: number): Promise<void> {
    this.focus.set({ cid, seq, n: ++this.focusN });
    if (get(this.active) === cid) await this.ensureAround(cid, seq);
    else navigate(`/c/${cid}`);
  }

  /** The chat view has shown the focused message. */
  clearFocus(n: number): void {
    if (get(this.focus)?.n === n) this.focus.set(null);
  }

  /**
   * Groups: the members' read markers (`last_read_seq` on each Member, a server extension), so
   * my messages show as read after a reload, not only after live `read` events. Direct chats get
   * theirs from `peer_last_read_seq` on the Conversation.
   */
  async loadGroupReadMarkers(id: string): Promise<void> {
    if (get(this.chat).conversations[id]?.kind !== 'group') return;
    try {
      await this.membersOf(id);
    } catch {
      /* optional: live read events still arrive */
    }
  }

  /**
   * A group's members (for the panel, the mention picker and read markers): asked for once, then
   * again after member events, a reconnect, or `fresh` (after a change made here).
   */
  membersOf(id: string, fresh = false): Promise<Member[]> {
    let p = this.memberLists.get(id);
    if (p && !fresh) return p;
    p = this.api.members(id).then((list) => {
      this.rememberUsers(list.map((m) => m.user));
      this.applyMemberReadMarkers(id, list);
      return list;
    });
    this.memberLists.set(id, p);
    const mine = p;
    p.catch(() => {
      if (this.memberLists.get(id) === mine) this.memberLists.delete(id);
    });
    return p;
  }

  applyMemberReadMarkers(id: string, members: Member[]): void {
    this.chat.update((s) => applyReadMarkers(s, id, members.map((m) => ({ user_id: m.user.id, seq: m.last_read_seq }))));
  }

  closeConversation(): void {
    const a = get(this.active);
    if (a) this.typingSenders.get(a)?.stop();
    this.active.set(null);
  }

  private loadingOlder = new Set<string>();

  async loadOlder(id: string, initial = false): Promise<void> {
    // Older pages continue the server's newest page, not an offline copy still being replaced.
    if (this.loadingOlder.has(id) || (!initial && !this.fresh.has(id))) return;
    const s = get(this.chat);
    const list = s.messages[id] ?? [];
    if (!initial && s.hasMore[id] === false) return;
    this.loadingOlder.add(id);
    try {
      const before = !initial && list.length ? list[0].seq : undefined;
      const limit = 50;
      const r = await this.api.messages(id, before ? { before_seq: before, limit } : { limit });
      const hasMore = (r.next_cursor !== null && r.next_cursor !== undefined ? true : r.messages.length >= limit) && !startsAtOne(r.messages);
      this.chat.update((st) => mergeHistory(st, id, r.messages, hasMore && r.messages.length > 0));
    } catch (e) {
      if (isNotReadable(e)) this.conversationUnavailable(id);
      else this.toast(friendlyError(e));
    } finally {
      this.loadingOlder.delete(id);
    }
  }

  /** Sends a read marker for the open conversation when the page is visible. */
  markActiveRead(): void {
    const id = this.activeVisible();
    const me = get(this.me);
    if (!id || !me) return;
    if (typeof document !== 'undefined' && !document.hasFocus() && document.visibilityState !== 'visible') return;
    const s = get(this.chat);
    const c = s.conversations[id];
    const seq = maxSeq(s, id);
    if (!c || seq <= 0 || (seq <= c.last_read_seq && !c.unread_count)) return;
    if (!this.rt?.send({ type: 'read', conversation_id: id, seq })) {
      this.api.markRead(id, seq).catch(() => undefined);
    }
    this.chat.update((st) => applyRead(st, id, me.id, seq));
  }

  /** Queues a message; with `media`, a message of that kind carrying the uploaded attachments. */
  sendMessage(conversationId: string, body: string, replyToSeq: number | null, media?: { kind: MessageKind; attachments: Media[] }): void {
    const withMedia = !!media && media.attachments.length > 0;
    if (!this.outbox || (!body.trim() && !withMedia)) return;
    const item: OutboxItem = {
      client_id: uuid(),
      conversation_id: conversationId,
      body,
      reply_to_seq: replyToSeq,
      created_at: new Date().toISOString(),
      ...(withMedia ? { kind: media!.kind, attachments: media!.attachments } : {}),
    };
    this.outbox.add(item);
    this.chat.update((s) => addPending(s, item));
    this.typingSenders.get(conversationId)?.stop();
    this.flushOutbox();
  }

  retryMessage(clientId: string): void {
    const s = get(this.chat);
    const p = Object.values(s.pending).flat().find((m) => m.client_id === clientId);
    if (!p || !this.outbox) return;
    const item: OutboxItem = { client_id: clientId, conversation_id: p.conversation_id, body: p.body, reply_to_seq: p.reply_to_seq, created_at: p.created_at };
    if (p.kind !== 'text' && p.attachments.length) {
      item.kind = p.kind;
      item.attachments = p.attachments;
    }
    this.outbox.add(item);
    this.chat.update((st) => addPending(st, item));
    this.flushOutbox();
  }

  discardMessage(clientId: string): void {
    this.outbox?.remove(clientId);
    this.chat.update((s) => dropPending(s, clientId));
  }

  // ---------- reactions and search ----------

  /** Puts or takes back my `emoji` on a message, shown at once (undone if the server refuses). */
  async toggleReaction(cid: string, seq: number, emoji: string): Promise<void> {
    const m = (get(this.chat).messages[cid] ?? []).find((x) => x.seq === seq);
    if (!m) return;
    const on = !hasMine(m.reactions, emoji);
    if (on && myReactionCount(m.reactions) >= MAX_REACTIONS_PER_USER) {
      this.toast(friendlyError(new ApiError(400, 'too_many_reactions', '')));
      return;
    }
    this.reactionLists.delete(`${cid}:${seq}`);
    this.chat.update((s) => applyReactionEvent(s, cid, seq, emoji, on, true));
    try {
      await this.api.react(cid, seq, emoji, on);
    } catch (e) {
      this.chat.update((s) => applyReactionEvent(s, cid, seq, emoji, !on, true));
      this.toast(friendlyError(e));
    }
  }

  /** Who reacted with what on a message (asked for once until a reaction on it changes). */
  reactionUsers(cid: string, seq: number): Promise<ReactionUsers[]> {
    const key = `${cid}:${seq}`;
    let p = this.reactionLists.get(key);
    if (!p) {
      p = this.api.reactionUsers(cid, seq).then((list) => {
        this.rememberUsers(list.flatMap((r) => r.users));
        return list;
      });
      const mine = p;
      p.catch(() => {
        if (this.reactionLists.get(key) === mine) this.reactionLists.delete(key);
      });
      this.reactionLists.set(key, p);
    }
    return p;
  }

  /** One page of search results (newest first); `before` is the previous page's cursor. */
  searchMessages(q: string, conversationId?: string | null, before?: string | null): Promise<SearchResults> {
    return this.api.searchMessages({ q, conversation_id: conversationId ?? undefined, limit: 20, before: before ?? undefined }).then((r) => {
      // Senders of results are shown by name.
      for (const m of r.messages) this.userName(m.sender_id);
      return r;
    });
  }

  typing(conversationId: string): void {
    let t = this.typingSenders.get(conversationId);
    if (!t) {
      t = new TypingSender((typing) => void this.rt?.send({ type: 'typing', conversation_id: conversationId, typing }));
      this.typingSenders.set(conversationId, t);
    }
    t.input();
  }
  stopTyping(conversationId: string): void {
    this.typingSenders.get(conversationId)?.stop();
  }

  async editMessage(cid: string, seq: number, body: string): Promise<void> {
    const m = await this.attempt(() => this.api.editMessage(cid, seq, body));
    if (m) this.chat.update((s) => applyUpdated(s, m));
  }

  async deleteMessage(cid: string, seq: number, forWhom: 'everyone' | 'me'): Promise<void> {
    try {
      await this.api.deleteMessage(cid, seq, forWhom);
      this.chat.update((s) => (forWhom === 'me' ? removeMessageLocally(s, cid, seq) : applyDeleted(s, cid, seq)));
    } catch (e) {
      this.toast(friendlyError(e));
    }
  }

  async openDirect(userId: string): Promise<void> {
    const c = await this.attempt(() => this.api.openDirect(userId));
    if (c) {
      this.chat.update((s) => upsertConversation(s, c));
      navigate(`/c/${c.id}`);
    }
  }

  upsertConversation(c: Conversation): void {
    this.chat.update((s) => upsertConversation(s, c));
  }

  /** Leaves a group; the chat closes (back to the list) when it is the open one. */
  async leaveGroup(id: string): Promise<void> {
    const me = get(this.me);
    if (!me) return;
    await this.api.removeMember(id, me.id);
    this.conversationUnavailable(id);
    if (get(this.active) === id) navigate('/');
  }

  /** For the store type in components. */
  static storeValue<T>(s: Writable<T>): T {
    return get(s);
  }
}
