import { get } from 'svelte/store';
import { describe, expect, it, vi } from 'vitest';
import { applyMessage, emptyState, messageStatus, setConversations } from './chat';
import { Session } from './session';
import { ApiError, friendlyError } from './errors';
import { conv, MemoryStorage, msg } from './testutil';
import type { FriendRequest, Me, Member, User } from './types';

const user = (id: string): User => ({ id, username: id, display_name: id, avatar_url: null, bio: null, online: false, last_seen_at: null, bot: false });
const me = (id: string): Me => ({ ...user(id), email: null, phone: null, created_at: '2026-01-01T00:00:00Z', notification_previews: true, system_admin: false });

function session() {
  // No login here: the REST calls the handlers start in the background just fail quietly.
  vi.stubGlobal('fetch', vi.fn(async () => new Response('{}', { status: 401 })));
  const s = new Session(new MemoryStorage());
  s.me.set(me('me'));
  return s;
}

describe('Session event handling (server extensions)', () => {
  it('friend.request.removed drops the request from both lists at once', () => {
    const s = session();
    const req = (id: string, from: string, to: string): FriendRequest => ({ id, from: user(from), to: user(to), created_at: '2026-01-01T00:00:00Z' });
    s.requests.set({ incoming: [req('r1', 'bob', 'me')], outgoing: [req('r2', 'me', 'carol')] });
    s.handleEvent({ type: 'friend.request.removed', request_id: 'r1' });
    expect(get(s.requests).incoming).toEqual([]);
    s.handleEvent({ type: 'friend.request.removed', request_id: 'r2' });
    expect(get(s.requests).outgoing).toEqual([]);
  });

  it('message.deleted with scope "me" removes the message; without it, shows it as deleted', () => {
    const s = session();
    let st = setConversations(emptyState('me'), [conv({ id: 'c1' })]);
    st = applyMessage(applyMessage(st, msg({ seq: 1 })), msg({ seq: 2 }));
    s.chat.set(st);
    s.handleEvent({ type: 'message.deleted', conversation_id: 'c1', seq: 1, scope: 'me' });
    expect(get(s.chat).messages.c1.map((m) => m.seq)).toEqual([2]);
    s.handleEvent({ type: 'message.deleted', conversation_id: 'c1', seq: 2 });
    expect(get(s.chat).messages.c1[0]).toMatchObject({ seq: 2, deleted: true });
  });

  it('member read markers (GET /groups/{id}/members) mark my group messages read', () => {
    const s = session();
    let st = setConversations(emptyState('me'), [conv({ id: 'g1', kind: 'group', name: 'G' })]);
    st = applyMessage(st, msg({ seq: 5, conversation_id: 'g1', sender_id: 'me', client_id: 'x' }));
    s.chat.set(st);
    const member = (id: string, seq?: number): Member => ({ user: user(id), role: 'member', joined_at: '2026-01-01T00:00:00Z', last_read_seq: seq ?? 0 });
    s.applyMemberReadMarkers('g1', [member('me', 5), member('bob', 4)]);
    expect(messageStatus(get(s.chat), get(s.chat).messages.g1[0])).toBe('sent');
    s.applyMemberReadMarkers('g1', [member('me', 5), member('bob', 5)]);
    expect(messageStatus(get(s.chat), get(s.chat).messages.g1[0])).toBe('read');
  });
});

describe('Session: login errors', () => {
  it('a wrong login or password (401 unauthenticated) is said as such, not as an ended session', async () => {
    const s = new Session(new MemoryStorage());
    vi.stubGlobal('fetch', vi.fn(async () => new Response(JSON.stringify({ error: { code: 'unauthenticated', message: 'wrong login or password' } }), { status: 401 })));
    const err = await s.login('ann', 'nope').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(friendlyError(err)).toBe('That login and password do not match.');
  });
});

