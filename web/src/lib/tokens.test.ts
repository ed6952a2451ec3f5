import { describe, expect, it, vi } from 'vitest';
import { Api, makeRefreshCall } from './api';
import { ApiError } from './errors';
import { inProcessLock } from './lock';
import { fakeJwt, MemoryStorage } from './testutil';
import { REFRESH_KEY, TokenManager } from './tokens';

function setup(opts: { fail?: boolean } = {}) {
  const storage = new MemoryStorage();
  let n = 0;
  const spent = new Set<string>();
  const calls: string[] = [];
  const refreshCall = vi.fn(async (rt: string) => {
    calls.push(rt);
    await new Promise((r) => setTimeout(r, 5));
    if (opts.fail || spent.has(rt)) throw new ApiError(401, 'unauthenticated', 'reused');
    spent.add(rt);
    n++;
    return { access_token: fakeJwt(Math.floor(Date.now() / 1000) + 900), refresh_token: `r${n}` };
  });
  const ended = vi.fn();
  const tm = new TokenManager({ storage, lock: inProcessLock(), refreshCall, onSessionEnded: ended, setTimer: () => 0, clearTimer: () => undefined });
  return { storage, tm, refreshCall, calls, ended };
}

describe('TokenManager', () => {
  it('serializes concurrent refreshes: one token spent once', async () => {
    const { storage, tm, calls } = setup();
    storage.setItem(REFRESH_KEY, 'r0');
    const [a, b, c] = await Promise.all([tm.getAccessToken(), tm.refresh(), tm.getAccessToken()]);
    expect(calls).toEqual(['r0']);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(storage.getItem(REFRESH_KEY)).toBe('r1');
  });

  it('two managers sharing storage and lock (two tabs) never reuse a token', async () => {
    const storage = new MemoryStorage();
    storage.setItem(REFRESH_KEY, 'r0');
    const lock = inProcessLock();
    const spent = new Set<string>();
    let n = 0;
    const refreshCall = async (rt: string) => {
      await new Promise((r) => setTimeout(r, 3));
      if (spent.has(rt)) throw new ApiError(401, 'unauthenticated', 'reuse');
      spent.add(rt);
      return { access_token: fakeJwt(Math.floor(Date.now() / 1000) + 900), refresh_token: `r${++n}` };
    };
    const mk = () => new TokenManager({ storage, lock, refreshCall, setTimer: () => 0, clearTimer: () => undefined });
    const t1 = mk();
    const t2 = mk();
    await Promise.all([t1.refresh(), t2.refresh(), t1.refresh()]);
    expect([...spent]).toEqual(['r0', 'r1']);
    expect(storage.getItem(REFRESH_KEY)).toBe('r2');
  });

  it('reuses a valid access token and refreshes a near-expired one', async () => {
    const { tm, refreshCall, storage } = setup();
    tm.setTokens({ access_token: fakeJwt(Math.floor(Date.now() / 1000) + 900), refresh_token: 'r0' });
    await tm.getAccessToken();
    expect(refreshCall).not.toHaveBeenCalled();
    tm.setTokens({ access_token: fakeJwt(Math.floor(Date.now() / 1000) + 10), refresh_token: 'r0' });
    await tm.getAccessToken();
    expect(refreshCall).toHaveBeenCalledTimes(1);
    expect(storage.getItem(REFRESH_KEY)).toBe('r1');
  });

  it('ends the session when refresh is refused', async () => {
    const { tm, storage, ended } = setup({ fail: true });
    storage.setItem(REFRESH_KEY, 'r0');
    await expect(tm.refresh()).rejects.toBeInstanceOf(ApiError);
    expect(storage.getItem(REFRESH_KEY)).toBeNull();
    expect(ended).toHaveBeenCalled();
  });

  it('schedules a proactive refresh before expiry', () => {
    const storage = new MemoryStorage();
    const delays: number[] = [];
    const tm = new TokenManager({ storage, lock: inProcessLock(), refreshCall: async () => ({ access_token: 'a', refresh_token: 'b' }), setTimer: (_f, ms) => delays.push(ms), clearTimer: () => undefined });
    tm.setTokens({ access_token: fakeJwt(Math.floor(Date.now() / 1000) + 900), refresh_token: 'r' });
    expect(delays[0]).toBeGreaterThan(800_000);
    expect(delays[0]).toBeLessThanOrEqual(840_000);
  });
});

describe('Api', () => {
  it('retries once after refreshing on 401 and parses errors', async () => {
    const storage = new MemoryStorage();
    storage.setItem(REFRESH_KEY, 'r0');
    const seen: (string | null)[] = [];
    let validToken = '';
    const fetchFn = vi.fn(async (url: string | URL | Request, init?: RequestInit) => {
      const u = String(url);
      if (u.endsWith('/auth/refresh')) {
        validToken = fakeJwt(Math.floor(Date.now() / 1000) + 900) + 'x';
        return new Response(JSON.stringify({ access_token: validToken, refresh_token: 'r1' }), { status: 200 });
      }
      const auth = (init?.headers as Record<string, string>)?.Authorization ?? null;
      seen.push(auth);
      if (u.includes('/users/me')) {
        if (auth !== `Bearer ${validToken}`) return new Response(JSON.stringify({ error: { code: 'unauthenticated', message: 'expired' } }), { status: 401 });
        return new Response(JSON.stringify({ id: 'u1', username: 'a' }), { status: 200 });
      }
      return new Response(JSON.stringify({ error: { code: 'username_taken', message: 'taken' } }), { status: 409, headers: { 'Retry-After': '3' } });
    }) as unknown as typeof fetch;
    const tm = new TokenManager({ storage, lock: inProcessLock(), refreshCall: makeRefreshCall(fetchFn), setTimer: () => 0, clearTimer: () => undefined });
    tm.setTokens({ access_token: fakeJwt(Math.floor(Date.now() / 1000) + 900), refresh_token: 'r0' });
    const api = new Api(tm, fetchFn);
    const me = await api.me();
    expect(me.id).toBe('u1');
    expect(seen).toHaveLength(2);
    expect(storage.getItem(REFRESH_KEY)).toBe('r1');
    const err = await api.register({ username: 'a', password: 'b' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('username_taken');
    expect(err.status).toBe(409);
  });

  it('maps fetch failures to a network error', async () => {
    const tm = new TokenManager({ storage: new MemoryStorage(), lock: inProcessLock(), refreshCall: async () => ({ access_token: 'a', refresh_token: 'b' }) });
    const api = new Api(tm, (async () => {
      throw new TypeError('failed');
    }) as unknown as typeof fetch);
    const err = await api.login('a', 'b').catch((e) => e);
    expect(err.code).toBe('network');
  });
});
