// Runs the real public/sw.js with a fake ServiceWorkerGlobalScope.
import { describe, expect, it } from 'vitest';
import swSource from '../../public/sw.js?raw';

type Listener = (ev: any) => void;
interface Shown {
  title: string;
  options: any;
  closed: boolean;
  data: any;
  tag: string;
  close(): void;
}

/** A CacheStorage in memory: enough of the Cache API for the worker's shell cache. */
function fakeCaches() {
  const stores = new Map<string, Map<string, Response>>();
  const key = (r: any) => new URL(typeof r === 'string' ? r : r.url, 'https://chat.example').pathname;
  const cache = (m: Map<string, Response>) => ({
    match: async (r: any) => m.get(key(r))?.clone(),
    put: async (r: any, res: Response) => void m.set(key(r), res),
  });
  return {
    open: async (name: string) => {
      if (!stores.has(name)) stores.set(name, new Map());
      return cache(stores.get(name)!);
    },
    match: async (r: any) => {
      for (const m of stores.values()) if (m.has(key(r))) return m.get(key(r))!.clone();
      return undefined;
    },
    keys: async () => [...stores.keys()],
    delete: async (name: string) => stores.delete(name),
  };
}

function loadWorker() {
  const listeners: Record<string, Listener[]> = {};
  const shown: Shown[] = [];
  const posted: any[] = [];
  const clientsList: any[] = [];
  const opened: string[] = [];
  const registration = {
    active: {},
    async showNotification(title: string, options: any = {}) {
      // Same tag replaces (as browsers do).
      for (const n of shown) if (options.tag && n.tag === options.tag) n.closed = true;
      const n: Shown = { title, options, closed: false, data: options.data, tag: options.tag ?? '', close: () => (n.closed = true) };
      shown.push(n);
    },
    async getNotifications(filter: { tag?: string } = {}) {
      return shown.filter((n) => !n.closed && (!filter.tag || n.tag === filter.tag));
    },
    pushManager: { subscribe: async (o: any) => ({ options: o }) },
  };
  const self: any = {
    registration,
    location: { origin: 'https://chat.example' },
    clients: {
      claim: async () => undefined,
      matchAll: async () => clientsList,
      openWindow: async (u: string) => void opened.push(u),
    },
    skipWaiting: () => undefined,
    addEventListener: (t: string, fn: Listener) => (listeners[t] ??= []).push(fn),
    // The network and the Cache API, in memory: every request answers 200 with a page.
    fetch: async (_r: unknown) => new Response('<!doctype html>', { headers: { 'content-type': 'text/html' } }),
    caches: fakeCaches(),
  };
  // The worker's globals are `self` (and the standard built-ins).
  new Function('self', swSource)(self);
  async function dispatch(type: string, ev: any) {
    const waits: Promise<unknown>[] = [];
    for (const fn of listeners[type] ?? []) fn({ ...ev, waitUntil: (p: Promise<unknown>) => waits.push(p) });
    await Promise.all(waits);
  }
  const open = () => shown.filter((n) => !n.closed);
  return { self, listeners, shown, open, posted, clientsList, opened, dispatch, api: self.__chatnode };
}

const pushEvent = (payload: unknown) => ({ data: { json: () => payload } });
const direct = { type: 'message', conversation_id: 'c1', seq: 7, group: null, sender: 'Bob Builder', body: 'See you at 8?', kind: 'text', url: '/c/c1' };
const group = { ...direct, conversation_id: 'g1', group: 'Hiking club', url: '/c/g1' };

describe('service worker: payload → notification', () => {
  it('direct: title = sender, body = text; tag, renotify and url', () => {
    const w = loadWorker();
    const [title, o] = w.api.notificationFor(direct);
    expect(title).toBe('Bob Builder');
    expect(o).toMatchObject({ body: 'See you at 8?', tag: 'c1', renotify: true, data: { url: '/c/c1', conversation_id: 'c1', seq: 7 } });
  });

  it('group: title = group, body = "sender: text"', () => {
    const w = loadWorker();
    const [title, o] = w.api.notificationFor(group);
    expect(title).toBe('Hiking club');
    expect(o.body).toBe('Bob Builder: See you at 8?');
    expect(o.tag).toBe('g1');
  });

  it('previews off (body null): a neutral line, never text', () => {
    const w = loadWorker();
    expect(w.api.notificationFor({ ...direct, body: null })[1].body).toBe('New message');
    expect(w.api.notificationFor({ ...group, body: null })[1].body).toBe('New message from Bob Builder');
  });

  it('keeps the click target on this site, and shortens long text', () => {
    const w = loadWorker();
    expect(w.api.notificationFor({ ...direct, url: 'https://evil.example/' })[1].data.url).toBe('/c/c1');
    expect(w.api.notificationFor({ ...direct, url: '//evil.example/c/x' })[1].data.url).toBe('/c/c1');
    expect(w.api.notificationFor({ ...direct, body: 'x'.repeat(500) })[1].body.length).toBe(180);
    expect(w.api.notificationFor({ type: 'clear', conversation_id: 'c1', seq: 1 })).toBeNull();
  });
});