describe('Session: conversations that cannot be read', () => {
  it('member.removed for me turns the open chat unavailable at once (no navigation away)', () => {
    const s = session();
    s.chat.set(applyMessage(setConversations(emptyState('me'), [conv({ id: 'g1', kind: 'group', name: 'Hiking' })]), msg({ seq: 1, conversation_id: 'g1' })));
    s.active.set('g1');
    s.handleEvent({ type: 'member.removed', conversation_id: 'g1', user_id: 'me' });
    const st = get(s.chat);
    expect(st.unavailable.g1).toEqual({ name: 'Hiking' });
    expect(st.conversations.g1).toBeUndefined();
    expect(get(s.active)).toBe('g1');
    expect(get(s.toasts)).toEqual([]);
  });

  it('someone else removed: the conversation stays', () => {
    const s = session();
    s.chat.set(setConversations(emptyState('me'), [conv({ id: 'g1', kind: 'group', name: 'Hiking' })]));
    s.handleEvent({ type: 'member.removed', conversation_id: 'g1', user_id: 'bob' });
    expect(get(s.chat).conversations.g1).toBeDefined();
    expect(get(s.chat).unavailable.g1).toBeUndefined();
  });

  it('a stale link (404) ends "Loading…": unavailable, no history request, no error toast', async () => {
    const s = session();
    s.chat.set(emptyState('me'));
    const calls: string[] = [];
    (s.api as any).conversation = async (id: string) => {
      calls.push(`conversation ${id}`);
      throw new ApiError(404, 'not_found', 'conversation not found');
    };
    (s.api as any).messages = async (id: string) => {
      calls.push(`messages ${id}`);
      return { messages: [], next_cursor: null };
    };
    await s.openConversation('x1');
    expect(get(s.chat).unavailable.x1).toEqual({ name: null });
    expect(calls).toEqual(['conversation x1']);
    expect(get(s.toasts)).toEqual([]);
  });

  it('leaving a group myself: gone from the list, whether the event or the answer comes first', async () => {
    const s = session();
    s.chat.set(setConversations(emptyState('me'), [conv({ id: 'g1', kind: 'group', name: 'Hiking' })]));
    (s.api as any).removeMember = async () => {
      s.handleEvent({ type: 'member.removed', conversation_id: 'g1', user_id: 'me' });
    };
    await s.leaveGroup('g1');
    expect(get(s.chat).conversations.g1).toBeUndefined();
    expect(get(s.chat).unavailable.g1).toEqual({ name: 'Hiking' });
  });

  it('a network failure is not "unavailable"', async () => {
    const s = session();
    s.chat.set(emptyState('me'));
    (s.api as any).conversation = async () => {
      throw new ApiError(0, 'network', 'offline');
    };
    (s.api as any).messages = async () => {
      throw new ApiError(0, 'network', 'offline');
    };
    await s.openConversation('x1');
    expect(get(s.chat).unavailable.x1).toBeUndefined();
  });
});

describe('Session: presence trust', () => {
  it('is lost when the connection drops and not given back by reconnecting alone', () => {
    const s = session();
    (s as any).trust.connection('connected');
    (s as any).trust.beginRefresh()(true);
    expect(get(s.presenceTrusted)).toBe(true);
    s.conn.set('reconnecting');
    expect(get(s.presenceTrusted)).toBe(false);
    s.conn.set('connected');
    expect(get(s.presenceTrusted)).toBe(false);
  });
});

describe('Session: view frame and notifications', () => {
  function withDocument(visibility: 'visible' | 'hidden') {
    const doc = { visibilityState: visibility, hidden: visibility === 'hidden', title: '', hasFocus: () => visibility === 'visible' };
    vi.stubGlobal('document', doc);
    return doc;
  }
  /** A Realtime on a fake socket, put in place of the session's own. */
  async function connect(s: Session) {
    const { Realtime } = await import('./realtime');
    const sent: any[] = [];
    const sock: any = { readyState: 0, send: (d: string) => sent.push(JSON.parse(d)), close() {}, onopen: null, onmessage: null, onclose: null, onerror: null };
    const rt = new Realtime({
      url: 'ws://x',
      createSocket: () => sock,
      getToken: async () => 't',
      refreshToken: async () => 't',
      streamPos: () => null,
      onEvent: () => undefined,
      setTimer: () => 0,
      clearTimer: () => undefined,
    });
    (s as any).rt = rt;
    (s as any).updateView();
    rt.start();
    await new Promise((r) => setTimeout(r, 0));
    sock.readyState = 1;
    sock.onopen({});
    sock.onmessage({ data: JSON.stringify({ type: 'ready', user: user('me'), stream_pos: 1 }) });
    return sent;
  }

  it('reports the open conversation while visible, null when hidden or closed', async () => {
    const doc = withDocument('visible');
    const s = session();
    s.active.set('c1');
    const sent = await connect(s);
    const views = () => sent.filter((f) => f.type === 'view').map((f) => f.conversation_id);
    expect(views()).toEqual(['c1']);
    doc.visibilityState = 'hidden';
    s.visibilityChanged();
    doc.visibilityState = 'visible';
    s.visibilityChanged();
    s.active.set('c2');
    s.closeConversation();
    expect(views()).toEqual(['c1', null, 'c1', 'c2', null]);
    expect(s.viewedConversation).toBeNull();
    vi.unstubAllGlobals();
  });

  it('no in-page notification for a muted conversation, or when push is active', () => {
    withDocument('hidden');
    const shown: string[] = [];
    class FakeNotification {
      static permission = 'granted';
      onclick: unknown = null;
      constructor(title: string) {
        shown.push(title);
      }
      close() {}
    }
    vi.stubGlobal('Notification', FakeNotification);
    const s = session();
    s.notificationsEnabled.set(true);
    s.rememberUsers([user('bob')]);
    s.chat.set(setConversations(emptyState('me'), [conv({ id: 'c1' }), conv({ id: 'c2', muted_until: '9999-12-31T23:59:59Z' })]));
    s.handleEvent({ type: 'message', message: msg({ seq: 1, conversation_id: 'c2' }) });
    expect(shown).toEqual([]);
    s.handleEvent({ type: 'message', message: msg({ seq: 1, conversation_id: 'c1' }) });
    expect(shown).toEqual(['bob']);
    s.push.update((p) => ({ ...p, subscribed: true }));
    s.handleEvent({ type: 'message', message: msg({ seq: 2, conversation_id: 'c1' }) });
    expect(shown).toEqual(['bob']);
    vi.unstubAllGlobals();
  });
});

