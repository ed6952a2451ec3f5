import { describe, expect, it } from 'vitest';
import { Realtime, wsUrl, type SocketLike } from './realtime';
import { StreamPos } from './streampos';
import { MemoryStorage } from './testutil';
import { CLOSE_CODE, type ServerFrame } from './types';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: any[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(d: string) {
    this.sent.push(JSON.parse(d));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  recv(o: object) {
    this.onmessage?.({ data: JSON.stringify(o) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function setup(pos: StreamPos) {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const events: ServerFrame[] = [];
  const states: string[] = [];
  let lives = 0;
  let refreshes = 0;
  const rt = new Realtime({
    url: 'ws://x/api/v1/ws',
    createSocket: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    getToken: async () => 'tok',
    refreshToken: async () => {
      refreshes++;
      return 'tok2';
    },
    streamPos: () => pos,
    onEvent: (e) => events.push(e),
    onState: (s) => states.push(s),
    onLive: () => lives++,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => undefined,
    random: () => 0.5,
  });
  return { rt, sockets, timers, events, states, lives: () => lives, refreshes: () => refreshes };
}

const user = { id: 'u', username: 'u', display_name: 'U', avatar_url: null, bio: null, online: true, last_seen_at: null };

describe('Realtime', () => {
  it('authenticates first, records stream_pos, then syncs after reconnect', async () => {
    const pos = new StreamPos(new MemoryStorage(), 'u');
    const h = setup(pos);
    h.rt.start();
    await tick();
    const s1 = h.sockets[0];
    s1.open();
    expect(s1.sent[0]).toEqual({ type: 'auth', token: 'tok' });
    s1.recv({ type: 'ready', user, stream_pos: 10 });
    expect(h.rt.state).toBe('connected');
    expect(pos.value).toBe(10);
    expect(h.lives()).toBe(1);
    s1.recv({ type: 'message', message: { conversation_id: 'c' }, stream_pos: 12 });
    s1.recv({ type: 'typing', conversation_id: 'c', user_id: 'x', typing: true });
    expect(pos.value).toBe(12);
    expect(h.rt.send({ type: 'ping' })).toBe(true);

    s1.drop();
    expect(h.rt.state).toBe('reconnecting');
    expect(h.rt.send({ type: 'ping' })).toBe(false);
    const retry = h.timers[h.timers.length - 1];
    expect(retry.ms).toBeGreaterThanOrEqual(250);
    expect(retry.ms).toBeLessThanOrEqual(500);
    retry.fn();
    await tick();
    const s2 = h.sockets[1];
    s2.open();
    s2.recv({ type: 'ready', user, stream_pos: 20 });
    expect(s2.sent[1]).toEqual({ type: 'sync', since: 12 });
    expect(h.rt.state).toBe('reconnecting');
    s2.recv({ type: 'message', message: { conversation_id: 'c' }, stream_pos: 15 });
    s2.recv({ type: 'synced', stream_pos: 20 });
    expect(h.rt.state).toBe('connected');
    expect(pos.value).toBe(20);
    expect(h.lives()).toBe(2);
  });

  it('backs off exponentially while the server is down', async () => {
    const h = setup(new StreamPos(new MemoryStorage(), 'u'));
    h.rt.start();
    await tick();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      h.sockets[h.sockets.length - 1].drop();
      const t = h.timers[h.timers.length - 1];
      delays.push(t.ms);
      t.fn();
      await tick();
    }
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]);
    expect(Math.max(...delays)).toBeLessThanOrEqual(30_000);
  });

  it('refreshes the token on close code 4001 and reconnects', async () => {
    const h = setup(new StreamPos(new MemoryStorage(), 'u'));
    h.rt.start();
    await tick();
    h.sockets[0].open();
    h.sockets[0].drop(4001);
    await tick();
    await tick();
    expect(h.refreshes()).toBe(1);
    expect(h.sockets).toHaveLength(2);
  });

  it('on close code 1013 (the server could not check the token just now) reconnects after a backoff with the same token, without refreshing it', async () => {
    const h = setup(new StreamPos(new MemoryStorage(), 'u'));
    h.rt.start();
    await tick();
    h.sockets[0].open();
    h.sockets[0].recv({ type: 'error', code: 'unavailable', message: 'could not check the token just now' });
    h.sockets[0].drop(CLOSE_CODE.TRY_AGAIN_LATER);
    await tick();
    expect(h.refreshes()).toBe(0);
    expect(h.rt.state).toBe('reconnecting');
    expect(h.sockets).toHaveLength(1);
    h.timers[h.timers.length - 1].fn();
    await tick();
    expect(h.sockets).toHaveLength(2);
    h.sockets[1].open();
    expect(h.sockets[1].sent[0]).toEqual({ type: 'auth', token: 'tok' });
  });

  it('stop closes and stays offline', async () => {
    const h = setup(new StreamPos(new MemoryStorage(), 'u'));
    h.rt.start();
    await tick();
    h.rt.stop();
    expect(h.rt.state).toBe('offline');
  });

  it('builds ws/wss URLs from the page protocol', () => {
    expect(wsUrl({ protocol: 'https:', host: 'a.b' })).toBe('wss://a.b/api/v1/ws');
    expect(wsUrl({ protocol: 'http:', host: 'a:8080' })).toBe('ws://a:8080/api/v1/ws');
  });
});

describe('Realtime view frame', () => {
  it('sends the view only after ready, dedupes, and re-sends it after a reconnect', async () => {
    const h = setup(new StreamPos(new MemoryStorage(), 'u'));
    h.rt.setView('c1'); // before connecting: remembered, nothing sent
    h.rt.start();
    await tick();
    const s1 = h.sockets[0];
    s1.open();
    expect(s1.sent).toEqual([{ type: 'auth', token: 'tok' }]);
    s1.recv({ type: 'ready', user, stream_pos: 10 });
    expect(s1.sent[1]).toEqual({ type: 'view', conversation_id: 'c1' });
    h.rt.setView('c1');
    expect(s1.sent.filter((f) => f.type === 'view')).toHaveLength(1);
    h.rt.setView(null); // page hidden
    h.rt.setView('c2');
    expect(s1.sent.slice(2)).toEqual([
      { type: 'view', conversation_id: null },
      { type: 'view', conversation_id: 'c2' },
    ]);

    s1.drop();
    h.rt.setView('c3'); // changed while disconnected: nothing to send to
    h.timers[h.timers.length - 1].fn();
    await tick();
    const s2 = h.sockets[1];
    s2.open();
    s2.recv({ type: 'ready', user, stream_pos: 20 });
    // auth, sync, then the view (a new connection starts with nothing in view).
    expect(s2.sent).toEqual([
      { type: 'auth', token: 'tok' },
      { type: 'sync', since: 10 },
      { type: 'view', conversation_id: 'c3' },
    ]);
  });

  it('sends nothing after a reconnect when nothing is in view', async () => {
    const h = setup(new StreamPos(new MemoryStorage(), 'u'));
    h.rt.start();
    await tick();
    h.sockets[0].open();
    h.sockets[0].recv({ type: 'ready', user, stream_pos: 1 });
    expect(h.sockets[0].sent.some((f) => f.type === 'view')).toBe(false);
  });
});