describe('service worker: events', () => {
  it('push shows it; a newer one for the same conversation replaces it; clear closes it', async () => {
    const w = loadWorker();
    await w.dispatch('push', pushEvent(direct));
    await w.dispatch('push', pushEvent({ ...direct, seq: 8, body: 'Or 9?' }));
    expect(w.open().map((n) => [n.title, n.options.body])).toEqual([['Bob Builder', 'Or 9?']]);
    await w.dispatch('push', pushEvent(group));
    // Read up to seq 7 elsewhere: the notification for seq 8 stays.
    await w.dispatch('push', pushEvent({ type: 'clear', conversation_id: 'c1', seq: 7 }));
    expect(w.open().map((n) => n.tag)).toEqual(['c1', 'g1']);
    await w.dispatch('push', pushEvent({ type: 'clear', conversation_id: 'c1', seq: 8 }));
    expect(w.open().map((n) => n.tag)).toEqual(['g1']);
  });

  it('an unreadable push still shows something (userVisibleOnly)', async () => {
    const w = loadWorker();
    await w.dispatch('push', { data: { json: () => JSON.parse('not json') } });
    expect(w.open()).toHaveLength(1);
    expect(w.open()[0].options.body).toBe('New message');
  });

  it('the test-push message runs the same code path and replies', async () => {
    const w = loadWorker();
    const replies: any[] = [];
    await w.dispatch('message', { data: { type: 'test-push', id: 1, payload: group }, source: { postMessage: (m: any) => replies.push(m) } });
    expect(w.open()[0]).toMatchObject({ title: 'Hiking club', tag: 'g1' });
    expect(replies).toEqual([{ type: 'test-push-done', id: 1, ok: true, result: { shown: 'Hiking club' } }]);
    await w.dispatch('message', { data: { type: 'test-push', id: 2, payload: { type: 'clear', conversation_id: 'g1', seq: 99 } }, source: { postMessage: (m: any) => replies.push(m) } });
    expect(w.open()).toHaveLength(0);
    await w.dispatch('message', { data: { type: 'something-else' } });
    expect(w.shown).toHaveLength(1);
  });

  it('a click focuses an open window and routes it; with none, opens one', async () => {
    const w = loadWorker();
    const note = { close: () => undefined, data: { url: '/c/g1' } };
    await w.dispatch('notificationclick', { notification: note });
    expect(w.opened).toEqual(['/c/g1']);
    const msgs: any[] = [];
    const client = { url: 'https://chat.example/people', focused: false, visibilityState: 'hidden', focus: async () => client, postMessage: (m: any) => msgs.push(m) };
    w.clientsList.push(client);
    await w.dispatch('notificationclick', { notification: note });
    expect(msgs).toEqual([{ type: 'navigate', url: '/c/g1' }]);
    expect(w.opened).toHaveLength(1);
  });

  it('pushsubscriptionchange subscribes again with the old key and tells open pages', async () => {
    const w = loadWorker();
    const msgs: any[] = [];
    w.clientsList.push({ postMessage: (m: any) => msgs.push(m) });
    let subscribed: any = null;
    w.self.registration.pushManager.subscribe = async (o: any) => (subscribed = o);
    await w.dispatch('pushsubscriptionchange', { oldSubscription: { options: { applicationServerKey: 'KEY' } }, newSubscription: null });
    expect(subscribed).toEqual({ userVisibleOnly: true, applicationServerKey: 'KEY' });
    expect(msgs).toEqual([{ type: 'push-subscription-changed' }]);
  });
});