describe('Session: suspension, single sign-on, service notifications', () => {
  const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

  it('a refresh answered 403 account_suspended logs out at once and says why; a later "session ended" does not replace it', async () => {
    const storage = new MemoryStorage();
    storage.setItem('chatnode.refresh_token', 'rt');
    const s = new Session(storage);
    s.status.set('authed');
    vi.stubGlobal('fetch', vi.fn(async () => json({ error: { code: 'account_suspended', message: 'this account is suspended until further notice: spam links' } }, 403)));
    await s.tokens.refresh().catch(() => undefined);
    expect(get(s.status)).toBe('anon');
    expect(get(s.authNotice)).toBe('This account is suspended until further notice. Reason: spam links');
    expect(storage.getItem('chatnode.refresh_token')).toBeNull();
    // The socket's own failure comes next (Realtime → onAuthFailed): the reason stays.
    (s as unknown as { endSession: (n: string) => void }).endSession('Your session has ended. Please log in again.');
    expect(get(s.authNotice)).toMatch(/suspended/);
  });

  it('#oidc_code is traded for a session (like a login) and leaves the address bar; #oidc_error is explained', async () => {
    const replaced: string[] = [];
    vi.stubGlobal('history', { state: null, replaceState: (_s: unknown, _t: string, url: string) => replaced.push(url) });
    vi.stubGlobal('location', { hash: '#oidc_code=one-time', pathname: '/c/c1', search: '', protocol: 'http:', host: 'chat.test' });
    const calls: string[] = [];
    vi.stubGlobal('fetch', vi.fn(async (url: string, init?: RequestInit) => {
      calls.push(`${init?.method ?? 'GET'} ${url} ${init?.body ?? ''}`);
      if (url.endsWith('/auth/oidc/exchange')) return json({ user: me('zoe'), access_token: 'a.b.c', refresh_token: 'rt-zoe' });
      return json({}, 204);
    }));
    vi.stubGlobal('WebSocket', class { constructor() { throw new Error('no sockets here'); } });
    const storage = new MemoryStorage();
    const s = new Session(storage);
    await s.init();
    expect(calls[0]).toBe('POST /api/v1/auth/oidc/exchange {"code":"one-time"}');
    expect(replaced).toEqual(['/c/c1']);
    expect(get(s.status)).toBe('authed');
    expect(get(s.me)?.id).toBe('zoe');
    expect(storage.getItem('chatnode.refresh_token')).toBe('rt-zoe');
    expect(storage.getItem('chatnode.sso_user')).toBe('zoe');
    await s.logout();

    vi.stubGlobal('location', { hash: '#oidc_error=registration_closed', pathname: '/', search: '', protocol: 'http:', host: 'chat.test' });
    const t = new Session(new MemoryStorage());
    await t.init();
    expect(get(t.status)).toBe('anon');
    expect(get(t.authNotice)).toMatch(/new accounts cannot be created/);
    vi.unstubAllGlobals();
  });

  it('notification events raise the bell live; a sync replay adds them without a toast', () => {
    const s = session();
    s.handleEvent({ type: 'ready', user: user('me'), stream_pos: 1 });
    s.handleEvent({ type: 'notification', id: 'n1', title: 'Old', body: '', url: null, created_at: '2026-12-07T10:00:00Z', stream_pos: 2 });
    expect(get(s.inbox).unread).toBe(1);
    expect(get(s.toasts)).toEqual([]);
    (s as unknown as { onLive: () => void }).onLive();
    s.handleEvent({ type: 'notification', id: 'n2', title: 'Invoice ready', body: 'December', url: '/settings', created_at: '2026-12-07T10:01:00Z', stream_pos: 3 });
    s.handleEvent({ type: 'notification', id: 'n2', title: 'Invoice ready', body: 'December', url: '/settings', created_at: '2026-12-07T10:01:00Z', stream_pos: 3 });
    expect(get(s.inbox).unread).toBe(2);
    expect(get(s.inbox).items.map((n) => n.id)).toEqual(['n2', 'n1']);
    expect(get(s.toasts).map((t) => t.text)).toEqual(['New notification: Invoice ready']);
  });
});
