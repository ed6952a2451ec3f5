// ChatNode service worker (served at /sw.js, scope /). Plain JavaScript, no imports.
// It shows Web Push notifications and opens the right conversation when one is clicked, and
// keeps the app shell (index.html and the built files) so that ChatNode opens without a network.
// Its fetch handler only touches same-origin GETs of the shell: never /api/ (messages, media and
// everything else the server answers go to the network as if there were no worker); the last
// loaded chats come from the page's own copy in localStorage, not from this cache.
//
// App shell: page loads (navigations) go to the network first and fall back to the cached
// index.html when it cannot be reached; hashed files under /assets/ come from the cache first
// (they never change); the manifest, icons and favicon from the cache, refreshed in the
// background. The build (vite.config.ts) writes BUILD and PRECACHE below, so every build is a
// new worker that caches its files on install and deletes older caches on activate.
//
// Push payload (decrypted by the browser), see docs/protocol.md and docs/decisions.md:
//   {"type":"message","conversation_id","seq","group":name|null,"sender","body":text|null,"kind","url":"/c/<id>"}
//   {"type":"clear","conversation_id","seq"}   the conversation was read elsewhere
//   {"type":"notification","id","title","body","url":path|https URL|null}   a service notification
//     (POST /api/v1/notify); a click opens `url`: a path in the app (routed in place like a
//     message), an https page in a new window, or the app when there is none
'use strict';

const BUILD = 'dev';
const PRECACHE = [];
const SHELL_CACHE = `chatnode-shell-${BUILD}`;
const SHELL_PREFIX = 'chatnode-shell-';

const NEUTRAL = 'New message';
const MAX_BODY = 180;

function truncate(s) {
  const t = String(s).replace(/\s+/g, ' ').trim();
  return t.length > MAX_BODY ? `${t.slice(0, MAX_BODY - 1)}…` : t;
}

/**
 * Where a service notification leads: a path on this site (not under /api/, which is opened as a
 * page of its own), an https URL (another site: a new window), or the app's start page.
 */
function notificationUrl(url) {
  if (typeof url !== 'string') return { url: '/', external: false };
  const u = url.trim();
  if (u.startsWith('/') && !u.startsWith('//') && !u.startsWith('/\\')) return { url: u, external: u.startsWith('/api/') };
  if (/^https:\/\/[^\s/]/i.test(u)) return { url: u, external: true };
  return { url: '/', external: false };
}

/** A service notification → [title, NotificationOptions] (one per notification ID). */
function serviceNotificationFor(p) {
  const title = typeof p.title === 'string' && p.title.trim() ? p.title.trim().slice(0, 100) : 'ChatNode';
  const body = typeof p.body === 'string' ? truncate(p.body) : '';
  const target = notificationUrl(p.url);
  return [
    title,
    {
      body,
      tag: `notification-${String(p.id)}`,
      icon: '/favicon.svg',
      data: { url: target.url, external: target.external, notification_id: String(p.id) },
    },
  ];
}

/** A same-origin path for the conversation (never a URL from elsewhere). */
function safeUrl(url, conversationId) {
  if (typeof url === 'string' && /^\/c\/[A-Za-z0-9_-]+$/.test(url)) return url;
  return `/c/${encodeURIComponent(String(conversationId))}`;
}

/**
 * Payload → [title, NotificationOptions], or null when it is neither a message nor a service
 * notification.
 * Title: the group's name, else the sender. Body: "Sender: text" in a group, the text in a
 * direct chat, or a neutral line when previews are off (body null).
 */
function notificationFor(p) {
  if (p && p.type === 'notification' && p.id !== undefined && p.id !== null) return serviceNotificationFor(p);
  if (!p || p.type !== 'message' || p.conversation_id === undefined || p.conversation_id === null) return null;
  const sender = typeof p.sender === 'string' && p.sender.trim() ? p.sender.trim() : 'Someone';
  const group = typeof p.group === 'string' && p.group.trim() ? p.group.trim() : null;
  const text = typeof p.body === 'string' && p.body.trim() ? truncate(p.body) : null;
  const title = group || sender;
  let body;
  if (text === null) body = group ? `${NEUTRAL} from ${sender}` : NEUTRAL;
  else body = group ? `${sender}: ${text}` : text;
  const id = String(p.conversation_id);
  return [
    title,
    {
      body,
      tag: id, // one notification per conversation: a newer one replaces it
      renotify: true, // …and still alerts
      icon: '/favicon.svg',
      data: { url: safeUrl(p.url, id), conversation_id: id, seq: typeof p.seq === 'number' ? p.seq : null },
    },
  ];
}

/** The one code path for a payload, used by `push` and by the `test-push` message. */
async function handlePayload(p) {
  if (p && p.type === 'clear' && p.conversation_id !== undefined && p.conversation_id !== null) {
    const tag = String(p.conversation_id);
    const open = await self.registration.getNotifications({ tag });
    for (const n of open) {
      const seq = n.data && typeof n.data.seq === 'number' ? n.data.seq : null;
      // Read up to `seq` elsewhere: a notification for a newer message stays.
      if (seq === null || typeof p.seq !== 'number' || seq <= p.seq) n.close();
    }
    return { shown: null, cleared: tag };
  }
  const n = notificationFor(p);
  if (!n) {
    // Something unexpected: a push must still show something (userVisibleOnly).
    await self.registration.showNotification('ChatNode', { body: NEUTRAL, tag: 'chatnode', data: { url: '/' } });
    return { shown: 'ChatNode' };
  }
  await self.registration.showNotification(n[0], n[1]);
  return { shown: n[0] };
}

// ---------- app shell ----------