describe('service worker: app shell', () => {
  const fetchEvent = (url: string, o: { method?: string; mode?: string } = {}) => {
    let responded = false;
    const ev = { request: { url, method: o.method ?? 'GET', mode: o.mode ?? 'cors' }, respondWith: () => (responded = true), waitUntil: () => undefined };
    return { ev, responded: () => responded };
  };
  it('never handles /api/, other origins, other methods or the worker itself', () => {
    const w = loadWorker();
    for (const [url, o] of [
      ['https://chat.example/api/v1/conversations', {}],
      ['https://chat.example/api/v1/media/abc', {}],
      ['https://chat.example/api/v1/ws', { mode: 'navigate' }],
      ['https://elsewhere.example/assets/x.js', {}],
      ['https://chat.example/assets/x.js', { method: 'POST' }],
      ['https://chat.example/sw.js', {}],
    ] as const) {
      const f = fetchEvent(url, o);
      for (const fn of w.listeners.fetch) fn(f.ev);
      expect(f.responded(), url).toBe(false);
    }
  });
  it('answers page loads and shell files', () => {
    const w = loadWorker();
    for (const [url, o] of [
      ['https://chat.example/c/123', { mode: 'navigate' }],
      ['https://chat.example/assets/index-abc.js', {}],
      ['https://chat.example/manifest.webmanifest', {}],
      ['https://chat.example/icons/icon-192.png', {}],
    ] as const) {
      const f = fetchEvent(url, o);
      for (const fn of w.listeners.fetch) fn(f.ev);
      expect(f.responded(), url).toBe(true);
    }
    expect(w.api.isShellPath('/assets/a.css')).toBe(true);
    expect(w.api.isShellPath('/api/v1/x')).toBe(false);
  });
  it('finds the shell files in index.html when the build did not list them (dev)', async () => {
    const w = loadWorker();
    const files = await w.api.shellFiles('<script type="module" src="/assets/index-1.js"></script><link rel="stylesheet" href="/assets/s.css"><link rel="manifest" href="/manifest.webmanifest">');
    expect(files).toEqual(expect.arrayContaining(['/assets/index-1.js', '/assets/s.css', '/manifest.webmanifest', '/favicon.svg']));
  });
});

describe('service worker: service notifications (POST /notify)', () => {
  const note = { type: 'notification', id: 'n1', title: 'Invoice ready', body: 'Your invoice for December is ready.', url: '/settings' };

  it('shows title and body, one notification per ID, with where it leads', () => {
    const w = loadWorker();
    const [title, o] = w.api.notificationFor(note);
    expect(title).toBe('Invoice ready');
    expect(o).toMatchObject({ body: 'Your invoice for December is ready.', tag: 'notification-n1', data: { url: '/settings', external: false, notification_id: 'n1' } });
    expect(w.api.notificationFor({ ...note, body: 'x'.repeat(2000) })[1].body.length).toBe(180);
    expect(w.api.notificationFor({ ...note, title: '  ' })[0]).toBe('ChatNode');
  });

  it('a path stays in the app; https opens that page; anything else opens the app', () => {
    const w = loadWorker();
    expect(w.api.notificationUrl('/c/abc')).toEqual({ url: '/c/abc', external: false });
    expect(w.api.notificationUrl('https://billing.example.com/inv/12')).toEqual({ url: 'https://billing.example.com/inv/12', external: true });
    expect(w.api.notificationUrl('/api/v1/media/x')).toEqual({ url: '/api/v1/media/x', external: true });
    for (const bad of [null, undefined, '', 'http://plain.example/', 'javascript:alert(1)', '//evil.example/x', '/\\evil.example', 42]) {
      expect(w.api.notificationUrl(bad), String(bad)).toEqual({ url: '/', external: false });
    }
  });

  it('push shows it; two notifications stay side by side', async () => {
    const w = loadWorker();
    await w.dispatch('push', pushEvent(note));
    await w.dispatch('push', pushEvent({ ...note, id: 'n2', title: 'Second', url: null }));
    expect(w.open().map((n) => [n.title, n.tag, n.data.url])).toEqual([
      ['Invoice ready', 'notification-n1', '/settings'],
      ['Second', 'notification-n2', '/'],
    ]);
  });

  it('a click on a path routes an open window in place; on an https URL opens that page', async () => {
    const w = loadWorker();
    const msgs: any[] = [];
    const client = { url: 'https://chat.example/', focused: true, visibilityState: 'visible', focus: async () => client, postMessage: (m: any) => msgs.push(m) };
    w.clientsList.push(client);
    const [, inApp] = w.api.notificationFor(note);
    await w.dispatch('notificationclick', { notification: { close: () => undefined, data: inApp.data } });
    expect(msgs).toEqual([{ type: 'navigate', url: '/settings' }]);
    expect(w.opened).toEqual([]);
    const [, away] = w.api.notificationFor({ ...note, url: 'https://billing.example.com/inv/12' });
    await w.dispatch('notificationclick', { notification: { close: () => undefined, data: away.data } });
    expect(w.opened).toEqual(['https://billing.example.com/inv/12']);
    expect(msgs).toHaveLength(1);
  });
});
