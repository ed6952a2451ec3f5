import { describe, expect, it } from 'vitest';
import { emptyState, setConversations, setMuted, upsertConversation } from './chat';
import {
  base64UrlToBytes,
  isMuted,
  isMutedForever,
  msUntilUnmuted,
  MUTE_OPTIONS,
  mutedLabel,
  muteRequest,
  PUSH_TEXT,
  shouldPageNotify,
  subscribeErrorText,
  subscriptionBody,
  viewTarget,
  withTimeout,
} from './notify';
import { conv } from './testutil';

const NOW = Date.UTC(2026, 10, 21, 8, 0, 0);

describe('mute state', () => {
  it('builds the PUT body: {} for forever, an RFC 3339 time otherwise', () => {
    expect(muteRequest(null, NOW)).toEqual({});
    expect(muteRequest(3_600_000, NOW)).toEqual({ until: '2026-11-21T09:00:00.000Z' });
    expect(MUTE_OPTIONS.map((o) => o.key)).toEqual(['1h', '8h', '1w', 'forever']);
    expect(MUTE_OPTIONS.find((o) => o.key === '1w')!.ms).toBe(7 * 24 * 3_600_000);
  });

  it('knows whether a conversation is muted now', () => {
    expect(isMuted(conv({ id: 'a' }), NOW)).toBe(false);
    expect(isMuted(conv({ id: 'a', muted_until: undefined }), NOW)).toBe(false);
    expect(isMuted(conv({ id: 'a', muted_until: '2026-11-21T09:00:00Z' }), NOW)).toBe(true);
    expect(isMuted(conv({ id: 'a', muted_until: '2026-11-21T07:59:59Z' }), NOW)).toBe(false); // ran out
    expect(isMuted(conv({ id: 'a', muted_until: '9999-12-31T23:59:59Z' }), NOW)).toBe(true);
    expect(isMutedForever(conv({ id: 'a', muted_until: '9999-12-31T23:59:59Z' }))).toBe(true);
    expect(isMutedForever(conv({ id: 'a', muted_until: '2026-11-21T09:00:00Z' }))).toBe(false);
  });

  it('labels and times the mute', () => {
    expect(mutedLabel(conv({ id: 'a' }), NOW)).toBe('');
    expect(mutedLabel(conv({ id: 'a', muted_until: '9999-12-31T23:59:59Z' }), NOW)).toBe('Muted');
    expect(mutedLabel(conv({ id: 'a', muted_until: '2026-11-21T09:00:00Z' }), NOW)).toMatch(/^Muted until /);
    expect(msUntilUnmuted(conv({ id: 'a', muted_until: '2026-11-21T09:00:00Z' }), NOW)).toBe(3_600_000);
    expect(msUntilUnmuted(conv({ id: 'a', muted_until: '9999-12-31T23:59:59Z' }), NOW)).toBeNull();
  });

  it('the reducer records mute changes; a full conversation without muted_until is unmuted', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'c1' })]);
    s = setMuted(s, 'c1', '9999-12-31T23:59:59Z');
    expect(isMuted(s.conversations.c1, NOW)).toBe(true);
    // conversation.updated / a reload carrying the mute keeps it
    s = upsertConversation(s, conv({ id: 'c1', muted_until: '9999-12-31T23:59:59Z' }));
    expect(isMuted(s.conversations.c1, NOW)).toBe(true);
    // unmuted on another device: the server sends the conversation without muted_until
    s = upsertConversation(s, conv({ id: 'c1' }));
    expect(isMuted(s.conversations.c1, NOW)).toBe(false);
    s = setMuted(s, 'c1', '2026-11-21T09:00:00Z');
    s = setMuted(s, 'c1', null);
    expect(s.conversations.c1.muted_until).toBeUndefined();
    expect(setMuted(s, 'nope', null)).toBe(s);
  });
});

describe('view target', () => {
  it('is the open conversation only while the page is visible', () => {
    expect(viewTarget('c1', 'visible')).toBe('c1');
    expect(viewTarget('c1', 'hidden')).toBeNull();
    expect(viewTarget(null, 'visible')).toBeNull();
    expect(viewTarget('c1', undefined)).toBeNull();
  });
});

describe('in-page notifications', () => {
  const base = { enabled: true, permission: 'granted', hidden: true, muted: false, pushActive: false };
  it('only for a hidden tab, when on and allowed, not muted, and without a push subscription', () => {
    expect(shouldPageNotify(base)).toBe(true);
    expect(shouldPageNotify({ ...base, hidden: false })).toBe(false);
    expect(shouldPageNotify({ ...base, enabled: false })).toBe(false);
    expect(shouldPageNotify({ ...base, permission: 'denied' })).toBe(false);
    expect(shouldPageNotify({ ...base, muted: true })).toBe(false);
    expect(shouldPageNotify({ ...base, pushActive: true })).toBe(false); // the service worker shows it
  });
});

describe('push subscription helpers', () => {
  it('decodes a base64url applicationServerKey', () => {
    const bytes = new Uint8Array(65).map((_, i) => (i * 37 + 4) & 0xff);
    const b64u = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect([...base64UrlToBytes(b64u)]).toEqual([...bytes]);
    expect([...base64UrlToBytes('AQID')]).toEqual([1, 2, 3]);
  });

  it('takes endpoint and keys from PushSubscription.toJSON()', () => {
    expect(subscriptionBody({ endpoint: 'https://push.example/x', keys: { p256dh: 'P', auth: 'A' }, expirationTime: null } as never)).toEqual({
      endpoint: 'https://push.example/x',
      keys: { p256dh: 'P', auth: 'A' },
    });
    expect(subscriptionBody({ endpoint: 'https://push.example/x', keys: {} })).toBeNull();
    expect(subscriptionBody(null)).toBeNull();
  });

  it('says in plain words why subscribing failed', () => {
    const dom = (name: string) => Object.assign(new Error('x'), { name });
    expect(subscribeErrorText(dom('AbortError'))).toBe(PUSH_TEXT.pushService);
    expect(subscribeErrorText(dom('NotAllowedError'))).toBe(PUSH_TEXT.denied);
    expect(subscribeErrorText(dom('TimeoutError'))).toBe(PUSH_TEXT.timeout);
    expect(subscribeErrorText(Object.assign(new Error('Registration failed - permission denied'), { name: 'AbortError' }))).toBe(PUSH_TEXT.refused);
    expect(subscribeErrorText(new Error('Registration failed - push service error'))).toMatch(/could not reach its push service/);
  });

  it('gives up on a subscribe() that hangs', async () => {
    let fire: () => void = () => undefined;
    const p = withTimeout(new Promise(() => undefined), 15_000, (fn) => (fire = fn));
    fire();
    await expect(p).rejects.toMatchObject({ name: 'TimeoutError' });
    await expect(withTimeout(Promise.resolve(7), 10, () => undefined)).resolves.toBe(7);
  });
});