/** The shell files: the build's list, or (dev) the files index.html names. */
async function shellFiles(indexHtml) {
  if (PRECACHE.length) return PRECACHE;
  const found = new Set(['/manifest.webmanifest', '/favicon.svg']);
  for (const m of indexHtml.matchAll(/(?:src|href)="(\/[^"]+)"/g)) if (!m[1].startsWith('/api/')) found.add(m[1]);
  return [...found];
}

/** Caches index.html (as "/") and the shell files. A file that fails is skipped: push must work anyway. */
async function precache() {
  const cache = await self.caches.open(SHELL_CACHE);
  let html = '';
  try {
    const res = await self.fetch('/', { cache: 'no-cache' });
    if (res.ok) {
      html = await res.clone().text();
      await cache.put('/', res);
    }
  } catch {
    /* offline while installing: cached on the next page load */
  }
  const files = await shellFiles(html);
  await Promise.all(
    files.map(async (f) => {
      try {
        const res = await self.fetch(f, { cache: 'no-cache' });
        if (res.ok) await cache.put(f, res);
      } catch {
        /* skipped */
      }
    }),
  );
}

function isShellPath(p) {
  return p.startsWith('/assets/') || p.startsWith('/icons/') || p === '/manifest.webmanifest' || p === '/favicon.svg' || PRECACHE.includes(p);
}

/** A page load: the network's index.html (kept for later), else the cached one. */
async function navigation(request) {
  const cache = await self.caches.open(SHELL_CACHE);
  try {
    const res = await self.fetch(request);
    if (res.ok && (res.headers.get('content-type') || '').includes('text/html')) await cache.put('/', res.clone());
    return res;
  } catch (e) {
    const cached = (await cache.match('/')) || (await self.caches.match('/'));
    if (cached) return cached;
    throw e;
  }
}

/** /assets/ files have content hashes in their names: the cached copy is the right one. */
async function cacheFirst(request) {
  const cache = await self.caches.open(SHELL_CACHE);
  const hit = await cache.match(request, { ignoreSearch: true });
  if (hit) return hit;
  const res = await self.fetch(request);
  if (res.ok) await cache.put(request, res.clone());
  return res;
}

/** Manifest, icons, favicon: the cached copy now, a fresh one for next time. */
async function staleWhileRevalidate(request, event) {
  const cache = await self.caches.open(SHELL_CACHE);
  const hit = await cache.match(request, { ignoreSearch: true });
  const fresh = self.fetch(request).then(
    async (res) => {
      if (res.ok) await cache.put(request, res.clone());
      return res;
    },
    () => null,
  );
  if (hit) {
    event.waitUntil(fresh);
    return hit;
  }
  return (await fresh) || Response.error();
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/api/') || url.pathname === '/sw.js') return;
  if (req.mode === 'navigate') event.respondWith(navigation(req));
  else if (url.pathname.startsWith('/assets/')) event.respondWith(cacheFirst(req));
  else if (isShellPath(url.pathname)) event.respondWith(staleWhileRevalidate(req, event));
});

self.addEventListener('install', (event) => {
  event.waitUntil(precache().finally(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  // Older builds' caches go; then control open pages at once (they listen for "navigate" from
  // notification clicks, and are served offline from now on).
  event.waitUntil(
    (async () => {
      const names = await self.caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(SHELL_PREFIX) && n !== SHELL_CACHE).map((n) => self.caches.delete(n)));
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('push', (event) => {
  let payload = null;
  try {
    payload = event.data ? event.data.json() : null;
  } catch {
    payload = null;
  }
  event.waitUntil(handlePayload(payload));
});

// Used by the end-to-end tests only: runs exactly the push code path with a given payload,
// since the test browser has no push service. Messages come only from same-origin pages,
// which could call registration.showNotification() themselves: this adds no capability.
self.addEventListener('message', (event) => {
  const d = event.data;
  if (!d || d.type !== 'test-push') return;
  const reply = (msg) => {
    if (event.source && typeof event.source.postMessage === 'function') event.source.postMessage(msg);
  };
  event.waitUntil(
    handlePayload(d.payload).then(
      (r) => reply({ type: 'test-push-done', id: d.id, ok: true, result: r }),
      (e) => reply({ type: 'test-push-done', id: d.id, ok: false, error: String((e && e.message) || e) }),
    ),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const url = data.url || '/';
  event.waitUntil(
    (async () => {
      // Another site (a service notification's https link), or a file under /api/: a new window.
      if (data.external) {
        await self.clients.openWindow(url);
        return;
      }
      const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const client = wins.find((c) => c.focused) || wins.find((c) => c.visibilityState === 'visible') || wins[0];
      if (client) {
        const focused = await client.focus().catch(() => client);
        // The page routes in place (no reload); an uncontrolled page is navigated instead.
        if (self.registration.active && focused.url && new URL(focused.url).origin === self.location.origin) {
          focused.postMessage({ type: 'navigate', url });
          return;
        }
        if (typeof focused.navigate === 'function') {
          await focused.navigate(url).catch(() => undefined);
          return;
        }
      }
      await self.clients.openWindow(url);
    })(),
  );
});

// The push service replaced or expired the subscription: subscribe again with the same key.
// The worker has no access token, so open pages register the new one with the server (and
// every page start re-registers the current subscription). The old endpoint answers 404/410
// to the server, which then drops it.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    (async () => {
      let sub = event.newSubscription || null;
      const old = event.oldSubscription;
      const key = old && old.options ? old.options.applicationServerKey : null;
      if (!sub && key) sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      const wins = await self.clients.matchAll({ type: 'window' });
      for (const c of wins) c.postMessage({ type: 'push-subscription-changed' });
    })().catch(() => undefined),
  );
});

// For unit tests (node:vm); the browser ignores this.
self.__chatnode = { notificationFor, notificationUrl, handlePayload, safeUrl, isShellPath, shellFiles };
