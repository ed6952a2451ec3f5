import { describe, expect, it, vi } from 'vitest';
import { backoffDelay } from './backoff';
import { ApiError, friendlyError } from './errors';
import { lastSeen, titleWithUnread } from './format';
import { jwtExpiry } from './jwt';
import { linkify, safeHref } from './linkify';
import { inProcessLock, storageLock } from './lock';
import { Outbox } from './outbox';
import { StreamPos } from './streampos';
import { fakeJwt, MemoryStorage } from './testutil';
import { TypingSender } from './typing';

describe('backoff', () => {
  it('grows exponentially, is capped, and jitter stays in bounds', () => {
    const p = { baseMs: 500, maxMs: 30_000, jitter: 0.5 };
    for (let a = 0; a < 20; a++) {
      const cap = Math.min(30_000, 500 * 2 ** a);
      for (const r of [0, 0.3, 0.999999]) {
        const d = backoffDelay(a, p, () => r);
        expect(d).toBeGreaterThanOrEqual(cap / 2);
        expect(d).toBeLessThanOrEqual(cap);
      }
    }
    expect(backoffDelay(0, p, () => 1)).toBe(500);
    expect(backoffDelay(3, p, () => 1)).toBe(4000);
    expect(backoffDelay(50, p, () => 1)).toBe(30_000);
    expect(backoffDelay(50, p, () => 0)).toBe(15_000);
  });
  it('spreads clients apart', () => {
    const values = new Set(Array.from({ length: 50 }, () => backoffDelay(4)));
    expect(values.size).toBeGreaterThan(10);
  });
});

describe('outbox', () => {
  const item = (n: number, c = 'c1') => ({ client_id: `id${n}`, conversation_id: c, body: `b${n}`, reply_to_seq: null, created_at: '' });
  it('persists, survives reload, flushes in order, removes on ack', () => {
    const st = new MemoryStorage();
    const o = new Outbox(st, 'u1');
    o.add(item(1));
    o.add(item(2, 'c2'));
    o.add(item(3));
    o.add(item(1)); // duplicate ignored
    const o2 = new Outbox(st, 'u1');
    expect(o2.list().map((i) => i.client_id)).toEqual(['id1', 'id2', 'id3']);
    expect(o2.list('c1').map((i) => i.client_id)).toEqual(['id1', 'id3']);
    const sent: string[] = [];
    expect(o2.flush((i) => void sent.push(i.client_id))).toBe(3);
    expect(sent).toEqual(['id1', 'id2', 'id3']);
    expect(o2.size).toBe(3); // stays until acked
    o2.remove('id2');
    expect(new Outbox(st, 'u1').list().map((i) => i.client_id)).toEqual(['id1', 'id3']);
    expect(new Outbox(st, 'other').size).toBe(0);
  });
  it('stops flushing when the socket refuses', () => {
    const o = new Outbox(new MemoryStorage(), 'u');
    o.add(item(1));
    o.add(item(2));
    const sent: string[] = [];
    o.flush((i) => {
      sent.push(i.client_id);
      return false;
    });
    expect(sent).toEqual(['id1']);
  });
  it('tolerates corrupt storage', () => {
    const st = new MemoryStorage();
    st.setItem('chatnode.outbox.u', '{bad');
    expect(new Outbox(st, 'u').size).toBe(0);
  });
});

describe('stream position', () => {
  it('only moves forward and persists per user', () => {
    const st = new MemoryStorage();
    const p = new StreamPos(st, 'u1');
    expect(p.value).toBeNull();
    expect(p.observe(5)).toBe(true);
    expect(p.observe(3)).toBe(false);
    expect(p.observe(undefined)).toBe(false);
    expect(p.observe(9)).toBe(true);
    expect(new StreamPos(st, 'u1').value).toBe(9);
    expect(new StreamPos(st, 'u2').value).toBeNull();
  });
});

describe('linkify', () => {
  it('links only http(s) and keeps the rest as text', () => {
    expect(linkify('see https://example.com/a?b=1, ok')).toEqual([
      { type: 'text', text: 'see ' },
      { type: 'link', text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { type: 'text', text: ', ok' },
    ]);
    expect(linkify('javascript:alert(1) <img src=x onerror=alert(1)>')).toEqual([
      { type: 'text', text: 'javascript:alert(1) <img src=x onerror=alert(1)>' },
    ]);
    expect(linkify('(http://a.example/x_(y))').find((s) => s.type === 'link')?.text).toBe('http://a.example/x_(y)');
    expect(safeHref('javascript:alert(1)')).toBeNull();
    expect(safeHref('data:text/html,x')).toBeNull();
    expect(linkify('')).toEqual([]);
  });
});

describe('errors', () => {
  it('maps codes to plain words, falls back to the server message', () => {
    expect(friendlyError(new ApiError(409, 'username_taken', 'x'))).toMatch(/already taken/);
    expect(friendlyError(new ApiError(401, 'invalid_credentials', 'x'))).toMatch(/do not match/);
    expect(friendlyError(new ApiError(429, 'rate_limited', 'x', 7))).toMatch(/7 s/);
    expect(friendlyError(new ApiError(400, 'weird_code', 'Server says no'))).toBe('Server says no');
  });
});

describe('misc', () => {
  it('title shows unread total', () => {
    expect(titleWithUnread(3)).toBe('(3) ChatNode');
    expect(titleWithUnread(0)).toBe('ChatNode');
  });
  it('jwt expiry', () => {
    expect(jwtExpiry(fakeJwt(1234))).toBe(1234);
    expect(jwtExpiry('opaque')).toBeNull();
  });
  it('last seen', () => {
    expect(lastSeen(true, null)).toBe('online');
    expect(lastSeen(false, new Date(Date.now() - 5 * 60_000).toISOString())).toBe('last seen 5 min ago');
  });
});

describe('locks', () => {
  it('in-process lock serializes', async () => {
    const lock = inProcessLock();
    const log: string[] = [];
    const job = (n: string) => lock('x', async () => {
      log.push(`start ${n}`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`end ${n}`);
    });
    await Promise.all([job('a'), job('b')]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b']);
  });
  it('storage lock waits for another holder', async () => {
    const st = new MemoryStorage();
    st.setItem('chatnode.lock.r', JSON.stringify({ owner: 'other', until: Date.now() + 30 }));
    const t0 = Date.now();
    await storageLock(st, 1000, (ms) => new Promise((r) => setTimeout(r, ms)))('r', async () => undefined);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    expect(st.getItem('chatnode.lock.r')).toBeNull();
  });
});

describe('typing sender', () => {
  it('throttles true and sends false when idle or stopped', () => {
    let now = 0;
    const timers: (() => void)[] = [];
    const sent: boolean[] = [];
    const t = new TypingSender((b) => sent.push(b), { now: () => now, setTimer: (fn) => timers.push(fn), clearTimer: () => undefined, throttleMs: 3000 });
    t.input();
    now = 1000;
    t.input();
    now = 3500;
    t.input();
    expect(sent).toEqual([true, true]);
    t.stop();
    t.stop();
    expect(sent).toEqual([true, true, false]);
    t.input();
    timers[timers.length - 1]();
    expect(sent).toEqual([true, true, false, true, false]);
  });
});

vi.useRealTimers();
