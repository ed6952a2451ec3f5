// End-to-end tests: playwright-core driving Debian's Chromium against a running ChatNode.
//   CHATNODE_URL          backend base URL (default http://127.0.0.1:8080)
//   CHATNODE_E2E_DIRECT=1 load the page from CHATNODE_URL itself (the server's own web build)
//                         instead of serving ./dist through the local CSP proxy (default)
//   CHATNODE_E2E_MOCK=1   start the in-memory mock API (e2e/mock-server.mjs) as the backend
//   CHATNODE_RESTART_CMD  shell command that restarts the server (same port and data dir);
//                         run mid-conversation to check reconnect + outbox delivery. The
//                         presence test appends a number of seconds to stay down (as
//                         `scripts/e2e.sh restart DIR SECONDS` takes it)
//   CHATNODE_E2E_ONLY     comma-separated test-name substrings to run
//   CHROMIUM_PATH         browser binary (default /usr/bin/chromium)
//   CHATNODE_BIN, CHATNODE_DATA_DIR  the server binary and its data dir, to run its command line
//                         (`admin grant`, `service-token create`); tests that need it skip without
//   CHATNODE_E2E_IDP      the test OpenID provider (crates/server/tests/oidc) the server signs in
//                         with as "Test IdP"; the single sign-on test skips without
import { exec } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import zlib from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startMock } from './mock-server.mjs';
import { startServe } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const shots = path.join(here, 'screenshots');
fs.mkdirSync(shots, { recursive: true });
const dist = path.resolve(here, '../dist');

let backend = process.env.CHATNODE_URL ?? 'http://127.0.0.1:8080';
const direct = process.env.CHATNODE_E2E_DIRECT === '1';
const restartCmd = process.env.CHATNODE_RESTART_CMD;
const only = process.env.CHATNODE_E2E_ONLY?.split(',').filter(Boolean);

let mock = null;
if (process.env.CHATNODE_E2E_MOCK === '1') {
  mock = await startMock(0);
  backend = mock.url;
}
try {
  const r = await fetch(`${backend}/healthz`).catch(() => null);
  if (!r && !mock) throw new Error(`no server at ${backend}`);
} catch (e) {
  console.error(String(e));
  console.log('0 passed, 1 failed');
  process.exit(1);
}
let serve = null;
let base = backend;
if (!direct) {
  if (!fs.existsSync(path.join(dist, 'index.html'))) {
    console.error('web/dist is missing: run `npm run build` first');
    process.exit(1);
  }
  // A private copy: a build running meanwhile (npm run build, or the server's build script)
  // empties dist/ while it writes.
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'chatnode-dist-'));
  fs.cpSync(dist, copy, { recursive: true });
  process.on('exit', () => fs.rmSync(copy, { recursive: true, force: true }));
  serve = await startServe({ distDir: copy, backend });
  base = serve.url;
}
console.log(`e2e: page ${base} (${direct ? 'direct' : 'local dist via CSP proxy'}), backend ${backend}${mock ? ' (mock)' : ''}`);

// A fake microphone (a tone) that needs no permission prompt, for the voice messages.
const launchArgs = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: launchArgs });

// ---------- helpers ----------
const T = 15_000;
const run = Math.random().toString(36).slice(2, 7);
const consoleProblems = [];
const dialogs = [];

async function newPage(label, viewport = { width: 1280, height: 800 }) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content.Security.Policy|Refused to/i.test(m.text())) consoleProblems.push(`[${label}] ${m.text()}`);
  });
  page.on('response', (r) => r.status() >= 400 && consoleProblems.push(`[${label}] HTTP ${r.status()} ${r.request().method()} ${r.url().replace(/^https?:\/\/[^/]+/, '')}`));
  page.on('pageerror', (e) => consoleProblems.push(`[${label}] pageerror: ${e.message}`));
  page.on('dialog', async (d) => {
    dialogs.push({ label, type: d.type(), message: d.message() });
    if (d.type() === 'confirm') await d.accept();
    else await d.dismiss();
  });
  return { ctx, page, label };
}

const tid = (page, id) => page.getByTestId(id);
async function connected(page) {
  await page.locator('[data-testid=conn-state][data-state=connected]').waitFor({ timeout: 20_000 });
}
async function shot(page, name) {
  await page.waitForTimeout(250);
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}
const step = (m) => process.env.E2E_DEBUG && console.log(`      · ${m} ${new Date().toISOString().slice(17, 23)}`);
function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}
async function until(fn, msg, timeout = T) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out: ${msg} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

async function register(p, username, display) {
  await p.page.goto(`${base}/`);
  await tid(p.page, 'tab-register').click();
  await tid(p.page, 'register-contact').fill(`${username}@example.test`);
  await tid(p.page, 'register-username').fill(username);
  await tid(p.page, 'register-display-name').fill(display);
  await tid(p.page, 'register-password').fill('correct horse battery');
  await tid(p.page, 'register-submit').click();
  await connected(p.page);
}

async function login(p, username) {
  await p.page.goto(`${base}/`);
  await tid(p.page, 'login-login').fill(username);
  await tid(p.page, 'login-password').fill('correct horse battery');
  await tid(p.page, 'login-submit').click();
  await connected(p.page);
}

function convItem(page, title) {
  return page.locator('[data-testid=conversation-item]', { has: page.locator('[data-testid=conversation-title]', { hasText: title }) });
}
async function openConv(page, title) {
  await convItem(page, title).first().click();
  await inChat(page, title);
}
/** Waits until the chat on screen is the one titled `title` (another chat may be open before). */
async function inChat(page, title) {
  await tid(page, 'chat-view').waitFor();
  await page.locator('[data-testid=chat-title]', { hasText: title }).waitFor();
}
async function send(page, text) {
  await tid(page, 'composer').fill(text);
  await tid(page, 'composer').press('Enter');
}
function messageWith(page, text) {
  return page.locator('[data-testid=message]', { has: page.locator('[data-testid=message-body]', { hasText: text }) });
}
async function statusOf(page, text) {
  return messageWith(page, text).getByTestId('msg-status').getAttribute('data-status', { timeout: 2000 });
}

/** GET from the page's origin as bytes on the wire (no decoding), with the given headers. */
function rawGet(p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(p, base), { headers }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
  });
}

/** Whether the page under test is a build with this round's features (direct mode may serve an older one). */
let newWeb = null;
async function hasNewWeb() {
  if (newWeb === null) newWeb = /manifest\.webmanifest/.test((await rawGet('/', { 'accept-encoding': 'identity' }).catch(() => ({ body: Buffer.alloc(0) }))).body.toString());
  return newWeb;
}

/** Runs a shell command without blocking the event loop (the pages keep being driven). */
function execAsync(cmd, timeout = 60_000) {
  return new Promise((resolve, reject) => exec(cmd, { timeout }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${err.message}\n${stderr}`)) : resolve(stdout))));
}

const cdpSessions = new WeakMap();
/**
 * The role, accessible name and description Chromium computes for the element (what a screen
 * reader is given), read from the browser's accessibility tree over CDP.
 */
async function axOf(page, locator) {
  let cdp = cdpSessions.get(page);
  if (!cdp) {
    cdp = await page.context().newCDPSession(page);
    await cdp.send('Accessibility.enable');
    cdpSessions.set(page, cdp);
  }
  const probe = `ax${Math.random().toString(36).slice(2)}`;
  await locator.evaluate((el, p) => el.setAttribute('data-ax-probe', p), probe);
  try {
    const { result } = await cdp.send('Runtime.evaluate', { expression: `document.querySelector('[data-ax-probe="${probe}"]')` });
    const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { objectId: result.objectId, fetchRelatives: false });
    const n = nodes.find((x) => !x.ignored) ?? nodes[0];
    return { role: n?.role?.value ?? '', name: n?.name?.value ?? '', description: n?.description?.value ?? '' };
  } finally {
    await locator.evaluate((el) => el.removeAttribute('data-ax-probe')).catch(() => undefined);
  }
}
/** Whether two bounding boxes overlap (touching edges do not count). */
function overlaps(a, b) {
  return a.x < b.x + b.width - 0.5 && b.x < a.x + a.width - 0.5 && a.y < b.y + b.height - 0.5 && b.y < a.y + a.height - 0.5;
}

// ---------- media fixtures (real files, made here) ----------
const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** A real RGB PNG of w×h; `px(x, y)` gives [r, g, b]. */
function makePng(w, h, px) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = px(x, y);
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = r;
      raw[o + 1] = g;
      raw[o + 2] = b;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
// A sunset: sky gradient, a sun, a sea.
const sunsetPng = makePng(640, 400, (x, y) => {
  const d = Math.hypot(x - 320, y - 250);
  if (y > 270) return [20, 60 + ((y * 3) % 40), 120];
  if (d < 70) return [255, 210, 80];
  return [250 - y / 3, 120 + y / 4, 90 + y / 6].map((v) => Math.max(0, Math.min(255, Math.round(v))));
});
// A head-and-shoulders silhouette on teal, wider than tall (the client crops it to a square).
const avatarPng = makePng(300, 200, (x, y) =>
  Math.hypot(x - 150, y - 78) < 38 || (y > 128 && ((x - 150) / 75) ** 2 + ((y - 200) / 70) ** 2 < 1) ? [250, 244, 235] : [20, 150 - (y >> 2), 140]);
const groupAvatarPng = makePng(160, 160, (x, y) => ((x >> 5) + (y >> 5)) % 2 ? [240, 170, 40] : [40, 90, 200]);
const pdfBytes = Buffer.from(`%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n${'% filler line for a realistic size\n'.repeat(360)}%%EOF\n`, 'latin1');
const mp4Bytes = (() => {
  const ftyp = Buffer.from('\0\0\0\x18ftypmp42\0\0\0\0mp42isom', 'latin1');
  const payload = Buffer.alloc(2048, 7);
  const mdat = Buffer.concat([Buffer.alloc(4), Buffer.from('mdat', 'latin1'), payload]);
  mdat.writeUInt32BE(mdat.length, 0);
  return Buffer.concat([ftyp, mdat]);
})();
const elfBytes = Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01\0', 'latin1'), Buffer.alloc(600, 1)]);
// Half a second of silent MP3: 20 MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, 417 bytes each).
const mp3Bytes = Buffer.concat(Array.from({ length: 20 }, () => Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x64]), Buffer.alloc(413)])));

async function attach(page, files) {
  await tid(page, 'file-input').setInputFiles(files);
}
/** Waits until every pending attachment finished uploading. */
async function uploadsDone(page, n) {
  await until(async () => {
    const st = await page.locator('[data-testid=pending-attachment]').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    return st.length === n && st.every((x) => x === 'done');
  }, `${n} uploads done`);
}
/** Whether an <img> really loaded (natural size known). */
async function imgLoaded(loc) {
  return loc.evaluate((img) => img.complete && img.naturalWidth > 0).catch(() => false);
}
function mediaMessage(page, testid) {
  return page.locator('[data-testid=message]', { has: page.locator(`[data-testid=${testid}]`) });
}
/** Drops (kind "drop") or pastes (kind "paste") a canvas-made PNG in the page. */
async function dropOrPasteImage(page, kind, name) {
  await page.evaluate(
    async ({ kind, name }) => {
      const c = document.createElement('canvas');
      c.width = 300;
      c.height = 200;
      const g = c.getContext('2d');
      g.fillStyle = kind === 'drop' ? '#0ea5e9' : '#a855f7';
      g.fillRect(0, 0, 300, 200);
      g.fillStyle = '#fff';
      g.font = 'bold 40px sans-serif';
      g.fillText(kind === 'drop' ? 'dropped' : 'pasted', 60, 115);
      const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
      const dt = new DataTransfer();
      dt.items.add(new File([blob], name, { type: 'image/png' }));
      if (kind === 'paste') {
        document.querySelector('[data-testid=composer]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      } else {
        const target = document.querySelector('[data-testid=message-list]');
        target.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
        target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
        window.__dropHintSeen = !!document.querySelector('[data-testid=drop-hint]');
        await new Promise((r) => requestAnimationFrame(r));
        window.__dropHintSeen ||= !!document.querySelector('[data-testid=drop-hint]');
        target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { kind, name },
  );
}


// ---------- notifications helpers ----------
const SKIP = Symbol('skip');
let pushFeature = null;
/** Whether the page under test has the service worker (direct mode serves the binary's embedded build). */
async function hasPushFeature() {
  if (pushFeature === null) {
    const r = await fetch(`${base}/sw.js`).catch(() => null);
    pushFeature = !!r && r.ok && /javascript/.test(r.headers.get('content-type') ?? '');
  }
  return pushFeature;
}
/** A bearer token for direct API checks (a separate login session of the same user). */
async function apiToken(username) {
  const r = await fetch(`${backend}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: username, password: 'correct horse battery' }) });
  assert(r.ok, `API login ${r.status}`);
  return (await r.json()).access_token;
}
async function apiGet(token, p) {
  const r = await fetch(`${backend}/api/v1${p}`, { headers: { authorization: `Bearer ${token}` } });
  assert(r.ok, `GET ${p}: ${r.status}`);
  return r.json();
}
/** Posts {type:'test-push', payload} to the page's service worker; returns its reply and the open notifications. */
async function testPush(page, payload) {
  return page.evaluate(async (payload) => {
    const reg = await navigator.serviceWorker.ready;
    const id = Math.random();
    const reply = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reply from the service worker')), 10_000);
      navigator.serviceWorker.addEventListener('message', function h(e) {
        if (e.data?.type !== 'test-push-done' || e.data.id !== id) return;
        clearTimeout(t);
        navigator.serviceWorker.removeEventListener('message', h);
        resolve(e.data);
      });
    });
    (navigator.serviceWorker.controller ?? reg.active).postMessage({ type: 'test-push', id, payload });
    const r = await reply;
    const open = await reg.getNotifications();
    return { reply: r, open: open.map((n) => ({ title: n.title, body: n.body, tag: n.tag, renotify: n.renotify, data: n.data })) };
  }, payload);
}

// ---------- operators and integrations helpers ----------
/** A test that cannot run here says why (`return skip('…')`). */
const skip = (why) => ({ skip: why });
const idp = process.env.CHATNODE_E2E_IDP?.replace(/\/$/, '') || null;
const cli = process.env.CHATNODE_BIN && process.env.CHATNODE_DATA_DIR ? { bin: process.env.CHATNODE_BIN, data: process.env.CHATNODE_DATA_DIR } : null;
const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
/** Runs `chatnode ARGS --data-dir DIR` (the server's command line, on its data); its stdout. */
function chatnodeCli(args) {
  return execAsync(`${shq(cli.bin)} ${args} --data-dir ${shq(cli.data)}`);
}
let integrationsWeb = null;
/** Whether the page under test has this round's web client (its service worker shows service notifications). */
async function hasIntegrationsWeb() {
  if (integrationsWeb === null) {
    const r = await fetch(`${base}/sw.js`).catch(() => null);
    integrationsWeb = !!r && r.ok && (await r.text()).includes('serviceNotificationFor');
  }
  return integrationsWeb;
}

// ---------- state shared between tests ----------
const names = { a: `alice_${run}`, b: `bob_${run}`, c: `carol_${run}` };
let A, B, C;
/** Alice in a second browser, once she is a system admin (the admin page's work is done there). */
let AA = null;
let inviteLink = '';

const tests = [
  ['login screen renders under CSP', async () => {
    A = await newPage('A');
    await A.page.goto(`${base}/`);
    await tid(A.page, 'login-form').waitFor();
    await shot(A.page, '01-login');
    await tid(A.page, 'login-login').fill('nobody_' + run);
    await tid(A.page, 'login-password').fill('wrong password!!');
    await tid(A.page, 'login-submit').click();
    const err = await tid(A.page, 'auth-error').textContent();
    assert(/do not match|session|login|password/i.test(err ?? ''), `friendly login error, got "${err}"`);
  }],
  ['two users register', async () => {
    B = await newPage('B');
    await register(A, names.a, 'Alice Example');
    await register(B, names.b, 'Bob Builder');
  }],
  ['friend request sent, badge shown, accepted', async () => {
    await tid(A.page, 'nav-people').click();
    await tid(A.page, 'user-search').fill(names.b);
    await A.page.locator(`[data-testid=search-result][data-username=${names.b}] [data-testid=add-friend]`).click();
    await tid(B.page, 'requests-badge').waitFor();
    await tid(B.page, 'nav-people').click();
    await B.page.locator(`[data-testid=incoming-request][data-username=${names.a}] [data-testid=accept-request]`).click();
    await A.page.locator(`[data-testid=friend][data-username=${names.b}]`).waitFor();
    await B.page.locator(`[data-testid=friend][data-username=${names.a}]`).waitFor();
  }],
  ['direct chat both ways in real time, unread badge, read state', async () => {
    await A.page.locator(`[data-testid=friend][data-username=${names.b}] [data-testid=message-friend]`).click();
    await tid(A.page, 'chat-view').waitFor();
    await send(A.page, 'Hello Bob 👋');
    const mine = messageWith(A.page, 'Hello Bob');
    await mine.waitFor();
    await until(async () => ['sent', 'read'].includes(await mine.getByTestId('msg-status').getAttribute('data-status')), 'own message acked');
    // B sees the conversation appear with an unread badge, and the tab title counts it.
    await tid(B.page, 'nav-chats').click();
    await convItem(B.page, 'Alice Example').getByTestId('unread-badge').waitFor();
    await until(async () => (await B.page.title()) === '(1) ChatNode', 'title shows (1)');
    await shot(B.page, '02-conversation-list');
    await openConv(B.page, 'Alice Example');
    await messageWith(B.page, 'Hello Bob').waitFor();
    await tid(B.page, 'new-divider').waitFor();
    await until(async () => (await mine.getByTestId('msg-status').getAttribute('data-status')) === 'read', 'A sees read state');
    await send(B.page, 'Hi Alice! Nice to meet you.');
    await messageWith(A.page, 'Hi Alice!').waitFor();
    await until(async () => (await B.page.title()) === 'ChatNode', 'title without unread');
  }],
  ['screen readers: each message is an item named with sender, time, text and state; menu buttons are distinct', async () => {
    // Alice's own message, read by Bob: "You, 10:42: Hello Bob 👋. Read".
    const own = messageWith(A.page, 'Hello Bob');
    const time = ((await own.locator('time').textContent()) ?? '').trim();
    assert(/\d/.test(time), `time shown: "${time}"`);
    let ax = await axOf(A.page, own);
    assert(ax.role === 'article', `a message is an item (article), got role "${ax.role}"`);
    assert(ax.name.startsWith('You, ') && ax.name.includes(time) && ax.name.includes('Hello Bob 👋') && /\. Read$/.test(ax.name), `name of my message: "${ax.name}"`);
    // The status is text a screen reader reads, not an aria-label on a role-less span.
    const st = await own.getByTestId('msg-status').evaluate((el) => ({ label: el.getAttribute('aria-label'), text: el.textContent.trim() }));
    assert(st.label === null && st.text === 'Read', `status as text: ${JSON.stringify(st)}`);
    // The same message for Bob says who wrote it, in a direct chat too (no state for theirs).
    ax = await axOf(B.page, messageWith(B.page, 'Hello Bob'));
    assert(ax.name.startsWith('Alice Example, ') && ax.name.includes(time) && ax.name.includes('Hello Bob 👋') && !/Read$|Sent$/.test(ax.name), `name of Alice's message for Bob: "${ax.name}"`);
    // Bob's message as Alice gets it, and his own view of it with its state.
    const reply = messageWith(A.page, 'Hi Alice!');
    ax = await axOf(A.page, reply);
    assert(ax.name.startsWith('Bob Builder, ') && ax.name.includes('Hi Alice! Nice to meet you.'), `name of Bob's message for Alice: "${ax.name}"`);
    await until(async () => /\. (Sent|Read)$/.test((await axOf(B.page, messageWith(B.page, 'Hi Alice!'))).name), 'Bob’s own message names its state');
    // The messages sit in the labelled log.
    assert((await A.page.locator('[role=log][aria-label=Messages] article[data-testid=message]').count()) >= 2, 'message items inside the log');
    // Every actions button is named for its message, and no two names are the same.
    const buttons = A.page.locator('[data-testid=message-actions]');
    const n = await buttons.count();
    const names = [];
    for (let i = 0; i < n; i++) names.push((await axOf(A.page, buttons.nth(i))).name);
    assert(n >= 2 && new Set(names).size === n, `distinct names for ${n} buttons: ${JSON.stringify(names)}`);
    assert(names.some((x) => x === `Actions for your message at ${time}: Hello Bob 👋`), `my message's button: ${JSON.stringify(names)}`);
    assert(names.some((x) => x.startsWith('Actions for message from Bob Builder at ') && x.includes('Hi Alice!')), `Bob's message's button: ${JSON.stringify(names)}`);
    assert(!names.includes('Message actions'), 'no generic "Message actions" name left');
  }],
  ['typing indicator appears and clears', async () => {
    await tid(B.page, 'composer').pressSequentially('I am typ', { delay: 30 });
    await until(async () => /is typing/.test((await tid(A.page, 'typing-indicator').textContent()) ?? ''), 'A sees typing');
    await tid(B.page, 'composer').fill('');
    await tid(B.page, 'composer').press('Shift+Enter');
    await tid(B.page, 'composer').fill('');
    await until(async () => !/is typing/.test((await tid(A.page, 'typing-indicator').textContent()) ?? ''), 'typing clears', 9000);
  }],
  ['Shift+Enter adds a line, Enter sends', async () => {
    await tid(A.page, 'composer').fill('line one');
    await tid(A.page, 'composer').press('Shift+Enter');
    await tid(A.page, 'composer').pressSequentially('line two');
    assert((await tid(A.page, 'composer').inputValue()) === 'line one\nline two', 'newline inserted');
    await tid(A.page, 'composer').press('Enter');
    const m = messageWith(B.page, 'line two');
    await m.waitFor();
    assert(((await m.getByTestId('message-body').textContent()) ?? '').includes('line one\nline two'), 'multi-line body');
  }],
  ['HTML in a message is shown as text (no XSS)', async () => {
    const payload = '<img src=x onerror=alert(1)>';
    await send(A.page, payload);
    const m = messageWith(B.page, '<img src=x');
    await m.waitFor();
    assert((await m.getByTestId('message-body').textContent()) === payload, 'exact text shown');
    assert((await m.locator('img').count()) === 0, 'no <img> element created');
    await B.page.waitForTimeout(500);
    assert(!dialogs.some((d) => d.type === 'alert'), `no alert dialog (saw ${JSON.stringify(dialogs)})`);
  }],
  ['links are clickable only for http(s), with noopener', async () => {
    await send(A.page, 'docs at https://example.com/path?q=1 and javascript:alert(2)');
    const m = messageWith(B.page, 'docs at');
    await m.waitFor();
    const links = m.locator('a');
    assert((await links.count()) === 1, 'exactly one link');
    assert((await links.first().getAttribute('href')) === 'https://example.com/path?q=1', 'href');
    assert((await links.first().getAttribute('rel')) === 'noopener noreferrer', 'rel');
    assert((await links.first().getAttribute('target')) === '_blank', 'target');
  }],
  ['reply, edit and delete for everyone', async () => {
    const target = messageWith(A.page, 'Hi Alice!');
    await target.hover();
    await target.getByTestId('message-actions').click();
    await target.getByTestId('action-reply').click();
    await tid(A.page, 'reply-bar').waitFor();
    await send(A.page, 'Replying to you');
    await messageWith(B.page, 'Replying to you').getByTestId('reply-quote').waitFor();

    const own = messageWith(A.page, 'Replying to you');
    await own.hover();
    await own.getByTestId('message-actions').click();
    await own.getByTestId('action-edit').click();
    await tid(A.page, 'composer').fill('Replying to you (edited)');
    await tid(A.page, 'composer').press('Enter');
    await messageWith(B.page, 'Replying to you (edited)').waitFor();

    const del = messageWith(A.page, 'docs at');
    await del.hover();
    await del.getByTestId('message-actions').click();
    await del.getByTestId('action-delete-everyone').click();
    await messageWith(B.page, 'This message was deleted').waitFor();
    await shot(A.page, '03-chat-desktop');
  }],
  ['emoji picker inserts an emoji', async () => {
    await tid(A.page, 'emoji-button').click();
    await tid(A.page, 'emoji-picker').getByRole('button', { name: 'Insert 🎉' }).click();
    assert((await tid(A.page, 'composer').inputValue()).includes('🎉'), 'emoji inserted');
    await tid(A.page, 'composer').press('Enter');
    await messageWith(B.page, '🎉').waitFor();
  }],
  ['reactions: from the picker and the keyboard, live in the other browser, who reacted, toggled off; named for screen readers', async () => {
    if (!(await hasNewWeb())) return SKIP;
    const onA = messageWith(A.page, 'Hi Alice!');
    const onB = messageWith(B.page, 'Hi Alice!');
    const calls = [];
    const onReq = (r) => /\/reactions\//.test(r.url()) && calls.push(`${r.method()} ${r.url().replace(/^https?:\/\/[^/]+/, '')}`);
    A.page.on('request', onReq);
    const chip = (m, e) => m.locator(`[data-testid=reaction-chip][data-emoji="${e}"]`);
    if (await tid(A.page, 'emoji-picker').count()) await tid(A.page, 'emoji-button').click(); // left open by the emoji test
    const count = async (m, e) => ((await chip(m, e).count()) ? await chip(m, e).getAttribute('data-count') : '0');
    try {
      // Alice reacts 👍 from the quick set.
      await onA.hover();
      await onA.getByTestId('react-button').click();
      const picker = tid(A.page, 'reaction-picker');
      await picker.waitFor();
      assert((await A.page.evaluate(() => document.activeElement?.getAttribute('data-emoji'))) === '👍', 'focus on the first quick emoji');
      await picker.locator('[data-testid=quick-reaction][data-emoji="👍"]').click();
      await picker.waitFor({ state: 'detached' });
      await onA.locator('[data-testid=reaction-chip][data-emoji="👍"][aria-pressed=true]').waitFor();
      await until(async () => (await count(onB, '👍')) === '1', 'Bob sees 👍 1 live');
      assert((await chip(onB, '👍').getAttribute('aria-pressed')) === 'false', 'not pressed for Bob');
      assert(calls.some((c) => c.startsWith('PUT ') && c.endsWith('/reactions/%F0%9F%91%8D')), `PUT with the emoji percent-encoded: ${JSON.stringify(calls)}`);
      // Bob adds his: both see 2; names say who is included.
      await chip(onB, '👍').click();
      await until(async () => (await count(onA, '👍')) === '2', 'Alice sees 👍 2 live');
      let ax = await axOf(A.page, chip(onA, '👍'));
      assert(ax.role === 'button' && ax.name === '👍 2 reactions, including you', `chip name for Alice: ${JSON.stringify(ax)}`);
      ax = await axOf(B.page, chip(onB, '👍'));
      assert(ax.name === '👍 2 reactions, including you', `chip name for Bob: ${JSON.stringify(ax)}`);
      // Who reacted, on hover (from outside the chip: the pointer may be over it already).
      await A.page.mouse.move(5, 5);
      await chip(onA, '👍').hover();
      let tip = '';
      try {
        await until(async () => {
          tip = (await tid(A.page, 'reaction-who').textContent({ timeout: 1000 }).catch(() => '')) ?? '';
          if (tip === 'Bob Builder and you reacted with 👍') return true;
          // No tooltip: the chip moved from under the pointer (the list re-rendered), which
          // is a mouseleave. Hover it again; the text is what is checked.
          if (!tip) {
            await A.page.mouse.move(5, 5);
            await chip(onA, '👍').hover();
          }
          return false;
        }, 'tooltip names who reacted');
      } catch (e) {
        throw new Error(`${e?.message ?? e}; tooltip text: ${JSON.stringify(tip)}`);
      }
      await shot(A.page, '26-reactions');
      await A.page.mouse.move(5, 5);
      // Keyboard: open the picker on the React button, arrow to ❤️, Enter; focus comes back.
      await onA.getByTestId('react-button').focus();
      await A.page.keyboard.press('Enter');
      await picker.waitFor();
      await A.page.keyboard.press('ArrowRight');
      assert((await A.page.evaluate(() => document.activeElement?.getAttribute('data-emoji'))) === '❤️', 'arrow moves to ❤️');
      await A.page.keyboard.press('Enter');
      await picker.waitFor({ state: 'detached' });
      assert((await A.page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'react-button', 'focus back on the React button');
      await until(async () => (await count(onB, '❤️')) === '1', 'Bob sees ❤️ live');
      // Any emoji from the full picker; Esc closes the picker.
      await A.page.keyboard.press('Enter');
      await picker.getByTestId('more-reactions').click();
      await picker.getByRole('button', { name: 'React with 🔥' }).click();
      await until(async () => (await count(onB, '🔥')) === '1', 'Bob sees 🔥 live');
      await onA.getByTestId('react-button').click();
      await picker.waitFor();
      await A.page.keyboard.press('Escape');
      await picker.waitFor({ state: 'detached' });
      // Toggle off: Alice's 👍 goes (Bob's stays), then Bob's; the chip disappears for both.
      await chip(onA, '👍').click();
      await until(async () => (await count(onB, '👍')) === '1' && (await chip(onB, '👍').getAttribute('aria-pressed')) === 'true', 'Bob: 1, his own');
      assert((await chip(onA, '👍').getAttribute('aria-pressed')) === 'false', 'Alice: not hers any more');
      await chip(onB, '👍').click();
      await until(async () => (await chip(onA, '👍').count()) === 0, 'the 👍 chip is gone for Alice');
      assert(calls.some((c) => c.startsWith('DELETE ') && c.endsWith('/reactions/%F0%9F%91%8D')), 'DELETE to take it back');
      await chip(onA, '🔥').click();
      await until(async () => (await chip(onB, '🔥').count()) === 0, '🔥 gone for Bob');
      // After a reload the server says which are mine (`me` in the REST history).
      await A.page.reload();
      await connected(A.page);
      await messageWith(A.page, 'Hi Alice!').locator('[data-testid=reaction-chip][data-emoji="❤️"][aria-pressed=true]').waitFor();
    } finally {
      A.page.off('request', onReq);
    }
  }],
  ['toasts: above the message box, never over the chat header or the newest message (desktop and 375 px)', async () => {
    const check = async (page, label) => {
      if (await tid(page, 'emoji-picker').count()) await tid(page, 'emoji-button').click(); // left open by the emoji test
      await tid(page, 'message-list').evaluate((el) => (el.scrollTop = el.scrollHeight));
      await page.waitForTimeout(200);
      // Earlier toasts go first, so this one is where a lone toast appears.
      while (await page.getByTestId('toast').count()) await page.getByTestId('toast').first().getByRole('button', { name: 'Dismiss' }).click();
      // An empty file is refused on the spot with a toast (no server involved).
      await attach(page, [{ name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) }]);
      const toast = page.getByTestId('toast').filter({ hasText: 'empty.txt: the file is empty.' });
      await toast.waitFor();
      await page.waitForTimeout(300); // let the list settle
      const box = await toast.boundingBox();
      const head = await page.locator('.chat-head').boundingBox();
      const title = await tid(page, 'chat-title').boundingBox();
      assert(!overlaps(box, head) && !overlaps(box, title), `${label}: toast ${JSON.stringify(box)} over the chat header ${JSON.stringify(head)}`);
      const region = toast.locator('xpath=..');
      assert((await region.getAttribute('role')) === 'status' && (await region.getAttribute('aria-live')) === 'polite', `${label}: toasts are a polite status region`);
      const composer = await tid(page, 'composer-area').boundingBox();
      assert(!overlaps(box, composer) && box.y + box.height <= composer.y + 0.5, `${label}: toast ${JSON.stringify(box)} must sit above the message box ${JSON.stringify(composer)}`);
      assert(box.x >= 0 && box.x + box.width <= page.viewportSize().width, `${label}: toast inside the viewport`);
      // The newest message is still in view and nothing covers it.
      const last = page.locator('[data-testid=message]').last();
      const lb = await last.locator('.bubble').boundingBox();
      const list = await tid(page, 'message-list').boundingBox();
      assert(lb.y + lb.height <= list.y + list.height + 1, `${label}: newest message still in view (${JSON.stringify(lb)} in ${JSON.stringify(list)})`);
      assert(!overlaps(box, lb), `${label}: toast over the newest message`);
      const hit = await last.evaluate((el, [x, y]) => el.contains(document.elementFromPoint(x, y)), [lb.x + lb.width / 2, lb.y + lb.height / 2]);
      assert(hit, `${label}: the newest message is what is under its centre`);
      await shot(page, `18-toast-${label}`);
      await toast.getByRole('button', { name: 'Dismiss' }).click();
      await toast.waitFor({ state: 'detached' });
    };
    await check(A.page, 'desktop');
    const M = await newPage('M', { width: 375, height: 740 });
    try {
      await login(M, names.a);
      await openConv(M.page, 'Bob Builder');
      await messageWith(M.page, '🎉').waitFor();
      await check(M.page, 'mobile');
    } finally {
      await M.ctx.close();
    }
  }],
  ['media: A sends a photo, a PDF and a video; B sees them (media cookie), opens the viewer', async () => {
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, 'Alice Example');

    // The attach button is a labelled button in the composer.
    assert((await A.page.getByRole('button', { name: 'Attach files' }).count()) === 1, 'labelled attach button');
    // 1. A photo with a caption: preview strip first (a blob: thumbnail), then sent as kind image.
    await attach(A.page, [{ name: 'sunset.png', mimeType: 'image/png', buffer: sunsetPng }]);
    const tile = A.page.locator('[data-testid=pending-attachment][data-name="sunset.png"]');
    await tile.waitFor();
    assert(/^blob:/.test((await tile.locator('img').getAttribute('src')) ?? ''), 'blob: preview in the strip');
    await uploadsDone(A.page, 1);
    await tid(A.page, 'composer').fill('Sunset at the lake');
    await tid(A.page, 'composer').press('Enter');
    await tid(A.page, 'attachment-strip').waitFor({ state: 'detached' });
    const photoA = messageWith(A.page, 'Sunset at the lake');
    await until(async () => ['sent', 'read'].includes(await photoA.getByTestId('msg-status').getAttribute('data-status')), 'photo acked');

    const photoB = messageWith(B.page, 'Sunset at the lake');
    const thumb = photoB.getByTestId('attachment-thumb');
    await thumb.waitFor();
    assert((await photoB.getAttribute('data-mine')) === 'false', 'B sees it as theirs');
    const src = await thumb.getAttribute('src');
    assert(/^\/api\/v1\/media\/[^/]+\/thumbnail$/.test(src ?? ''), `thumbnail src ${src}`);
    assert((await thumb.getAttribute('width')) === '320' && (await thumb.getAttribute('height')) === '200', 'space reserved from width/height');
    await until(() => imgLoaded(thumb), 'thumbnail loaded through the media cookie');

    // The viewer: full-size original, focus on the close button, Esc closes, focus returns.
    await photoB.getByTestId('attachment-image').click();
    const viewer = tid(B.page, 'media-viewer');
    await viewer.waitFor();
    const full = viewer.getByTestId('viewer-image');
    assert(/^\/api\/v1\/media\/[^/]+$/.test((await full.getAttribute('src')) ?? ''), 'viewer shows the original');
    await until(async () => (await full.evaluate((i) => i.naturalWidth)) === 640, 'full image loaded (640 px wide)');
    assert((await B.page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'viewer-close', 'focus on the close button');
    assert((await viewer.getByRole('button', { name: 'Close image viewer' }).count()) === 1, 'labelled close button');
    await shot(B.page, '11-media-viewer');
    await B.page.keyboard.press('Escape');
    await viewer.waitFor({ state: 'detached' });
    assert((await B.page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'attachment-image', 'focus back on the thumbnail');
    await photoB.getByTestId('attachment-image').press('Enter');
    await viewer.waitFor();
    await viewer.getByTestId('viewer-close').click();
    await viewer.waitFor({ state: 'detached' });

    // 2. A PDF: a file card with name, size and a download link.
    await attach(A.page, [{ name: 'Quarterly report.pdf', mimeType: 'application/pdf', buffer: pdfBytes }]);
    await uploadsDone(A.page, 1);
    await tid(A.page, 'send').click();
    const card = B.page.locator('[data-testid=attachment-file]').filter({ hasText: 'Quarterly report.pdf' });
    await card.waitFor();
    assert((await card.getByTestId('file-name').textContent()) === 'Quarterly report.pdf', 'file name');
    const size = (await card.getByTestId('file-size').textContent()) ?? '';
    assert(/^\d+(\.\d)? KB$/.test(size), `human-readable size, got "${size}"`);
    const href = (await card.getAttribute('href')) ?? '';
    assert(/^\/api\/v1\/media\/[^/]+$/.test(href), `download href ${href}`);
    const dl = await B.page.evaluate(async (u) => {
      const r = await fetch(u, { credentials: 'same-origin' });
      return { status: r.status, disposition: r.headers.get('content-disposition'), size: (await r.arrayBuffer()).byteLength };
    }, href);
    assert(dl.status === 200 && /^attachment/.test(dl.disposition ?? '') && dl.size === pdfBytes.length, `download works for B: ${JSON.stringify(dl)}`);

    // 3. A tiny MP4: an inline player.
    await attach(A.page, [{ name: 'clip.mp4', mimeType: 'video/mp4', buffer: mp4Bytes }]);
    await uploadsDone(A.page, 1);
    await tid(A.page, 'composer').press('Enter');
    const video = mediaMessage(B.page, 'attachment-video').last().getByTestId('attachment-video');
    await video.waitFor();
    assert(/^\/api\/v1\/media\/[^/]+$/.test((await video.getAttribute('src')) ?? ''), 'video src is the media URL');
    assert((await video.getAttribute('preload')) === 'metadata' && (await video.evaluate((v) => v.controls)), 'controls, preload=metadata');
    const head = await B.page.evaluate(async (u) => (await fetch(u, { headers: { Range: 'bytes=0-7' } })).status, await video.getAttribute('src'));
    assert(head === 206, `range request for the video: ${head}`);

    // Previews in the conversation lists.
    await until(async () => (await convItem(B.page, 'Alice Example').getByTestId('conversation-preview').textContent()) === '🎬 Video', 'B preview 🎬 Video');
    await until(async () => (await convItem(A.page, 'Bob Builder').getByTestId('conversation-preview').textContent()) === 'You: 🎬 Video', 'A preview');
    await tid(B.page, 'message-list').evaluate((el) => (el.scrollTop = el.scrollHeight));
    await shot(B.page, '10-chat-media');
  }],
  ['media: a file of unknown type is a download card; one over the limit shows plain words and blocks sending', async () => {
    // A file of a type the server does not know: kept as application/octet-stream and served
    // as a download (contract addition of 2026-11-29: files of any type).
    await attach(A.page, [{ name: 'tool.bin', mimeType: 'application/octet-stream', buffer: elfBytes }]);
    const tile = A.page.locator('[data-testid=pending-attachment][data-name="tool.bin"]');
    const outcome = await until(async () => {
      const st = await tile.getAttribute('data-status');
      return st === 'failed' || st === 'done' ? st : null;
    }, 'tool.bin upload settles');
    assert(outcome === 'done', `a file of unknown type is accepted, got ${outcome}`);
    await tid(A.page, 'send').click();
    const card = B.page.locator('[data-testid=attachment-file]').filter({ hasText: 'tool.bin' });
    await card.waitFor();
    const m = B.page.locator('[data-testid=message]', { has: card });
    assert((await m.locator('audio, video, img').count()) === 0, 'an unknown type is only a download card');
    const dl = await B.page.evaluate(async (u) => {
      const r = await fetch(u);
      return { status: r.status, type: r.headers.get('content-type'), disposition: r.headers.get('content-disposition') };
    }, await card.getAttribute('href'));
    assert(dl.status === 200 && /octet-stream/.test(dl.type ?? '') && /^attachment/.test(dl.disposition ?? ''), `served as a download: ${JSON.stringify(dl)}`);
    // Over the 25 MiB limit for documents (made in the page, dropped on the chat).
    await A.page.evaluate(() => {
      const bytes = new Uint8Array(26 * 1024 * 1024 + 10);
      bytes.set(new TextEncoder().encode('%PDF-1.4\n'));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'huge.pdf', { type: 'application/pdf' }));
      const target = document.querySelector('[data-testid=message-list]');
      target.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    const huge = A.page.locator('[data-testid=pending-attachment][data-name="huge.pdf"]');
    await A.page.locator('[data-testid=pending-attachment][data-name="huge.pdf"][data-status=failed]').waitFor({ timeout: 30_000 });
    const big = (await huge.getByTestId('upload-error').textContent()) ?? '';
    assert(big === 'Too large to send (the limit is 25 MB).', `plain words for too large, got "${big}"`);
    assert(await tid(A.page, 'send').isDisabled(), 'cannot send with a failed upload');
    await huge.getByRole('button', { name: 'Remove huge.pdf' }).click();
    await tid(A.page, 'attachment-strip').waitFor({ state: 'detached' });
  }],
  ['media: drag-and-drop and paste of images', async () => {
    const before = await B.page.locator('[data-testid=attachment-thumb]').count();
    await dropOrPasteImage(A.page, 'drop', 'dropped.png');
    assert(await A.page.evaluate(() => window.__dropHintSeen), 'drop hint shown while dragging');
    await tid(A.page, 'drop-hint').waitFor({ state: 'detached' });
    await A.page.locator('[data-testid=pending-attachment][data-name="dropped.png"]').waitFor();
    await dropOrPasteImage(A.page, 'paste', 'pasted.png');
    await A.page.locator('[data-testid=pending-attachment][data-name="pasted.png"]').waitFor();
    await uploadsDone(A.page, 2);
    await tid(A.page, 'composer').fill('Two pictures');
    await tid(A.page, 'composer').press('Enter');
    const m = messageWith(B.page, 'Two pictures');
    await m.waitFor();
    assert((await m.getByTestId('attachment-thumb').count()) === 2, 'both pictures in one message');
    await until(async () => (await m.getByTestId('attachment-thumb').evaluateAll((els) => els.every((i) => i.complete && i.naturalWidth > 0))), 'both loaded');
    assert((await B.page.locator('[data-testid=attachment-thumb]').count()) === before + 2, 'two more thumbnails');
    await until(async () => (await convItem(B.page, 'Alice Example').getByTestId('conversation-preview').textContent()) === '📷 Two pictures', 'caption preview');
  }],
  ['media: audio plays in an inline player (play/pause, seek, time; also kind "audio")', async () => {
    await attach(A.page, [{ name: 'note.mp3', mimeType: 'audio/mpeg', buffer: mp3Bytes }]);
    await uploadsDone(A.page, 1);
    await tid(A.page, 'composer').fill('Voice note');
    await tid(A.page, 'composer').press('Enter');
    const m = messageWith(B.page, 'Voice note');
    const audio = m.getByTestId('attachment-audio');
    await audio.waitFor({ state: 'attached' });
    await m.getByTestId('voice-play').waitFor();
    assert((await audio.evaluate((a) => a.tagName)) === 'AUDIO', 'an audio element behind the player');
    assert(/^\/api\/v1\/media\/[^/]+$/.test((await audio.getAttribute('src')) ?? ''), 'src is the media URL (cookie, no token)');
    assert((await audio.getAttribute('preload')) === 'metadata', 'preload=metadata');
    await until(() => audio.evaluate((a) => a.readyState >= 1 && a.duration > 0.3 && a.duration < 1), 'the player loaded the audio (about half a second)');
    assert((await m.getByTestId('attachment-file').count()) === 0, 'no download card for audio');
    await until(async () => (await convItem(B.page, 'Alice Example').getByTestId('conversation-preview').textContent()) === '🎤 Voice note', 'preview 🎤 caption');
    // A voice message proper (`kind: "audio"`), posted over REST.
    const token = await apiToken(names.a);
    const up = await fetch(`${backend}/api/v1/media?name=voice.mp3`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'audio/mpeg' }, body: mp3Bytes });
    assert(up.status === 201, `upload ${up.status}`);
    const mediaId = (await up.json()).id;
    const cid = await tid(B.page, 'chat-view').getAttribute('data-conversation-id');
    const r = await fetch(`${backend}/api/v1/conversations/${cid}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: crypto.randomUUID(), body: '', kind: 'audio', attachment_ids: [mediaId] }),
    });
    if (r.status === 201) {
      const player = B.page.locator(`[data-testid=voice-player][data-media-id="${mediaId}"]`);
      await player.waitFor();
      const label = (await axOf(B.page, player.getByTestId('voice-play'))).name;
      assert(/^Play voice message/.test(label), `labelled player: "${label}"`);
      await until(async () => (await convItem(B.page, 'Alice Example').getByTestId('conversation-preview').textContent()) === '🎤 Voice message', 'preview 🎤 Voice message');
    } else {
      console.log(`      (this server has no kind "audio" yet (${r.status}): audio files go as kind "file" and still play inline)`);
    }
    await tid(B.page, 'message-list').evaluate((el) => (el.scrollTop = el.scrollHeight));
    await shot(B.page, '25-audio');
  }],
  ['voice messages: hold to record (timer, release sends), tap and Esc cancels, keyboard records; uploaded with its length; played and seeked in the other browser', async () => {
    if (!(await hasNewWeb())) return SKIP;
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, 'Alice Example');
    const uploads = [];
    const onReq = (r) => r.url().includes('/api/v1/media?') && uploads.push({ url: r.url().replace(/^https?:\/\/[^/]+/, ''), type: r.headers()['content-type'] });
    A.page.on('request', onReq);
    const players = B.page.getByTestId('voice-player');
    const before = await players.count();
    try {
      await tid(A.page, 'composer').fill('');
      const mic = tid(A.page, 'voice-record');
      await mic.waitFor();
      assert((await axOf(A.page, mic)).name === 'Record a voice message', 'a named record button');
      // Hold: the timer runs; letting go sends.
      const b = await mic.boundingBox();
      await A.page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
      await A.page.mouse.down();
      const bar = tid(A.page, 'voice-bar');
      await A.page.locator('[data-testid=voice-bar][data-phase=recording]').waitFor();
      await until(async () => (await tid(A.page, 'voice-timer').textContent()) === '0:01', 'the timer shows 0:01', 5000);
      await shot(A.page, '27-voice-recording');
      await A.page.waitForTimeout(700);
      await A.page.mouse.up();
      await until(async () => (await players.count()) === before + 1, 'Bob gets the voice message');
      await bar.waitFor({ state: 'detached' });
      const up = uploads[0];
      const ms = Number(/[?&]duration_ms=(\d+)/.exec(up?.url ?? '')?.[1]);
      assert(/^\/api\/v1\/media\?name=voice\.webm&duration_ms=\d+$/.test(up?.url ?? '') && ms >= 1500 && ms < 6000, `raw upload with its length: ${JSON.stringify(uploads)}`);
      assert(up.type === 'audio/webm', `Content-Type audio/webm, got ${up.type}`);
      // The server has it as a voice message.
      const token = await apiToken(names.b);
      const cid = await tid(B.page, 'chat-view').getAttribute('data-conversation-id');
      const last = (await apiGet(token, `/conversations/${cid}/messages?limit=1`)).messages[0];
      assert(last.kind === 'audio' && last.attachments[0]?.mime === 'audio/webm' && last.attachments[0]?.duration_ms === ms, `kind audio with duration_ms: ${JSON.stringify({ kind: last.kind, a: last.attachments[0] })}`);
      // Bob plays it: the length shows before playing (from duration_ms), the time moves.
      const p = players.last();
      const play = p.getByTestId('voice-play');
      const label = (await axOf(B.page, play)).name;
      assert(/^Play voice message, 0:0[2-5]$/.test(label), `play button says the length: "${label}"`);
      await play.click();
      const audio = p.getByTestId('attachment-audio');
      await until(() => audio.evaluate((a) => a.currentTime > 0.2 || a.ended), 'it plays');
      await until(async () => (await play.getAttribute('data-state')) === 'paused', 'and ends', 10_000);
      // Seek with the keyboard (a range: arrows move 0.1 s steps, End to the end).
      const seek = p.getByTestId('voice-seek');
      await seek.focus();
      await B.page.keyboard.press('ArrowRight');
      await B.page.keyboard.press('ArrowRight');
      await until(() => audio.evaluate((a) => Math.abs(a.currentTime - 0.2) < 0.06), 'arrows seek');
      const vt = (await axOf(B.page, seek)).name;
      assert(vt === 'Position in voice message', `seek bar named: ${vt}`);
      assert(/^0:00 of 0:0\d$/.test((await seek.getAttribute('aria-valuetext')) ?? ''), `position in words: ${await seek.getAttribute('aria-valuetext')}`);
      await p.scrollIntoViewIfNeeded();
      await shot(B.page, '28-voice-player');
      // Tap to record, Esc cancels: nothing is sent.
      await mic.click();
      await A.page.locator('[data-testid=voice-bar][data-phase=recording]').waitFor();
      await A.page.waitForTimeout(900);
      await A.page.keyboard.press('Escape');
      await bar.waitFor({ state: 'detached' });
      // Tap, then tap again to send.
      await mic.click();
      await A.page.locator('[data-testid=voice-bar][data-phase=recording]').waitFor();
      await A.page.waitForTimeout(1100);
      await mic.click();
      await until(async () => (await players.count()) === before + 2, 'the tapped recording arrives');
      // Keyboard: Enter starts, Enter on the same button (now "Send voice message") sends.
      await mic.focus();
      await A.page.keyboard.press('Enter');
      await A.page.locator('[data-testid=voice-bar][data-phase=recording]').waitFor();
      await A.page.waitForTimeout(1100);
      assert((await axOf(A.page, mic)).name === 'Send voice message', 'the button now sends');
      await A.page.keyboard.press('Enter');
      await until(async () => (await players.count()) === before + 3, 'the keyboard recording arrives (and the cancelled one never did)');
      assert(uploads.length === 3, `three uploads, the cancelled recording was not sent: ${uploads.length}`);
      await until(async () => (await convItem(B.page, 'Alice Example').getByTestId('conversation-preview').textContent()) === '🎤 Voice message', 'preview 🎤 Voice message');
    } finally {
      A.page.off('request', onReq);
    }
  }],
  ['avatars: A sets a profile photo; B sees it in the list and the chat header', async () => {
    await tid(A.page, 'nav-settings').click();
    await tid(A.page, 'avatar-input').setInputFiles([{ name: 'me.png', mimeType: 'image/png', buffer: avatarPng }]);
    await A.page.getByTestId('toast').filter({ hasText: 'Profile photo updated' }).waitFor();
    const own = tid(A.page, 'settings-view').getByTestId('avatar-img');
    await until(() => imgLoaded(own), 'own avatar shown in settings');
    await until(() => imgLoaded(tid(A.page, 'nav-settings').getByTestId('avatar-img')), 'own avatar in the header');
    const url = await own.getAttribute('src');
    assert(/^\/api\/v1\/media\/[^/]+$/.test(url ?? ''), `avatar url ${url}`);
    // Square-cropped in the browser before the upload.
    assert((await own.evaluate((i) => [i.naturalWidth, i.naturalHeight].join('x'))) === '200x200', 'cropped to a square');
    await shot(A.page, '13-settings-avatar');
    // Profile changes reach others with the next conversation list (no live event for them).
    await B.page.reload();
    await connected(B.page);
    const inList = convItem(B.page, 'Alice Example').getByTestId('avatar-img');
    await until(async () => (await inList.getAttribute('src')) === url && (await imgLoaded(inList)), 'B sees the avatar in the list');
    await openConv(B.page, 'Alice Example');
    const inHeader = B.page.locator('.chat-head [data-testid=avatar-img]');
    await until(() => imgLoaded(inHeader), 'B sees the avatar in the chat header');
    // Avatars are public: no cookie needed.
    const st = await (await fetch(`${base}${url}`)).status;
    assert(st === 200, `avatar readable without login (${st})`);
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
  }],
  ['session survives reload (refresh token)', async () => {
    await A.page.reload();
    await connected(A.page);
    await convItem(A.page, 'Bob Builder').waitFor();
    await tid(A.page, 'chat-view').waitFor();
    await messageWith(A.page, 'Hello Bob').waitFor();
  }],
  ['two tabs refresh the same session without spending a token twice', async () => {
    const tab2 = await A.ctx.newPage();
    tab2.setDefaultTimeout(T);
    await tab2.goto(`${base}/`);
    await connected(tab2);
    for (let i = 0; i < 3; i++) {
      await Promise.all([A.page.reload(), tab2.reload()]);
      await Promise.all([connected(A.page), connected(tab2)]);
    }
    await tab2.close();
    await A.page.reload();
    await connected(A.page);
  }],
  ['history loads on scroll up', async () => {
    // Post 60 messages over REST as Alice (a second login session), then scroll B back to the first.
    const api = `${base}/api/v1`;
    const lr = await fetch(`${api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: names.a, password: 'correct horse battery' }) });
    assert(lr.ok, `REST login ${lr.status}`);
    const { access_token } = await lr.json();
    const h = { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' };
    const convs = (await (await fetch(`${api}/conversations`, { headers: h })).json()).conversations;
    const direct = convs.find((c) => c.kind === 'direct');
    for (let i = 1; i <= 60; i++) {
      for (;;) {
        const r = await fetch(`${api}/conversations/${direct.id}/messages`, { method: 'POST', headers: h, body: JSON.stringify({ client_id: crypto.randomUUID(), body: `bulk ${i} of 60` }) });
        if (r.status === 429) { await new Promise((res) => setTimeout(res, 1000 * Number(r.headers.get('retry-after') ?? 1))); continue; }
        assert(r.status === 201, `POST message ${r.status}`);
        break;
      }
    }
    await B.page.reload();
    await connected(B.page);
    await openConv(B.page, 'Alice Example');
    await messageWith(B.page, 'bulk 60 of 60').waitFor();
    await until(async () => {
      await tid(B.page, 'message-list').evaluate((el) => (el.scrollTop = 0));
      return (await messageWith(B.page, 'Hello Bob').count()) > 0;
    }, 'scrolled back to the first message', 20_000);
    assert((await messageWith(B.page, 'bulk 1 of 60').count()) === 1, 'bulk 1 present once');
  }],
  ['search: over all chats and within one, words marked (case and accents ignored), more pages, a result opens the chat at that message', async () => {
    if (!(await hasNewWeb())) return SKIP;
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await send(A.page, 'Café crème à Noël, at 8?');
    await messageWith(B.page, 'Café crème').waitFor();
    const filter = tid(A.page, 'conv-filter');
    await filter.fill('NOEL cafe');
    const results = A.page.getByTestId('message-result');
    await until(async () => (await results.count()) === 1, 'one result for "NOEL cafe"');
    const r = results.first();
    assert((await r.locator('mark').allTextContents()).join('|') === 'Café|Noël', `marked words: ${await r.locator('mark').allTextContents()}`);
    const rt = (await r.textContent()) ?? '';
    assert(rt.includes('Bob Builder') && rt.includes('You') && rt.includes('Café crème à Noël'), `conversation, sender and snippet: "${rt}"`);
    assert(/1 message found/.test((await tid(A.page, 'message-search-status').textContent()) ?? ''), 'the count is said (a status region)');
    await shot(A.page, '29-search-all');
    // Bob's history starts at the newest 50: an older message opens with the history around it.
    await B.page.reload();
    await connected(B.page);
    await messageWith(B.page, 'Café crème').waitFor();
    assert((await messageWith(B.page, 'Nice to meet you').count()) === 0, 'the old message is not loaded yet');
    const asked = [];
    const onReq = (q) => q.url().includes('/messages?') && asked.push(q.url().replace(/^https?:\/\/[^/]+/, ''));
    B.page.on('request', onReq);
    try {
      await tid(B.page, 'conv-filter').fill('nice MEET');
      const hit = B.page.getByTestId('message-result').filter({ hasText: 'Nice to meet you' });
      await hit.waitFor();
      assert((await hit.locator('mark').allTextContents()).join('|') === 'Nice|meet', 'marked: Nice, meet');
      await hit.click();
      const target = messageWith(B.page, 'Nice to meet you');
      await target.waitFor();
      await until(() => target.evaluate((el) => el.classList.contains('flash')), 'highlighted');
      const tb = await target.boundingBox();
      const lb = await tid(B.page, 'message-list').boundingBox();
      assert(tb.y >= lb.y - 1 && tb.y + tb.height <= lb.y + lb.height + 1, `in view: ${JSON.stringify(tb)} in ${JSON.stringify(lb)}`);
      assert((await B.page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'message', 'focus on the message');
      assert(asked.some((u) => /before_seq=\d+/.test(u)) && asked.some((u) => /after_seq=\d+/.test(u)), `history around it: ${JSON.stringify(asked)}`);
      await shot(B.page, '30-search-jump');
      // The newest messages are a click away (or a scroll down).
      await tid(B.page, 'to-latest').click();
      await messageWith(B.page, 'Café crème').waitFor();
      await tid(B.page, 'to-latest').waitFor({ state: 'detached' });
    } finally {
      B.page.off('request', onReq);
      await tid(B.page, 'conv-filter').fill('');
      await filter.fill('');
    }
    // Within one chat: 60 "bulk" messages come 20 at a time.
    await filter.fill('');
    await tid(A.page, 'chat-search-button').click();
    const input = tid(A.page, 'chat-search-input');
    await input.fill('bulk');
    await until(async () => (await results.count()) === 20, 'first page of 20');
    assert((await results.first().textContent()).includes('bulk 60 of 60'), 'newest first');
    await tid(A.page, 'message-search-more').click();
    await until(async () => (await results.count()) === 40, 'second page: 40');
    await tid(A.page, 'message-search-more').click();
    await until(async () => (await results.count()) >= 60, 'third page: all 60');
    const pick = results.filter({ hasText: 'bulk 7 of 60' });
    await pick.click();
    const seven = messageWith(A.page, 'bulk 7 of 60');
    await until(() => seven.evaluate((el) => el.classList.contains('flash')), 'bulk 7 highlighted');
    await shot(A.page, '31-search-chat');
    await input.press('Escape');
    await tid(A.page, 'chat-search').waitFor({ state: 'detached' });
  }],
  ['group: create, invite link joins a third user, admin removes a member', async () => {
    await tid(A.page, 'new-group').click();
    await tid(A.page, 'group-name').fill(`Hiking club ${run}`);
    await tid(A.page, 'group-description').fill('Weekend trips');
    await A.page.locator(`[data-testid=pick-member][data-username=${names.b}]`).check();
    step("await tid(A.page, 'group-create').click(");
    await tid(A.page, 'group-create').click();
    await inChat(A.page, `Hiking club ${run}`); // the chat with Bob was open before
    step("await send(A.page, 'Welcome to the club'");
    await send(A.page, 'Welcome to the club');
    step('await convItem(B.page, `Hiking club ${ru');
    await convItem(B.page, `Hiking club ${run}`).waitFor();
    step('B sees group');
    await tid(A.page, 'group-info').click();
    step('group info clicked');
    step("await tid(A.page, 'create-invite').click");
    await tid(A.page, 'create-invite').click();
    inviteLink = await tid(A.page, 'invite-link').inputValue();
    assert(inviteLink.startsWith(`${base}/invite/`), `invite link ${inviteLink}`);
    step("await shot(A.page, '05-group-settings');");
    await shot(A.page, '05-group-settings');

    step("C = await newPage('C');");
    C = await newPage('C');
    await C.page.goto(inviteLink.replace(/^https?:\/\/[^/]+/, base));
    await tid(C.page, 'tab-register').click();
    await tid(C.page, 'register-contact').fill(`${names.c}@example.test`);
    await tid(C.page, 'register-username').fill(names.c);
    await tid(C.page, 'register-display-name').fill('Carol Cook');
    await tid(C.page, 'register-password').fill('correct horse battery');
    await tid(C.page, 'register-submit').click();
    step("await tid(C.page, 'accept-invi");
    await tid(C.page, 'accept-invite').click();
    await tid(C.page, 'chat-view').waitFor();
    await messageWith(C.page, 'Welcome to the club').waitFor();
    await send(C.page, 'Thanks for the invite!');
    await messageWith(A.page, 'Thanks for the invite!').waitFor();

    step('await A.page.locator(`[data-te');
    await A.page.locator(`[data-testid=member][data-username=${names.c}]`).waitFor();
    await A.page.locator(`[data-testid=member][data-username=${names.b}] [data-testid=remove-member]`).click();
    await until(async () => (await A.page.locator(`[data-testid=member][data-username=${names.b}]`).count()) === 0, 'bob gone from member list');
    step('await until(async () => (await');
    await until(async () => (await convItem(B.page, `Hiking club ${run}`).count()) === 0, 'group gone from bob’s list');
    await tid(A.page, 'close-group-panel').click();
  }],
  ['group avatar: the owner sets it, a member sees it live', async () => {
    const group = `Hiking club ${run}`;
    await inChat(A.page, group);
    await tid(A.page, 'group-info').click();
    await tid(A.page, 'group-avatar-input').setInputFiles([{ name: 'group.png', mimeType: 'image/png', buffer: groupAvatarPng }]);
    // Reported at the foot of the panel (which covers the chat on narrower screens).
    await tid(A.page, 'group-panel').getByTestId('toast').filter({ hasText: 'Group photo updated' }).waitFor();
    await until(() => imgLoaded(tid(A.page, 'group-panel').locator('.hero [data-testid=avatar-img]')), 'group avatar in the panel');
    await until(() => imgLoaded(convItem(C.page, group).getByTestId('avatar-img')), 'Carol sees the group avatar in her list (live)');
    await until(() => imgLoaded(C.page.locator('.chat-head [data-testid=avatar-img]')), 'and in the chat header');
    await shot(A.page, '14-group-avatar');
    await tid(A.page, 'close-group-panel').click();
  }],
  ['mentions: the @ picker (filter, arrows, Enter, Esc; @all for the owner only), highlighted for the person named, @ badge in the list until read', async () => {
    if (!(await hasNewWeb())) return SKIP;
    const group = `Hiking club ${run}`;
    await tid(C.page, 'nav-people').click(); // Carol is elsewhere when she is mentioned
    await inChat(A.page, group);
    const box = tid(A.page, 'composer');
    await box.fill('');
    await box.pressSequentially('Hey @');
    const picker = tid(A.page, 'mention-picker');
    await picker.waitFor();
    const options = () => picker.getByTestId('mention-option').evaluateAll((els) => els.map((e) => e.getAttribute('data-username')));
    let opts = await options();
    assert(opts.includes(names.c) && opts.includes('all') && !opts.includes(names.a), `members and @all, never me: ${JSON.stringify(opts)}`);
    // ARIA: the box points at the list and the active option.
    assert((await box.getAttribute('aria-controls')) === (await picker.getAttribute('id')), 'aria-controls');
    assert((await picker.getAttribute('role')) === 'listbox', 'a listbox');
    await box.pressSequentially('CAR');
    await until(async () => JSON.stringify(await options()) === JSON.stringify([names.c]), 'filtered to Carol');
    const active = await box.getAttribute('aria-activedescendant');
    assert(active && (await A.page.locator(`#${active}`).getAttribute('data-username')) === names.c && (await A.page.locator(`#${active}`).getAttribute('aria-selected')) === 'true', 'the active option');
    await shot(A.page, '32-mention-picker');
    await box.press('Enter');
    await picker.waitFor({ state: 'detached' });
    assert((await box.inputValue()) === `Hey @${names.c} `, `inserted: "${await box.inputValue()}"`);
    // Arrows move through the options; Esc closes without touching the text.
    await box.pressSequentially('and @');
    await picker.waitFor();
    await box.press('ArrowDown');
    assert((await A.page.locator(`#${await box.getAttribute('aria-activedescendant')}`).getAttribute('aria-selected')) === 'true', 'arrow down moves');
    await box.press('Escape');
    await picker.waitFor({ state: 'detached' });
    assert((await box.inputValue()) === `Hey @${names.c} and @`, 'Esc keeps the text');
    await box.fill(`Hey @${names.c} are you in for Saturday?`);
    await box.press('Enter');
    const sentA = messageWith(A.page, 'are you in for Saturday?');
    await sentA.getByTestId('mention').waitFor();
    // Carol's list shows "@" at once, and after a reload (the server's unread_mentions).
    const item = convItem(C.page, group);
    await item.getByTestId('mention-badge').waitFor();
    assert(/mentioned/.test((await axOf(C.page, item)).name), `the list item says so: ${(await axOf(C.page, item)).name}`);
    await C.page.reload();
    await connected(C.page);
    await item.getByTestId('mention-badge').waitFor();
    await shot(C.page, '33-mention-badge');
    await item.click();
    await inChat(C.page, group);
    const m = messageWith(C.page, 'are you in for Saturday?');
    await m.locator('.bubble[data-mentions-me]').waitFor();
    assert((await m.getByTestId('mention').textContent()) === `@${names.c}`, 'the @name token');
    assert((await axOf(C.page, m)).name.includes(', mentions you: '), `named as mentioning me: ${(await axOf(C.page, m)).name}`);
    await item.getByTestId('mention-badge').waitFor({ state: 'detached' });
    await shot(C.page, '34-mention-highlight');
    // A member is not offered @all.
    await tid(C.page, 'composer').pressSequentially('@');
    await tid(C.page, 'mention-picker').waitFor();
    opts = await tid(C.page, 'mention-picker').getByTestId('mention-option').evaluateAll((els) => els.map((e) => e.getAttribute('data-username')));
    assert(JSON.stringify(opts) === JSON.stringify([names.a]), `Carol is offered Alice only: ${JSON.stringify(opts)}`);
    await tid(C.page, 'mention-picker').getByTestId('mention-option').first().click();
    await tid(C.page, 'composer').pressSequentially('yes!');
    await tid(C.page, 'composer').press('Enter');
    await messageWith(A.page, 'yes!').locator('.bubble[data-mentions-me]').waitFor();
  }],
  ['removed member: the open chat says so live, with no message box; also after a reload and from a stale link', async () => {
    const group = `Book club ${run}`;
    await tid(A.page, 'nav-chats').click();
    await tid(A.page, 'new-group').click();
    await tid(A.page, 'group-name').fill(group);
    await A.page.locator(`[data-testid=pick-member][data-username=${names.b}]`).check();
    await tid(A.page, 'group-create').click();
    await inChat(A.page, group);
    await send(A.page, 'First book: Dune');
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, group);
    await messageWith(B.page, 'First book: Dune').waitFor();
    const id = await tid(B.page, 'chat-view').getAttribute('data-conversation-id');
    await tid(B.page, 'composer').fill('I was about to say');
    await tid(B.page, 'composer').focus();

    // Alice removes Bob while he has the chat open: it switches at once.
    await tid(A.page, 'group-info').click();
    await A.page.locator(`[data-testid=member][data-username=${names.b}] [data-testid=remove-member]`).click();
    await tid(B.page, 'chat-unavailable').waitFor();
    const live = (await tid(B.page, 'unavailable-text').textContent())?.trim();
    assert(live === `You are no longer a member of ${group}`, `live: "${live}"`);
    assert((await tid(B.page, 'chat-title').textContent())?.trim() === group, 'the header still names the group');
    assert((await tid(B.page, 'composer').count()) === 0 && (await tid(B.page, 'send').count()) === 0, 'no message box');
    assert((await B.page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'back-to-list', 'focus moved to the way back (the box it was in is gone)');
    const back = await axOf(B.page, tid(B.page, 'back-to-list'));
    assert(back.description.includes(`You are no longer a member of ${group}`), `the button says why: ${JSON.stringify(back)}`);
    await until(async () => (await convItem(B.page, group).count()) === 0, 'the group left Bob’s list');
    await shot(B.page, '19-removed-live');

    // The same link after a reload: a clear state, not "Loading…" forever.
    await B.page.reload();
    await connected(B.page);
    await tid(B.page, 'chat-unavailable').waitFor();
    const after = (await tid(B.page, 'unavailable-text').textContent())?.trim();
    assert(after === 'This conversation is not available' || after === `You are no longer a member of ${group}`, `after a reload: "${after}"`);
    assert((await tid(B.page, 'composer').count()) === 0, 'no message box after a reload');
    assert(!/Loading/.test((await B.page.locator('.chat-head').textContent()) ?? ''), 'not loading');
    await shot(B.page, '20-removed-reload');
    await tid(B.page, 'back-to-list').click();
    await tid(B.page, 'chat-view').waitFor({ state: 'detached' });
    assert(new URL(B.page.url()).pathname === '/', `back at the list (${B.page.url()})`);

    // A stale link opened by someone who never was a member (Carol, on a phone).
    const M = await newPage('M', { width: 375, height: 740 });
    try {
      await login(M, names.c);
      await M.page.goto(`${base}/c/${id}`);
      await connected(M.page);
      await tid(M.page, 'chat-unavailable').waitFor();
      const stale = (await tid(M.page, 'unavailable-text').textContent())?.trim();
      assert(stale === 'This conversation is not available', `stale link: "${stale}"`);
      assert((await tid(M.page, 'composer').count()) === 0, 'no message box for a stale link');
      assert(await tid(M.page, 'back-to-list').isVisible(), 'a way back on the phone');
      assert(await tid(M.page, 'back').isVisible(), 'and the header back button');
      await shot(M.page, '21-stale-link-mobile');
      await tid(M.page, 'back-to-list').click();
      await tid(M.page, 'conversation-list').waitFor();
    } finally {
      await M.ctx.close();
    }
    await tid(A.page, 'close-group-panel').click();
  }],
  ['mobile 375 px: single pane with back button', async () => {
    const M = await newPage('M', { width: 375, height: 740 });
    await login(M, names.a);
    await tid(M.page, 'conversation-list').waitFor();
    assert(!(await tid(M.page, 'chat-view').isVisible().catch(() => false)), 'no chat pane on list screen');
    await shot(M.page, '06-mobile-list');
    await openConv(M.page, 'Bob Builder');
    assert(!(await tid(M.page, 'conversation-list').isVisible()), 'list hidden while chatting');
    await messageWith(M.page, 'bulk 60 of 60').waitFor();
    await shot(M.page, '07-mobile-chat');
    // The pictures are older than the 60 bulk messages: scroll back to them.
    await until(async () => {
      await tid(M.page, 'message-list').evaluate((el) => (el.scrollTop = 0));
      return (await messageWith(M.page, 'Two pictures').count()) > 0;
    }, 'mobile: scrolled back to the pictures', 20_000);
    await messageWith(M.page, 'Two pictures').scrollIntoViewIfNeeded();
    await until(async () => (await messageWith(M.page, 'Two pictures').getByTestId('attachment-thumb').evaluateAll((els) => els.every((i) => i.complete && i.naturalWidth > 0))), 'mobile: pictures loaded');
    await shot(M.page, '07b-mobile-media');
    await tid(M.page, 'back').click();
    await tid(M.page, 'conversation-list').waitFor();
    await M.ctx.close();
  }],
  ['outage: page reconnects and delivers the outbox', async () => {
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, 'Alice Example');
    if (restartCmd) {
      // Down for 4 s, restarted in the background (execSync would block this page's checks
      // until the server is back, and the message could be acked before it is looked at).
      const p = execAsync(`${restartCmd} 4`);
      await until(async () => (await tid(B.page, 'conn-state').getAttribute('data-state')) !== 'connected', 'B notices the restart', 20_000).catch(() => undefined);
      const down = (await tid(B.page, 'conn-state').getAttribute('data-state')) !== 'connected';
      await send(B.page, 'Sent while the server restarted');
      if (down) {
        const st = await messageWith(B.page, 'Sent while the server').getByTestId('msg-status').getAttribute('data-status');
        assert(st === 'sending', `pending while the server is down (got ${st})`);
      } else console.log('    (note: B had not noticed the restart yet when sending)');
      await p;
    } else if (!direct) {
      await fetch(`${base}/__e2e/outage?ms=4000`, { method: 'POST' });
      await until(async () => (await tid(B.page, 'conn-state').getAttribute('data-state')) !== 'connected', 'B shows disconnected');
      await shot(B.page, '08-reconnecting');
      await send(B.page, 'Sent while the server restarted');
      const st = await messageWith(B.page, 'Sent while the server').getByTestId('msg-status').getAttribute('data-status');
      assert(st === 'sending', `pending while offline (got ${st})`);
    } else {
      console.log('    (skipped: set CHATNODE_RESTART_CMD, or run without CHATNODE_E2E_DIRECT)');
      return;
    }
    await connected(B.page);
    await connected(A.page);
    await messageWith(A.page, 'Sent while the server restarted').waitFor({ timeout: 30_000 });
    assert((await messageWith(A.page, 'Sent while the server restarted').count()) === 1, 'delivered exactly once');
    await until(async () => ['sent', 'read'].includes(await messageWith(B.page, 'Sent while the server').getByTestId('msg-status').getAttribute('data-status')), 'B message acked');
  }],
  ['presence: nobody is shown online while the server is down; fresh presence after reconnecting', async () => {
    if (!restartCmd && !serve) {
      console.log('    (skipped: set CHATNODE_RESTART_CMD, or run without CHATNODE_E2E_DIRECT)');
      return;
    }
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await connected(B.page);
    const listAvatar = convItem(A.page, 'Bob Builder').getByTestId('avatar');
    const headAvatar = A.page.locator('.chat-head [data-testid=avatar]');
    const presenceOf = (loc) => loc.getAttribute('data-presence');
    const green = (loc) => loc.locator('.presence-dot.on').count();
    await until(async () => (await green(listAvatar)) === 1 && (await green(headAvatar)) === 1, 'Bob shown online (green dots) to begin with');
    assert((await tid(A.page, 'chat-subtitle').textContent())?.trim() === 'online', 'header says online');
    const M = await newPage('M', { width: 375, height: 740 });
    await login(M, names.a);
    await openConv(M.page, 'Bob Builder');
    await until(async () => (await green(M.page.locator('.chat-head [data-testid=avatar]'))) === 1, 'phone: Bob online');

    // The server goes away for 8 s (stopped and started again; or the proxy cuts it off).
    const restarted = restartCmd ? execAsync(`${restartCmd} 8`) : fetch(`${base}/__e2e/outage?ms=8000`, { method: 'POST' });
    try {
      await until(async () => (await tid(A.page, 'conn-state').getAttribute('data-state')) !== 'connected', 'A notices the server is gone', 20_000);
      await until(async () => (await A.page.locator('.presence-dot.on').count()) === 0, 'no green dot anywhere while disconnected', 3000);
      const sub = (await tid(A.page, 'chat-subtitle').textContent())?.trim();
      assert(sub === 'status unknown', `header subtitle while down: "${sub}"`);
      assert((await presenceOf(listAvatar)) === 'unknown' && (await presenceOf(headAvatar)) === 'unknown', 'presence unknown in the list and the header');
      // A message written now is "Sending", for screen readers too.
      await send(A.page, 'Written while the server was down');
      const pending = await axOf(A.page, messageWith(A.page, 'Written while the server was down'));
      assert(/^You, .*: Written while the server was down\. Sending$/.test(pending.name), `pending message name: "${pending.name}"`);
      await shot(A.page, '22-presence-unknown-chat');
      await tid(A.page, 'nav-people').click();
      const fp = A.page.locator(`[data-testid=friend][data-username=${names.b}] [data-testid=friend-presence]`);
      await fp.waitFor();
      assert((await fp.textContent())?.trim() === 'status unknown', `People says status unknown, got "${await fp.textContent()}"`);
      assert((await A.page.locator('.presence-dot.on').count()) === 0, 'no green dot in People');
      await shot(A.page, '23-presence-unknown-people');
      await until(async () => (await M.page.locator('.presence-dot.on').count()) === 0 && (await presenceOf(M.page.locator('.chat-head [data-testid=avatar]'))) === 'unknown', 'phone: presence unknown', 20_000);
      await shot(M.page, '24-presence-unknown-mobile');
    } finally {
      await restarted;
    }

    // Back: presence is shown again from fresh data (the reloads after `synced`, then events).
    await connected(A.page);
    await connected(B.page);
    const fp = A.page.locator(`[data-testid=friend][data-username=${names.b}] [data-testid=friend-presence]`);
    await until(async () => (await fp.getAttribute('data-presence')) === 'online' && (await fp.textContent())?.trim() === 'online', 'Bob online again in People', 20_000);
    await tid(A.page, 'nav-chats').click();
    await until(async () => (await presenceOf(listAvatar)) === 'online' && (await green(listAvatar)) === 1, 'Bob online again in the list');
    await openConv(A.page, 'Bob Builder');
    await until(async () => (await green(headAvatar)) === 1 && (await tid(A.page, 'chat-subtitle').textContent())?.trim() === 'online', 'and in the header');
    await messageWith(B.page, 'Written while the server was down').waitFor({ timeout: 30_000 });
    await connected(M.page);
    await until(async () => (await green(M.page.locator('.chat-head [data-testid=avatar]'))) === 1, 'phone: Bob online again');
    await M.ctx.close();
  }],
  ['read ticks survive a reload (direct chat)', async () => {
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, 'Alice Example');
    await send(A.page, 'Read before the reload');
    await until(async () => (await statusOf(A.page, 'Read before the reload')) === 'read', 'live read tick');
    // Bob leaves the chat, so the next message stays unread.
    await tid(B.page, 'nav-chats').click();
    await tid(B.page, 'chat-view').waitFor({ state: 'detached' });
    await send(A.page, 'Not read yet');
    await until(async () => (await statusOf(A.page, 'Not read yet')) === 'sent', 'second message acked');
    await A.page.reload();
    await connected(A.page);
    await messageWith(A.page, 'Not read yet').waitFor();
    await until(async () => (await statusOf(A.page, 'Read before the reload')) === 'read', 'read tick restored after the reload (peer_last_read_seq)');
    assert((await statusOf(A.page, 'Not read yet')) === 'sent', 'the unread message is still only "sent"');
    // And it turns read live when Bob opens the chat.
    await openConv(B.page, 'Alice Example');
    await until(async () => (await statusOf(A.page, 'Not read yet')) === 'read', 'live read tick after the reload');
  }],
  ['read ticks survive a reload (group)', async () => {
    const group = `Hiking club ${run}`;
    await tid(C.page, 'nav-chats').click();
    await openConv(C.page, group);
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, group);
    await send(A.page, 'Who is in for Saturday?');
    await messageWith(C.page, 'Who is in for Saturday?').waitFor();
    await until(async () => (await statusOf(A.page, 'Who is in for Saturday?')) === 'read', 'live read tick in the group');
    await A.page.reload();
    await connected(A.page);
    await messageWith(A.page, 'Who is in for Saturday?').waitFor();
    await until(async () => (await statusOf(A.page, 'Who is in for Saturday?')) === 'read', 'group read tick restored after the reload (member last_read_seq)');
  }],
  ['delete for me hides a message only for me, also after a reload', async () => {
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await openConv(B.page, 'Alice Example');
    await send(A.page, 'Oops, wrong chat');
    await messageWith(B.page, 'Oops, wrong chat').waitFor();
    const m = messageWith(A.page, 'Oops, wrong chat');
    await until(async () => ['sent', 'read'].includes(await statusOf(A.page, 'Oops, wrong chat')), 'acked');
    await m.hover();
    await m.getByTestId('message-actions').click();
    await m.getByTestId('action-delete-me').click();
    await m.waitFor({ state: 'detached' });
    await A.page.reload();
    await connected(A.page);
    await messageWith(A.page, 'Not read yet').waitFor();
    assert((await messageWith(A.page, 'Oops, wrong chat').count()) === 0, 'still hidden for me after a reload');
    await B.page.reload();
    await connected(B.page);
    await messageWith(B.page, 'Oops, wrong chat').waitFor();
  }],
  ['friend request declined, then cancelled', async () => {
    await tid(C.page, 'nav-people').click();
    await tid(C.page, 'user-search').fill(names.a);
    await C.page.locator(`[data-testid=search-result][data-username=${names.a}] [data-testid=add-friend]`).click();
    await C.page.locator(`[data-testid=outgoing-request][data-username=${names.a}]`).waitFor();
    await tid(A.page, 'requests-badge').waitFor();
    await tid(A.page, 'nav-people').click();
    await A.page.locator(`[data-testid=incoming-request][data-username=${names.c}] [data-testid=decline-request]`).click();
    await A.page.locator(`[data-testid=incoming-request][data-username=${names.c}]`).waitFor({ state: 'detached' });
    await tid(A.page, 'requests-badge').waitFor({ state: 'detached' });
    // The sender's list follows without a reload.
    await C.page.locator(`[data-testid=outgoing-request][data-username=${names.a}]`).waitFor({ state: 'detached' });
    assert((await A.page.locator(`[data-testid=friend][data-username=${names.c}]`).count()) === 0, 'not friends after a decline');

    // Alice asks Carol, then changes her mind.
    await tid(A.page, 'user-search').fill(names.c);
    await A.page.locator(`[data-testid=search-result][data-username=${names.c}] [data-testid=add-friend]`).click();
    await A.page.locator(`[data-testid=outgoing-request][data-username=${names.c}] [data-testid=cancel-request]`).click();
    await A.page.locator(`[data-testid=outgoing-request][data-username=${names.c}]`).waitFor({ state: 'detached' });
    await until(async () => (await C.page.locator(`[data-testid=incoming-request][data-username=${names.a}]`).count()) === 0, 'cancelled request gone for Carol');
    await tid(C.page, 'requests-badge').waitFor({ state: 'detached' });
    await C.page.reload();
    await connected(C.page);
    await tid(C.page, 'people-view').waitFor();
    assert((await C.page.locator(`[data-testid=incoming-request][data-username=${names.a}]`).count()) === 0, 'still gone after a reload');
  }],
  ['block: friend request and direct message fail in plain words; unblock', async () => {
    // Alice has Bob in her search results when Bob blocks her.
    await tid(A.page, 'nav-people').click();
    await tid(A.page, 'user-search').fill(names.b);
    await A.page.locator(`[data-testid=search-result][data-username=${names.b}]`).waitFor();
    await tid(B.page, 'nav-people').click();
    await B.page.locator(`[data-testid=friend][data-username=${names.a}] [data-testid=block-user]`).click();
    await B.page.locator(`[data-testid=blocked-user][data-username=${names.a}]`).waitFor();
    await B.page.locator(`[data-testid=friend][data-username=${names.a}]`).waitFor({ state: 'detached' });
    // The block ended the friendship: Alice is offered "Add friend", which the server refuses.
    await A.page.locator(`[data-testid=friend][data-username=${names.b}]`).waitFor({ state: 'detached' });
    await A.page.locator(`[data-testid=search-result][data-username=${names.b}] [data-testid=add-friend]`).click();
    const toast = A.page.getByTestId('toast').filter({ hasText: 'You cannot message or add this person' });
    await toast.waitFor();
    await toast.getByRole('button', { name: 'Dismiss' }).click();
    await toast.waitFor({ state: 'detached' });
    assert((await A.page.locator(`[data-testid=outgoing-request][data-username=${names.b}]`).count()) === 0, 'no request was created');
    // A direct message is refused too, and the bubble says why.
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await send(A.page, 'Are you still there?');
    const failed = messageWith(A.page, 'Are you still there?');
    await until(async () => (await failed.getByTestId('msg-status').getAttribute('data-status')) === 'failed', 'message marked as not sent');
    const failedName = (await axOf(A.page, failed)).name;
    assert(/^You, .*: Are you still there\?\. Not sent$/.test(failedName), `a screen reader hears it was not sent: "${failedName}"`);
    const why = (await failed.getByTestId('message-error').textContent()) ?? '';
    assert(/cannot message or add this person/i.test(why), `plain-words reason, got "${why}"`);
    assert(!/blocked|_|403/.test(why), `no codes or jargon in "${why}"`);
    const notSent = A.page.getByTestId('toast').filter({ hasText: 'Message not sent: You cannot message or add this person' });
    await notSent.waitFor();
    await notSent.getByRole('button', { name: 'Dismiss' }).click();
    await failed.getByRole('button', { name: 'Discard' }).click({ timeout: 3000 }); // nothing may cover it
    await failed.waitFor({ state: 'detached' });
    assert((await messageWith(B.page, 'Are you still there?').count()) === 0, 'Bob got nothing');

    // Bob unblocks; Alice can ask again and Bob accepts.
    await B.page.locator(`[data-testid=blocked-user][data-username=${names.a}] [data-testid=unblock-user]`).click();
    await B.page.locator(`[data-testid=blocked-user][data-username=${names.a}]`).waitFor({ state: 'detached' });
    await tid(A.page, 'nav-people').click();
    await tid(A.page, 'user-search').fill(names.b);
    await A.page.locator(`[data-testid=search-result][data-username=${names.b}] [data-testid=add-friend]`).click();
    await A.page.locator(`[data-testid=outgoing-request][data-username=${names.b}]`).waitFor();
    await B.page.locator(`[data-testid=incoming-request][data-username=${names.a}] [data-testid=accept-request]`).click();
    await A.page.locator(`[data-testid=friend][data-username=${names.b}]`).waitFor();
    await B.page.locator(`[data-testid=friend][data-username=${names.a}]`).waitFor();
  }],
  ['remove a friend', async () => {
    await tid(A.page, 'user-search').fill('');
    await A.page.locator(`[data-testid=friend][data-username=${names.b}] [data-testid=remove-friend]`).click();
    await A.page.locator(`[data-testid=friend][data-username=${names.b}]`).waitFor({ state: 'detached' });
    assert(dialogs.some((d) => d.label === 'A' && d.type === 'confirm' && /Remove Bob Builder/.test(d.message)), 'asked to confirm');
    await B.page.locator(`[data-testid=friend][data-username=${names.a}]`).waitFor({ state: 'detached' });
    await A.page.reload();
    await connected(A.page);
    await tid(A.page, 'people-view').waitFor();
    assert((await A.page.locator(`[data-testid=friend][data-username=${names.b}]`).count()) === 0, 'still removed after a reload');
  }],
  ['group panel (owner): promote, demote, transfer ownership, then leave', async () => {
    const group = `Hiking club ${run}`;
    const carolRow = (p) => p.locator(`[data-testid=member][data-username=${names.c}]`);
    await tid(C.page, 'nav-chats').click();
    await openConv(C.page, group);
    await tid(C.page, 'group-info').click();
    await tid(C.page, 'group-panel').waitFor();
    assert((await tid(C.page, 'group-settings').count()) === 0, 'a member has no settings form');
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, group);
    await tid(A.page, 'group-info').click();

    await carolRow(A.page).getByTestId('promote').click();
    await A.page.locator(`[data-testid=member][data-username=${names.c}][data-role=admin]`).waitFor();
    assert((await carolRow(A.page).getByTestId('member-role').textContent()) === 'admin', 'role badge says admin');
    await tid(C.page, 'group-settings').waitFor(); // Carol's own view follows live
    await C.page.locator('[data-testid=group-summary][data-my-role=admin]').waitFor();

    await carolRow(A.page).getByTestId('demote').click();
    await A.page.locator(`[data-testid=member][data-username=${names.c}][data-role=member]`).waitFor();
    assert((await carolRow(A.page).getByTestId('member-role').count()) === 0, 'no role badge for a member');
    await C.page.locator('[data-testid=group-summary][data-my-role=member]').waitFor();
    await tid(C.page, 'group-settings').waitFor({ state: 'detached' });

    assert((await tid(A.page, 'leave-group').count()) === 0, 'the owner cannot leave before a transfer');
    await carolRow(A.page).getByTestId('transfer').click();
    await A.page.locator(`[data-testid=member][data-username=${names.c}][data-role=owner]`).waitFor();
    await A.page.locator(`[data-testid=member][data-username=${names.a}][data-role=admin]`).waitFor();
    await A.page.locator('[data-testid=group-summary][data-my-role=admin]').waitFor();
    assert((await tid(A.page, 'promote').count()) + (await tid(A.page, 'transfer').count()) === 0, 'an admin has no owner actions');
    await C.page.locator('[data-testid=group-summary][data-my-role=owner]').waitFor();

    await tid(A.page, 'leave-group').click();
    await until(async () => (await convItem(A.page, group).count()) === 0, 'group gone from Alice’s list');
    await tid(A.page, 'chat-view').waitFor({ state: 'detached' });
    await C.page.locator(`[data-testid=member][data-username=${names.a}]`).waitFor({ state: 'detached' });
    await until(async () => /^1 member\b/.test((await tid(C.page, 'chat-subtitle').textContent()) ?? ''), 'Carol sees 1 member');
    await tid(C.page, 'close-group-panel').click();
    await A.page.reload();
    await connected(A.page);
    await tid(A.page, 'conversation-list').waitFor();
    assert((await convItem(A.page, group).count()) === 0, 'still gone after a reload');
  }],
  ['join a public group from the directory', async () => {
    const group = `Board games ${run}`;
    await tid(B.page, 'nav-chats').click();
    await tid(B.page, 'new-group').click();
    await tid(B.page, 'group-name').fill(group);
    await tid(B.page, 'group-description').fill('Tuesdays at eight');
    await tid(B.page, 'group-public').check();
    await tid(B.page, 'group-create').click();
    await inChat(B.page, group);

    await tid(C.page, 'nav-groups').click();
    await tid(C.page, 'group-search').fill(`Board games ${run}`);
    const entry = C.page.getByTestId('directory-group').filter({ hasText: group });
    await entry.getByTestId('join-group').click();
    await inChat(C.page, group);
    await convItem(C.page, group).waitFor();
    await until(async () => /^2 members/.test((await tid(B.page, 'chat-subtitle').textContent()) ?? ''), 'B sees 2 members');
    await send(C.page, 'Count me in for Tuesday');
    await messageWith(B.page, 'Count me in for Tuesday').waitFor();
    // The directory now offers "Open" instead of "Join".
    await tid(C.page, 'nav-groups').click();
    await tid(C.page, 'group-search').fill(`Board games ${run}`);
    await C.page.getByTestId('directory-group').filter({ hasText: group }).getByTestId('open-group').waitFor();
  }],
  ['notifications: the service worker is registered and controls the page', async () => {
    if (!(await hasPushFeature())) return SKIP;
    await A.ctx.grantPermissions(['notifications'], { origin: base });
    await tid(A.page, 'nav-chats').click();
    await A.page.reload();
    await connected(A.page);
    const st = await until(
      () =>
        A.page.evaluate(async () => {
          const r = await navigator.serviceWorker.getRegistration('/');
          const c = navigator.serviceWorker.controller;
          return r?.active && c ? { script: r.active.scriptURL, scope: r.scope, controller: c.scriptURL, permission: Notification.permission } : null;
        }),
      'service worker active and controlling the page',
    );
    assert(st.script === `${base}/sw.js` && st.controller === `${base}/sw.js`, `script ${st.script} / ${st.controller}`);
    assert(st.scope === `${base}/`, `scope ${st.scope}`);
    assert(st.permission === 'granted', `permission ${st.permission}`);
  }],
  ['notifications: a push payload shows a notification; clear removes it; previews off is neutral', async () => {
    if (!(await hasPushFeature())) return SKIP;
    await tid(A.page, 'nav-chats').click();
    const id = await A.page.locator('[data-testid=conversation-item]').first().getAttribute('data-conversation-id');
    const msg = { type: 'message', conversation_id: id, seq: 41, group: null, sender: 'Bob Builder', body: 'Push test 🚀 see you at 8', kind: 'text', url: `/c/${id}` };
    let r = await testPush(A.page, msg);
    assert(r.reply.ok, `worker reply ${JSON.stringify(r.reply)}`);
    let mine = r.open.filter((n) => n.tag === id);
    assert(mine.length === 1, `one notification for the conversation, got ${JSON.stringify(r.open)}`);
    assert(mine[0].title === 'Bob Builder' && mine[0].body === 'Push test 🚀 see you at 8', `title/body ${JSON.stringify(mine[0])}`);
    assert(mine[0].renotify === true && mine[0].data?.url === `/c/${id}`, `renotify/url ${JSON.stringify(mine[0])}`);
    // A newer message replaces it (same tag); a group message has "sender: text".
    r = await testPush(A.page, { ...msg, seq: 42, body: 'Or 9?' });
    mine = r.open.filter((n) => n.tag === id);
    assert(mine.length === 1 && mine[0].body === 'Or 9?', `replaced: ${JSON.stringify(mine)}`);
    r = await testPush(A.page, { ...msg, conversation_id: 'g-test', url: '/c/g-test', group: 'Hiking club', seq: 3 });
    const g = r.open.find((n) => n.tag === 'g-test');
    assert(g && g.title === 'Hiking club' && g.body === 'Bob Builder: Push test 🚀 see you at 8', `group: ${JSON.stringify(g)}`);
    // Read elsewhere: the clear payload closes it.
    r = await testPush(A.page, { type: 'clear', conversation_id: id, seq: 42 });
    assert(r.reply.ok && !r.open.some((n) => n.tag === id), `cleared: ${JSON.stringify(r.open)}`);
    r = await testPush(A.page, { type: 'clear', conversation_id: 'g-test', seq: 3 });
    assert(r.open.length === 0, `all cleared: ${JSON.stringify(r.open)}`);
    // Previews off: who wrote, not what.
    r = await testPush(A.page, { ...msg, seq: 43, body: null });
    mine = r.open.filter((n) => n.tag === id);
    assert(mine.length === 1 && mine[0].title === 'Bob Builder' && mine[0].body === 'New message', `previews off: ${JSON.stringify(mine)}`);
    await testPush(A.page, { type: 'clear', conversation_id: id, seq: 43 });
  }],
  ['notifications: the page reports what is on screen (view frame)', async () => {
    if (!(await hasPushFeature())) return SKIP;
    const views = [];
    const onWs = (ws) =>
      ws.on('framesent', (f) => {
        try {
          const j = JSON.parse(String(f.payload));
          if (j.type === 'view') views.push(j.conversation_id);
        } catch {
          /* binary */
        }
      });
    A.page.on('websocket', onWs);
    try {
      await tid(A.page, 'nav-chats').click();
      const id = await A.page.locator('[data-testid=conversation-item]').first().getAttribute('data-conversation-id');
      await A.page.goto(`${base}/c/${id}`);
      await connected(A.page);
      await until(() => views.at(-1) === id, `view ${id} after connecting (got ${JSON.stringify(views)})`);
      const setVisibility = (v) =>
        A.page.evaluate((v) => {
          Object.defineProperty(document, 'visibilityState', { value: v, configurable: true });
          Object.defineProperty(document, 'hidden', { value: v === 'hidden', configurable: true });
          document.dispatchEvent(new Event('visibilitychange'));
        }, v);
      await setVisibility('hidden');
      await until(() => views.at(-1) === null, 'view null when the page is hidden');
      await setVisibility('visible');
      await until(() => views.at(-1) === id, 'view again when visible');
      await tid(A.page, 'nav-people').click();
      await until(() => views.at(-1) === null, 'view null with no chat open');
      // After a reconnect (simulated outage in proxy mode; else a reload) the view is sent again.
      await tid(A.page, 'nav-chats').click();
      await A.page.locator(`[data-testid=conversation-item][data-conversation-id="${id}"]`).click();
      await until(() => views.at(-1) === id, 'view on opening the chat');
      const n = views.length;
      if (serve) await fetch(`${base}/__e2e/outage?ms=500`, { method: 'POST' });
      else await A.page.reload();
      await connected(A.page);
      await until(() => views.length > n && views.at(-1) === id, 'view re-sent after reconnecting');
    } finally {
      A.page.off('websocket', onWs);
    }
  }],
  ['notifications: settings enable (plain-words result), previews toggle, turn off', async () => {
    if (!(await hasPushFeature())) return SKIP;
    const token = await apiToken(names.a);
    await tid(A.page, 'nav-settings').click();
    const box = tid(A.page, 'notifications-settings');
    await box.waitFor();
    await box.scrollIntoViewIfNeeded();
    await A.page.locator('[data-testid=notifications-toggle][data-action=enable]').click();
    // subscribe() needs the browser's push service, which this sandbox cannot reach: either a
    // plain-words error (in at most ~15 s, never a hang) or, if it somehow works, "on".
    const t0 = Date.now();
    const outcome = await until(async () => {
      if ((await box.getAttribute('data-busy')) !== 'false') return null;
      const status = await box.getAttribute('data-status');
      if (status === 'on') return { status };
      if (await tid(A.page, 'notifications-error').count()) return { status, error: await tid(A.page, 'notifications-error').textContent() };
      return null;
    }, 'enabling notifications settles', 30_000);
    console.log(`      enable notifications → ${outcome.status} after ${Date.now() - t0} ms${outcome.error ? `: "${outcome.error}"` : ''}`);
    await box.scrollIntoViewIfNeeded();
    await shot(A.page, '15-settings-notifications');
    if (outcome.status === 'on') {
      const subs = await apiGet(token, '/push/subscriptions');
      assert(subs.subscriptions?.length >= 1, 'subscription registered with the server');
    } else {
      assert(outcome.status === 'page-only', `in-page notifications still on, got ${outcome.status}`);
      assert(/\bpush\b/i.test(outcome.error) && /while ChatNode is open/i.test(outcome.error), `plain words: ${outcome.error}`);
      assert(/On while ChatNode is open/.test(await tid(A.page, 'notifications-state').textContent()), 'state says in-page only');
      await tid(A.page, 'notifications-retry').waitFor();
    }
    // Message text in notifications (notification_previews).
    const previews = tid(A.page, 'notification-previews');
    assert(await previews.isChecked(), 'previews on by default');
    await previews.uncheck();
    await until(async () => (await apiGet(token, '/users/me')).notification_previews === false, 'server has previews off');
    await A.page.reload();
    await connected(A.page);
    assert(!(await tid(A.page, 'notification-previews').isChecked()), 'previews off after a reload');
    await tid(A.page, 'notification-previews').check();
    await until(async () => (await apiGet(token, '/users/me')).notification_previews === true, 'server has previews on');
    // Turn off.
    await A.page.locator('[data-testid=notifications-toggle][data-action=disable]').click();
    await A.page.locator('[data-testid=notifications-settings][data-status=off]').waitFor();
    await A.page.locator('[data-testid=notifications-toggle][data-action=enable]').waitFor();
    assert((await apiGet(token, '/push/subscriptions')).subscriptions.length === 0, 'no subscription left on the server');
  }],
  ['mute: 1 hour shows the muted icon and muted_until; forever; unmute', async () => {
    if (!(await hasPushFeature())) return SKIP;
    const token = await apiToken(names.a);
    await tid(A.page, 'nav-chats').click();
    const item = A.page.locator('[data-testid=conversation-item]').first();
    const id = await item.getAttribute('data-conversation-id');
    const row = A.page.locator(`[data-testid=conversation-item][data-conversation-id="${id}"]`);
    await item.click();
    await A.page.locator(`[data-testid=chat-view][data-conversation-id="${id}"]`).waitFor();
    assert((await row.getByTestId('muted-icon').count()) === 0, 'not muted at first');
    await tid(A.page, 'mute-button').click();
    await tid(A.page, 'mute-menu').waitFor();
    await shot(A.page, '16-mute-menu');
    const before = Date.now();
    await tid(A.page, 'mute-1h').click();
    await A.page.locator('[data-testid=mute-button][data-muted=true]').waitFor();
    await row.getByTestId('muted-icon').waitFor();
    assert((await axOf(A.page, row)).name.includes('muted'), 'list item says muted');
    let c = await apiGet(token, `/conversations/${id}`);
    const until1h = Date.parse(c.muted_until);
    assert(Math.abs(until1h - (before + 3_600_000)) < 60_000, `muted_until about an hour from now: ${c.muted_until}`);
    // Survives a reload (comes from the server).
    await A.page.reload();
    await connected(A.page);
    await row.getByTestId('muted-icon').waitFor();
    await tid(A.page, 'mute-button').click();
    assert(/^Muted until /.test(await tid(A.page, 'mute-state').textContent()), 'menu says until when');
    await shot(A.page, '17-mute-menu-muted');
    await tid(A.page, 'mute-forever').click();
    await until(async () => (await apiGet(token, `/conversations/${id}`)).muted_until?.startsWith('9999'), 'muted forever');
    await tid(A.page, 'mute-button').click();
    assert((await tid(A.page, 'mute-state').textContent()).trim() === 'Muted', 'forever says Muted');
    await tid(A.page, 'unmute').click();
    await A.page.locator('[data-testid=mute-button][data-muted=false]').waitFor();
    await row.getByTestId('muted-icon').waitFor({ state: 'detached' });
    c = await apiGet(token, `/conversations/${id}`);
    assert(!c.muted_until, `unmuted on the server: ${c.muted_until}`);
  }],
  ['mute: "Mute mentions too" goes to the server with the mute and is shown', async () => {
    if (!(await hasNewWeb())) return SKIP;
    const token = await apiToken(names.a);
    await tid(A.page, 'nav-chats').click();
    const item = A.page.locator('[data-testid=conversation-item]').first();
    const id = await item.getAttribute('data-conversation-id');
    await item.click();
    await A.page.locator(`[data-testid=chat-view][data-conversation-id="${id}"]`).waitFor();
    await tid(A.page, 'mute-button').click();
    const opt = tid(A.page, 'mute-mentions');
    await opt.waitFor();
    assert((await opt.getAttribute('role')) === 'menuitemcheckbox' && (await opt.getAttribute('aria-checked')) === 'false', 'a checkbox item, off');
    await opt.click();
    assert((await opt.getAttribute('aria-checked')) === 'true', 'checked');
    await tid(A.page, 'mute-8h').click();
    await A.page.locator('[data-testid=mute-button][data-muted=true]').waitFor();
    let c = await apiGet(token, `/conversations/${id}`);
    assert(c.muted_until && c.mute_mentions === true, `muted, mentions too (mute_mentions true): ${JSON.stringify({ u: c.muted_until, m: c.mute_mentions })}`);
    await tid(A.page, 'mute-button').click();
    assert((await tid(A.page, 'mute-mentions').getAttribute('aria-checked')) === 'true', 'shown as on');
    await shot(A.page, '35-mute-mentions');
    await tid(A.page, 'mute-mentions').click();
    await until(async () => (await apiGet(token, `/conversations/${id}`)).mute_mentions === false, 'mentions notify again (mute_mentions false), still muted');
    c = await apiGet(token, `/conversations/${id}`);
    assert(!!c.muted_until, 'still muted');
    await tid(A.page, 'unmute').click();
    await A.page.locator('[data-testid=mute-button][data-muted=false]').waitFor();
  }],
  ['installable: the manifest, its icons and theme colour; Chromium reports no installability error; precompressed assets', async () => {
    if (!(await hasNewWeb())) return SKIP;
    const idx = await rawGet('/', { 'accept-encoding': 'identity' });
    const html = idx.body.toString('utf8');
    assert(/<link rel="manifest" href="\/manifest\.webmanifest"/.test(html), 'index.html links the manifest');
    assert(/<meta name="theme-color"/.test(html) && /viewport-fit=cover/.test(html), 'theme-color and viewport-fit=cover');
    const mf = await rawGet('/manifest.webmanifest', { 'accept-encoding': 'identity' });
    assert(mf.status === 200 && /^application\/manifest\+json/.test(mf.headers['content-type'] ?? ''), `manifest served as application/manifest+json: ${mf.status} ${mf.headers['content-type']}`);
    const m = JSON.parse(mf.body.toString('utf8'));
    assert(m.name === 'ChatNode' && m.short_name && m.display === 'standalone' && m.start_url === '/' && m.scope === '/' && m.theme_color && m.background_color, `manifest fields: ${JSON.stringify(m)}`);
    for (const size of [192, 512]) {
      for (const purpose of ['any', 'maskable']) {
        const icon = m.icons.find((i) => i.sizes === `${size}x${size}` && (i.purpose ?? 'any').split(' ').includes(purpose));
        assert(icon, `a ${purpose} icon of ${size}`);
        const r = await rawGet(icon.src);
        assert(r.status === 200 && r.headers['content-type'] === 'image/png', `${icon.src}: ${r.status} ${r.headers['content-type']}`);
        assert(r.body.readUInt32BE(16) === size && r.body.readUInt32BE(20) === size, `${icon.src} is ${size}×${size}`);
      }
    }
    // Chromium says "in-incognito" for the test's usual contexts: ask a profile on disk.
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chatnode-install-'));
    const ctx = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: launchArgs });
    try {
      const page = ctx.pages()[0] ?? (await ctx.newPage());
      await page.goto(`${base}/`);
      await tid(page, 'login-form').waitFor();
      await until(() => page.evaluate(async () => !!(await navigator.serviceWorker.getRegistration('/'))?.active), 'the service worker is active');
      const cdp = await ctx.newCDPSession(page);
      let errors = [];
      for (let i = 0; i < 20; i++) {
        ({ installabilityErrors: errors } = await cdp.send('Page.getInstallabilityErrors'));
        if (!errors.length) break;
        await page.waitForTimeout(300);
      }
      assert(errors.length === 0, `installability errors: ${JSON.stringify(errors)}`);
      const { url, data } = await cdp.send('Page.getAppManifest');
      assert(url.endsWith('/manifest.webmanifest') && JSON.parse(data).name === 'ChatNode', `Chromium reads the manifest: ${url}`);
      const theme = await page.evaluate(() => [...document.querySelectorAll('meta[name=theme-color]')].map((x) => x.getAttribute('content')));
      assert(theme.length >= 1, 'theme-color in the page');
    } finally {
      await ctx.close();
      fs.rmSync(profile, { recursive: true, force: true });
    }
    // Every compressible file comes as brotli (or gzip) when asked, byte-identical once decoded.
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/assets\/[^"]+\.css)"/.exec(html)?.[1];
    for (const f of [js, css, '/manifest.webmanifest', '/sw.js']) {
      const plain = await rawGet(f, { 'accept-encoding': 'identity' });
      const br = await rawGet(f, { 'accept-encoding': 'gzip, deflate, br' });
      const gz = await rawGet(f, { 'accept-encoding': 'gzip' });
      assert(br.headers['content-encoding'] === 'br' && /accept-encoding/i.test(br.headers.vary ?? ''), `${f}: br with Vary (got ${br.headers['content-encoding']}, vary ${br.headers.vary})`);
      assert(gz.headers['content-encoding'] === 'gzip', `${f}: gzip (got ${gz.headers['content-encoding']})`);
      assert(!plain.headers['content-encoding'] || plain.headers['content-encoding'] === 'identity', `${f}: identity when not accepted`);
      assert(zlib.brotliDecompressSync(br.body).equals(plain.body) && zlib.gunzipSync(gz.body).equals(plain.body), `${f}: the same bytes`);
      assert(br.body.length < plain.body.length, `${f}: smaller`);
    }
    console.log(`      ${js}: ${(await rawGet(js, { 'accept-encoding': 'identity' })).body.length} B, br ${(await rawGet(js, { 'accept-encoding': 'br' })).body.length} B`);
  }],
  ['offline: the service worker serves the app shell; a reload without a network shows the last loaded chats; never an /api response from its cache', async () => {
    if (!(await hasNewWeb())) return SKIP;
    await tid(A.page, 'nav-chats').click();
    await openConv(A.page, 'Bob Builder');
    await messageWith(A.page, 'Café crème').waitFor();
    await until(() => A.page.evaluate(async () => !!navigator.serviceWorker.controller && (await caches.keys()).some((k) => k.startsWith('chatnode-shell-'))), 'the worker controls the page and has its cache');
    await until(() => A.page.evaluate(() => (localStorage.getItem('chatnode.offline') ?? '').includes('Café crème')), 'the chats are kept in this browser');
    const cached = await A.page.evaluate(async () => {
      const out = [];
      for (const k of await caches.keys()) for (const r of await (await caches.open(k)).keys()) out.push(new URL(r.url).pathname);
      return out;
    });
    assert(cached.includes('/') && cached.some((p) => p.startsWith('/assets/')) && cached.includes('/manifest.webmanifest'), `shell cached: ${JSON.stringify(cached)}`);
    assert(!cached.some((p) => p.startsWith('/api/')), `no API response in the worker's cache: ${JSON.stringify(cached)}`);
    const failed = [];
    const onFail = (r) => !r.url().includes('/api/') && failed.push(r.url());
    A.page.on('requestfailed', onFail);
    await A.ctx.setOffline(true);
    try {
      await A.page.reload();
      await tid(A.page, 'conversation-list').waitFor();
      await convItem(A.page, 'Bob Builder').waitFor();
      await inChat(A.page, 'Bob Builder');
      await messageWith(A.page, 'Café crème').waitFor();
      assert((await tid(A.page, 'conn-state').getAttribute('data-state')) === 'offline', 'says offline');
      assert(failed.length === 0, `the shell came from the worker: ${JSON.stringify(failed)}`);
      await shot(A.page, '36-offline-reload');
    } finally {
      A.page.off('requestfailed', onFail);
      await A.ctx.setOffline(false);
    }
    // Back online: the real session resumes by itself.
    await connected(A.page);
    await send(A.page, 'Back online');
    // (Alice and Bob are no longer friends by now: the server's answer, either way, is what counts.)
    await until(async () => ['sent', 'read', 'failed'].includes(await statusOf(A.page, 'Back online')), 'the server answers a message again');
  }],
  ['each API call once per page load (no duplicate GETs on start)', async () => {
    if (!(await hasNewWeb())) return SKIP;
    const group = `Hiking club ${run}`;
    await tid(C.page, 'nav-chats').click();
    await openConv(C.page, group);
    const check = async (label) => {
      const gets = [];
      const onReq = (r) => r.url().includes('/api/') && gets.push(`${r.method()} ${r.url().replace(/^https?:\/\/[^/]+/, '')}`);
      C.page.on('request', onReq);
      try {
        await C.page.reload();
        await connected(C.page);
        await C.page.waitForTimeout(3000); // everything a start asks for, and then some
      } finally {
        C.page.off('request', onReq);
      }
      const seen = new Map();
      for (const g of gets) seen.set(g, (seen.get(g) ?? 0) + 1);
      const dup = [...seen].filter(([k, n]) => n > 1 && !k.startsWith('POST /api/v1/auth/refresh'));
      assert(dup.length === 0, `${label}: asked more than once: ${JSON.stringify(dup)} (all: ${JSON.stringify(gets)})`);
      console.log(`      ${label}: ${gets.length} requests, each once: ${gets.map((g) => g.replace(/[0-9a-f-]{36}/g, '…')).join(', ')}`);
    };
    await check('group chat');
    // The People view loads the block list when it opens: wait for that answer, or it can
    // land inside the next check and look like a second request of the reloaded page.
    const blocksLoaded = C.page.waitForResponse((r) => r.url().endsWith('/api/v1/blocks'));
    await tid(C.page, 'nav-people').click();
    await blocksLoaded;
    await check('people');
  }],
  // ---------- operators, bots, webhooks, service notifications, single sign-on ----------
  ['login page: registration open, by invite (code from the link), closed; single sign-on errors in plain words', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    const L = await newPage('L');
    try {
      let mode = 'invite';
      await L.page.route('**/api/v1/auth/registration', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ mode }) }));
      // A registration link opens the form with the code filled in.
      await L.page.goto(`${base}/register?code=Ab3x-Code_9`);
      await tid(L.page, 'register-form').waitFor();
      await L.page.locator('[data-testid=register-form][data-mode=invite]').waitFor();
      assert((await tid(L.page, 'register-invite').inputValue()) === 'Ab3x-Code_9', 'invite code prefilled from the link');
      assert((await tid(L.page, 'tab-register').getAttribute('aria-selected')) === 'true', 'the register tab is chosen');
      // Closed: no registration form, a sentence instead.
      mode = 'closed';
      await L.page.goto(`${base}/`);
      await tid(L.page, 'registration-closed').waitFor();
      assert((await tid(L.page, 'tab-register').count()) === 0 && (await tid(L.page, 'register-form').count()) === 0, 'no registration form when closed');
      await tid(L.page, 'login-form').waitFor();
      // Open: no invite field.
      mode = 'open';
      await L.page.goto(`${base}/`);
      await tid(L.page, 'tab-register').click();
      await L.page.locator('[data-testid=register-form][data-mode=open]').waitFor();
      assert((await tid(L.page, 'register-invite').count()) === 0, 'no invite field when open');
      await L.page.unroute('**/api/v1/auth/registration');
      // A failed single sign-on comes back as #oidc_error: plain words, and the fragment goes.
      for (const [code, words] of [['registration_closed', /new accounts cannot be created/], ['account_suspended', /suspended/], ['oidc_failed', /did not work/]]) {
        await L.page.goto('about:blank'); // the server's redirect is a page load, not a fragment change
        await L.page.goto(`${base}/#oidc_error=${code}`);
        const notice = await tid(L.page, 'auth-notice').textContent();
        assert(words.test(notice ?? ''), `${code}: "${notice}"`);
        assert(!(await L.page.evaluate(() => location.hash)), 'the fragment is removed');
      }
      // A spent or made-up code: said plainly, no session.
      await L.page.goto('about:blank');
      await L.page.goto(`${base}/#oidc_code=not-a-real-code`);
      assert(/did not finish in time/.test((await tid(L.page, 'auth-notice').textContent()) ?? ''), 'a refused code is explained');
      await tid(L.page, 'login-form').waitFor();
    } finally {
      await L.ctx.close();
    }
  }],
  ['single sign-on: "Sign in with Test IdP", sign in at the provider, land in the chat as that user; set a first password in Settings', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    if (!idp) return skip('CHATNODE_E2E_IDP is not set (scripts/e2e.sh starts the test OpenID provider and sets it)');
    const username = `zoe_${run}`;
    const Z = await newPage('Z');
    try {
      await fetch(`${idp}/__test/login-page`, { method: 'POST', body: JSON.stringify({ on: true }) });
      // The provider sends the browser back to the server's own address (its callback, which
      // sends it on to `/#oidc_code=…`). In proxy mode the page under test is this dist/ behind the
      // proxy, not the server's own web build: the test follows the same address there.
      let back = null;
      Z.page.on('response', (r) => {
        if (r.url().startsWith(`${backend}/api/v1/auth/oidc/test-idp/callback`) && r.status() === 302) back = r.headers().location;
      });
      await Z.page.goto(`${base}/`);
      const button = Z.page.getByRole('button', { name: 'Sign in with Test IdP' });
      await button.click();
      await Z.page.waitForURL((u) => u.origin === new URL(idp).origin);
      await Z.page.getByLabel('Username').fill(username);
      await Z.page.getByRole('button', { name: 'Sign in' }).click();
      const to = await until(() => back, 'the server’s callback sends the browser back with a one-time code');
      assert(/^\/#oidc_code=[\w-]+$/.test(to), `back to the page it started from, with the code in the fragment: ${to}`);
      if (!direct) await Z.page.goto(`${base}${to}`);
      await connected(Z.page);
      await tid(Z.page, 'conversation-list').waitFor();
      const url = new URL(Z.page.url());
      assert(url.origin === new URL(base).origin && !url.hash, `back on the app without the code in the address: ${Z.page.url()}`);
      await tid(Z.page, 'nav-settings').click();
      await Z.page.getByText(`@${username}`).first().waitFor();
      // An account made by single sign-on has no password: Settings offers to set one.
      await Z.page.locator('[data-testid=password-settings][data-first=true]').waitFor();
      assert((await tid(Z.page, 'current-password').count()) === 0, 'no current password asked');
      await tid(Z.page, 'new-password').fill('zoe has a password now');
      await tid(Z.page, 'repeat-password').fill('zoe has a password now');
      await tid(Z.page, 'password-save').click();
      await tid(Z.page, 'password-done').waitFor();
      const r = await fetch(`${backend}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: username, password: 'zoe has a password now' }) });
      assert(r.ok, `logs in with the new password: ${r.status}`);
      await shot(Z.page, '20-sso-settings');
    } finally {
      await fetch(`${idp}/__test/login-page`, { method: 'POST', body: JSON.stringify({ on: false }) }).catch(() => undefined);
      await Z.ctx.close();
    }
  }],
  ['admin: made on the command line; the admin page only for system admins ("not available" for others)', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    if (!cli) return skip('CHATNODE_BIN and CHATNODE_DATA_DIR are not set (scripts/e2e.sh sets them), so no system admin can be made');
    await tid(B.page, 'nav-chats').click();
    assert((await tid(B.page, 'nav-admin').count()) === 0, 'no admin link for a user');
    await B.page.goto(`${base}/admin`);
    await connected(B.page);
    await tid(B.page, 'admin-unavailable').waitFor();
    assert((await B.page.locator('h1').textContent())?.includes('Not available'), 'says not available');
    const out = await chatnodeCli(`admin grant ${names.a}`);
    assert(/system admin/.test(out), `admin grant: ${out}`);
    // Alice's other browser (a page load after the grant) has the link.
    AA = await newPage('AA');
    await login(AA, names.a);
    const P = AA.page;
    await tid(P, 'nav-admin').click();
    await P.locator('[data-testid=admin-view][data-tab=users]').waitFor();
    const row = P.locator(`[data-testid=admin-user][data-username=${names.a}]`);
    await row.waitFor();
    assert((await row.getAttribute('data-admin')) === 'true', 'Alice is listed as admin');
    // Search by username prefix; emails are shown to admins.
    await tid(P, 'admin-user-search').fill(names.c);
    await P.locator(`[data-testid=admin-user][data-username=${names.c}]`).filter({ hasText: `${names.c}@example.test` }).waitFor();
    await until(async () => (await P.locator('[data-testid=admin-user]').count()) === 1, 'search narrows the list');
    await shot(P, '21-admin-users');
    await B.page.goto(`${base}/`);
    await connected(B.page);
  }],
  ['admin: suspending a user logs their other browser out at once with the reason; lifting lets them back', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    if (!cli) return skip('CHATNODE_BIN and CHATNODE_DATA_DIR are not set: no system admin');
    const username = `dave_${run}`;
    const reg = await fetch(`${backend}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `${username}@example.test`, username, password: 'correct horse battery', display_name: 'Dave Doe' }) });
    assert(reg.status === 201, `register dave: ${reg.status}`);
    const D = await newPage('D');
    try {
      await login(D, username);
      await AA.page.goto(`${base}/admin`);
      await connected(AA.page);
      await tid(AA.page, 'admin-user-search').fill(username);
      const row = AA.page.locator(`[data-testid=admin-user][data-username=${username}]`);
      await until(async () => (await AA.page.locator('[data-testid=admin-user]').count()) === 1, 'the search found Dave');
      await row.getByTestId('suspend').click();
      await tid(AA.page, 'suspend-dialog').waitFor();
      await tid(AA.page, 'suspend-reason').fill('spamming links in groups');
      await tid(AA.page, 'suspend-hour').check();
      await tid(AA.page, 'suspend-confirm').click();
      await AA.page.locator(`[data-testid=admin-user][data-username=${username}][data-suspended=true]`).waitFor();
      assert(/Suspended until .*: spamming links in groups/.test((await row.getByTestId('suspension-state').textContent()) ?? ''), 'the row says until when and why');
      // Dave's browser: logged out at once, and told why and until when.
      await tid(D.page, 'login-form').waitFor({ timeout: 10_000 });
      const notice = (await tid(D.page, 'auth-notice').textContent()) ?? '';
      assert(/This account is suspended until .+\. Reason: spamming links in groups/.test(notice), `the reason is shown: "${notice}"`);
      assert((await D.page.evaluate(() => localStorage.getItem('chatnode.refresh_token'))) === null, 'the session is gone');
      await shot(D.page, '22-suspended');
      // Logging in again says the same.
      await tid(D.page, 'login-login').fill(username);
      await tid(D.page, 'login-password').fill('correct horse battery');
      await tid(D.page, 'login-submit').click();
      assert(/suspended until .+Reason: spamming links/.test((await tid(D.page, 'auth-error').textContent()) ?? ''), 'the login error says it too');
      // The admin lifts it: Dave can log in again.
      await row.getByTestId('unsuspend').click();
      await AA.page.locator(`[data-testid=admin-user][data-username=${username}][data-suspended=false]`).waitFor();
      await login(D, username);
      // The audit log reads as sentences.
      await tid(AA.page, 'admin-tab-audit').click();
      const lines = AA.page.getByTestId('audit-line');
      await lines.first().waitFor();
      const text = (await lines.allTextContents()).join('\n');
      assert(text.includes('You lifted the suspension of Dave Doe'), `audit: unsuspend in ${text}`);
      assert(/You suspended Dave Doe until .+ \(spamming links in groups\)/.test(text), `audit: suspend in ${text}`);
      assert(/The command line made you a system admin/.test(text), `audit: command line grant in ${text}`);
    } finally {
      await D.ctx.close();
    }
  }],
  ['reports: a message and a person reported; the admin sees the message among those around it, deletes it for everyone, resolves with a note', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    const group = `Board games ${run}`;
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, group);
    await tid(C.page, 'nav-chats').click();
    await openConv(C.page, group);
    await send(B.page, 'House rules: no phones at the table');
    await messageWith(C.page, 'House rules').waitFor();
    await send(C.page, 'Buy my miracle pills at spam.example');
    const bad = messageWith(B.page, 'miracle pills');
    await bad.waitFor();
    const badSeq = await bad.getAttribute('data-seq');
    await send(B.page, 'Please do not post that here');
    await messageWith(B.page, 'Please do not post that').waitFor();
    await bad.hover();
    await bad.getByTestId('message-actions').click();
    await tid(B.page, 'action-report').click();
    await tid(B.page, 'report-dialog').waitFor();
    assert((await tid(B.page, 'report-dialog').textContent())?.includes('miracle pills'), 'the dialog shows the message');
    await tid(B.page, 'report-reason-input').fill(`Spam for pills ${run}`);
    await tid(B.page, 'report-send').click();
    await B.page.getByTestId('toast').filter({ hasText: 'report was sent' }).waitFor();
    await tid(B.page, 'report-dialog').waitFor({ state: 'detached' });
    // Own messages have no Report action.
    const own = messageWith(B.page, 'Please do not post that');
    await own.hover();
    await own.getByTestId('message-actions').click();
    assert((await own.getByTestId('action-report').count()) === 0, 'no report for my own message');
    await B.page.keyboard.press('Escape');
    // A person, from the group's member list.
    await tid(B.page, 'group-info').click();
    await B.page.locator(`[data-testid=member][data-username=${names.c}] [data-testid=report-member]`).click();
    await tid(B.page, 'report-reason-input').fill(`Keeps advertising ${run}`);
    await tid(B.page, 'report-send').click();
    await tid(B.page, 'report-dialog').waitFor({ state: 'detached' });
    await tid(B.page, 'close-group-panel').click();
    if (!cli) return skip('reported; CHATNODE_BIN and CHATNODE_DATA_DIR are not set, so no admin can look at them');

    await AA.page.goto(`${base}/admin/reports`);
    await connected(AA.page);
    const report = AA.page.getByTestId('report').filter({ hasText: `Spam for pills ${run}` });
    await report.waitFor();
    const reported = report.getByTestId('reported-message');
    assert((await reported.textContent())?.includes('miracle pills'), 'the reported message is shown');
    const around = await report.getByTestId('context-message').allTextContents();
    assert(around.some((t) => t.includes('House rules')) && around.some((t) => t.includes('Please do not post that')), `messages around it: ${JSON.stringify(around)}`);
    assert((await reported.getAttribute('aria-current')) === 'true', 'the reported one is marked for screen readers');
    await shot(AA.page, '23-admin-reports');
    await report.getByTestId('report-delete-message').click();
    await AA.page.getByTestId('toast').filter({ hasText: 'Message deleted for everyone' }).waitFor();
    // Deleted for everyone, live in the conversation.
    await until(async () => ((await B.page.locator(`[data-testid=message][data-seq="${badSeq}"] [data-testid=message-body]`).textContent()) ?? '').includes('This message was deleted'), 'B sees it deleted');
    await until(async () => (await messageWith(C.page, 'miracle pills').count()) === 0, 'C sees it deleted');
    await report.getByTestId('report-note').fill(`Message removed, author warned ${run}`);
    await report.getByTestId('report-resolve').click();
    await report.waitFor({ state: 'detached' });
    const userReport = AA.page.getByTestId('report').filter({ hasText: `Keeps advertising ${run}` });
    await userReport.waitFor();
    assert((await userReport.getAttribute('data-kind')) === 'user', 'a report of a person');
    await tid(AA.page, 'reports-resolved').click();
    const done = AA.page.getByTestId('report').filter({ hasText: `Spam for pills ${run}` });
    await done.waitFor();
    const resolution = (await done.getByTestId('report-resolution').textContent()) ?? '';
    assert(resolution.includes(`: “Message removed, author warned ${run}”`) && /^\s*Resolved by you on /.test(resolution), `resolution: ${resolution}`);
    await tid(AA.page, 'admin-tab-audit').click();
    await AA.page.getByTestId('audit-line').filter({ hasText: `You resolved a report about Carol Cook: “Message removed, author warned ${run}”` }).waitFor();
    await AA.page.getByTestId('audit-line').filter({ hasText: 'You deleted a message by Carol Cook' }).first().waitFor();
  }],
  ['admin: statistics with the messages-per-hour chart (and its numbers); a registration invite made, shown once with its link, listed shortened, revoked', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    if (!cli) return skip('CHATNODE_BIN and CHATNODE_DATA_DIR are not set: no system admin');
    await AA.page.goto(`${base}/admin/stats`);
    await connected(AA.page);
    await tid(AA.page, 'stats').waitFor();
    const users = Number((await tid(AA.page, 'stat-users').textContent())?.replace(/\D/g, ''));
    assert(users >= 4, `people counted: ${users}`);
    const svg = tid(AA.page, 'hour-chart-svg');
    const label = (await svg.getAttribute('aria-label')) ?? '';
    assert((await svg.getAttribute('role')) === 'img' && /messages in the last 24 hours; the busiest hour was/.test(label), `chart named in words: ${label}`);
    const bars = await AA.page.locator('[data-testid=hour-chart-svg] rect.bar').evaluateAll((els) => els.map((e) => [Number(e.getAttribute('data-value')), e.getBoundingClientRect().height]));
    assert(bars.length === 24 && bars[23][0] > 0 && bars[23][1] > 0, `24 bars, the hour under way is drawn: ${JSON.stringify(bars.slice(-3))}`);
    const max = Math.max(...bars.map((b) => b[0]));
    const tallest = bars.find((b) => b[0] === max);
    assert(bars.every((b) => b[1] <= tallest[1] + 0.5), 'the busiest hour is the tallest bar');
    await AA.page.getByText('Show the numbers').click();
    assert((await AA.page.locator('[data-testid=hour-chart-table] tbody tr').count()) === 24, 'a table of the 24 hours');
    await shot(AA.page, '24-admin-stats');

    await tid(AA.page, 'admin-tab-invites').click();
    await tid(AA.page, 'invite-form').waitFor();
    await tid(AA.page, 'invite-uses').fill('3');
    await tid(AA.page, 'invite-expiry').selectOption('7d');
    await tid(AA.page, 'invite-create').click();
    await tid(AA.page, 'invite-made').waitFor();
    const code = await tid(AA.page, 'invite-code').inputValue();
    const link = await tid(AA.page, 'invite-link').inputValue();
    assert(/^[A-Za-z0-9_-]{16,}$/.test(code), `full code: ${code}`);
    assert(link === `${base}/register?code=${code}`, `ready link: ${link}`);
    await AA.ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await tid(AA.page, 'invite-link-copy').click();
    assert((await AA.page.evaluate(() => navigator.clipboard.readText())) === link, 'Copy puts the link on the clipboard');
    const listed = AA.page.getByTestId('invite').filter({ hasText: `${code.slice(0, 4)}…` });
    await listed.waitFor();
    assert(!((await tid(AA.page, 'invite-list').textContent()) ?? '').includes(code), 'the list never shows the full code');
    // The link opens the registration form with the code (the server here is open, so the form
    // is asked to be by invite).
    const R = await newPage('R');
    try {
      await R.page.route('**/api/v1/auth/registration', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: '{"mode":"invite"}' }));
      await R.page.goto(link);
      assert((await tid(R.page, 'register-invite').inputValue()) === code, 'the code is filled in');
    } finally {
      await R.ctx.close();
    }
    await listed.getByTestId('invite-revoke').click();
    await listed.waitFor({ state: 'detached' });
    await tid(AA.page, 'admin-tab-audit').click();
    await AA.page.getByTestId('audit-line').filter({ hasText: `You made the registration invite ${code.slice(0, 4)}… (3 uses, expires` }).waitFor();
    await AA.page.getByTestId('audit-line').filter({ hasText: `You revoked the registration invite ${code.slice(0, 4)}…` }).waitFor();
  }],
  ['bots: made in Settings (token shown once, with a warning and how to run the example), new token, deleted; a "bot" badge; anyone can message a bot', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    const username = `helper_${run}`;
    await tid(A.page, 'nav-settings').click();
    await tid(A.page, 'open-bots').click();
    await tid(A.page, 'bots-view').waitFor();
    await tid(A.page, 'bot-username').fill(username);
    await tid(A.page, 'bot-display-name').fill('Helper Bot');
    await tid(A.page, 'bot-create').click();
    await tid(A.page, 'bot-token-box').waitFor();
    const token = await tid(A.page, 'bot-token').inputValue();
    assert(/^cnb_/.test(token), `a bot token: ${token.slice(0, 6)}…`);
    assert(/shown only this once/.test((await tid(A.page, 'bot-token-warning').textContent()) ?? ''), 'warned that it is shown once');
    const hint = (await tid(A.page, 'bot-run-hint').textContent()) ?? '';
    assert(hint.includes(`CHATNODE_BOT_TOKEN=${token}`) && hint.includes('cargo run -p chatnode-client --example echo_bot') && hint.includes(`CHATNODE_URL=${base}`), `run hint: ${hint}`);
    const asBot = async (t) => (await fetch(`${backend}/api/v1/users/me`, { headers: { authorization: `Bearer ${t}` } })).status;
    assert((await asBot(token)) === 200, 'the token works');
    await shot(A.page, '25-bot-token');
    await tid(A.page, 'bot-token-done').click();
    await tid(A.page, 'bot-token-box').waitFor({ state: 'detached' });
    const row = A.page.locator(`[data-testid=bot][data-username=${username}]`);
    await row.getByTestId('bot-badge').waitFor();
    // Shown once: back on the page, the bot is listed, its token is not.
    await tid(A.page, 'nav-chats').click();
    await tid(A.page, 'nav-settings').click();
    await tid(A.page, 'open-bots').click();
    await row.waitFor();
    assert(!((await A.page.content()).includes(token)), 'the token is not shown again');
    // A new token: shown once; the old one stops at once.
    await row.getByTestId('bot-rotate').click();
    await tid(A.page, 'bot-token-box').waitFor();
    const fresh = await tid(A.page, 'bot-token').inputValue();
    assert(fresh !== token && /^cnb_/.test(fresh), 'a different token');
    assert((await asBot(token)) === 401 && (await asBot(fresh)) === 200, 'the old token is refused, the new one works');
    await tid(A.page, 'bot-token-done').click();

    // Bob (no friend of the bot) finds it in People and messages it.
    await tid(B.page, 'nav-people').click();
    await tid(B.page, 'user-search').fill(username);
    const result = B.page.locator(`[data-testid=search-result][data-username=${username}]`);
    await result.getByTestId('bot-badge').waitFor();
    assert((await result.getByTestId('add-friend').count()) === 0, 'no friend request to a bot');
    await result.getByTestId('message-bot').click();
    await inChat(B.page, 'Helper Bot');
    await tid(B.page, 'chat-bot-badge').waitFor();
    await send(B.page, 'Hello bot, what is the weather?');
    await messageWith(B.page, 'what is the weather').waitFor();
    const cid = await tid(B.page, 'chat-view').getAttribute('data-conversation-id');
    // The bot answers through the API with its token.
    const sent = await fetch(`${backend}/api/v1/conversations/${cid}/messages`, { method: 'POST', headers: { authorization: `Bearer ${fresh}`, 'content-type': 'application/json' }, body: JSON.stringify({ client_id: `bot-${run}`, body: 'Sunny, 21 degrees' }) });
    assert(sent.status === 201, `the bot posts: ${sent.status}`);
    const answer = messageWith(B.page, 'Sunny, 21 degrees');
    await answer.waitFor();
    await B.page.locator('[data-testid=sender-line]', { hasText: 'Helper Bot' }).getByTestId('bot-badge').waitFor();
    const name = (await axOf(B.page, answer)).name;
    assert(/^Helper Bot \(bot\), /.test(name), `screen readers hear it is a bot: "${name}"`);
    await convItem(B.page, 'Helper Bot').getByTestId('bot-badge').waitFor();
    // The chat's info panel: the bot's profile with its badge.
    await tid(B.page, 'chat-info').click();
    await tid(B.page, 'peer-bot-badge').waitFor();
    await tid(B.page, 'close-direct-panel').click();
    await shot(B.page, '26-bot-chat');

    // A group admin adds the bot to a group (no friendship needed).
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, `Board games ${run}`);
    await tid(B.page, 'group-info').click();
    await tid(B.page, 'add-members').click();
    await tid(B.page, 'bot-find').fill(username);
    await tid(B.page, 'bot-find').press('Enter');
    await tid(B.page, 'add-bot').click();
    await B.page.locator(`[data-testid=member][data-username=${username}]`).getByTestId('bot-badge').waitFor();
    await tid(B.page, 'close-group-panel').click();

    // Deleted: gone from the list, its token refused; it left the group.
    await row.getByTestId('bot-delete').click();
    await row.waitFor({ state: 'detached' });
    assert(dialogs.some((d) => d.label === 'A' && /Delete Helper Bot\?/.test(d.message)), 'asked to confirm');
    assert((await asBot(fresh)) === 401, 'the deleted bot’s token is refused');
    await until(async () => /^2 members/.test((await tid(B.page, 'chat-subtitle').textContent()) ?? ''), 'the deleted bot left the group');
  }],
  ['webhooks: made in the group info (URL shown once, with curl), a post from outside appears live under the webhook’s name with a badge; members see the list; deleted', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    const group = `Board games ${run}`;
    await tid(B.page, 'nav-chats').click();
    await openConv(B.page, group);
    await tid(B.page, 'group-info').click();
    await tid(B.page, 'webhooks').scrollIntoViewIfNeeded();
    await tid(B.page, 'webhook-name').fill('CI');
    await tid(B.page, 'webhook-create').click();
    await tid(B.page, 'webhook-made').waitFor();
    const url = await tid(B.page, 'webhook-url').inputValue();
    assert(/\/api\/v1\/hooks\/[^/]+\/[^/]+$/.test(url), `a webhook URL: ${url}`);
    const curl = await tid(B.page, 'webhook-curl').inputValue();
    assert(curl === `curl -X POST -H 'Content-Type: application/json' -d '{"text":"Hello"}' ${url}`, `curl example: ${curl}`);
    await B.page.locator('[data-testid=webhook][data-name=CI]').waitFor();
    await shot(B.page, '27-webhook');
    // Carol (a member) sees the list, but cannot make or delete one.
    await tid(C.page, 'nav-chats').click();
    await openConv(C.page, group);
    await tid(C.page, 'group-info').click();
    await C.page.locator('[data-testid=webhook][data-name=CI]').waitFor();
    assert((await tid(C.page, 'webhook-form').count()) === 0 && (await tid(C.page, 'webhook-delete').count()) === 0, 'a member cannot manage webhooks');
    await tid(C.page, 'close-group-panel').click();
    // A post from outside (here: Node's fetch), live in both browsers.
    const post = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Build #42 passed ✅' }) });
    assert(post.ok, `posted: ${post.status}`);
    const seen = messageWith(C.page, 'Build #42 passed');
    await seen.waitFor();
    const line = C.page.locator('[data-testid=sender-line]', { hasText: 'CI' });
    await line.getByTestId('webhook-badge').waitFor();
    const name = (await axOf(C.page, seen)).name;
    assert(/^CI \(webhook\), /.test(name), `named after the webhook: "${name}"`);
    // For the person who made it, it is not their own message either.
    const forB = messageWith(B.page, 'Build #42 passed');
    await forB.waitFor();
    assert((await forB.getAttribute('data-mine')) === 'false', 'not shown as Bob’s own message');
    await until(async () => ((await convItem(C.page, group).getByTestId('conversation-preview').textContent()) ?? '').startsWith('CI: Build #42'), 'list preview names the webhook');
    // A post with its own name.
    await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Deployed to production', username: 'Deploy bot' }) });
    await C.page.locator('[data-testid=sender-line]', { hasText: 'Deploy bot' }).getByTestId('webhook-badge').waitFor();
    // Deleted: the URL stops working.
    await tid(B.page, 'webhook-done').click();
    await B.page.locator('[data-testid=webhook][data-name=CI] [data-testid=webhook-delete]').click();
    await B.page.locator('[data-testid=webhook][data-name=CI]').waitFor({ state: 'detached' });
    const after = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'too late' }) });
    assert(after.status === 404, `a deleted webhook answers 404, got ${after.status}`);
    await tid(B.page, 'close-group-panel').click();
  }],
  ['service notifications: a service token from the command line; POST /notify raises the bell live; the list opens the item in the app or in a new tab; the service worker shows the push', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    if (!cli) return skip('CHATNODE_BIN and CHATNODE_DATA_DIR are not set: no service token can be made');
    const token = (await chatnodeCli(`service-token create e2e-${run}`)).trim();
    assert(/^\S+$/.test(token), `a token alone on stdout: ${token.slice(0, 6)}…`);
    const me = await apiGet(await apiToken(names.a), '/users/me');
    const notify = (b) => fetch(`${backend}/api/v1/notify`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ user_id: me.id, ...b }) });
    await tid(A.page, 'nav-chats').click();
    await A.page.evaluate(() => (window.__noReload = true));
    const bell = tid(A.page, 'bell');
    const before = Number(await bell.getAttribute('data-unread'));
    let r = await notify({ title: 'Invoice ready', body: 'Your invoice for December is ready.', url: 'https://billing.example.com/inv/12' });
    assert(r.status === 202, `notify: ${r.status}`);
    await A.page.locator(`[data-testid=bell][data-unread="${before + 1}"]`).waitFor();
    r = await notify({ title: 'Profile check', body: 'Please review your settings.', url: '/settings' });
    await A.page.locator(`[data-testid=bell][data-unread="${before + 2}"]`).waitFor();
    assert((await tid(A.page, 'bell-count').textContent()) === String(before + 2), 'the badge shows the count');
    assert((await bell.getAttribute('aria-label')) === `Notifications, ${before + 2} unread`, 'the count is in the bell’s name');
    await A.page.getByTestId('toast').filter({ hasText: 'Profile check' }).waitFor();
    await bell.click();
    const items = A.page.getByTestId('notification-item');
    await items.first().waitFor();
    assert(((await items.nth(0).textContent()) ?? '').includes('Profile check') && ((await items.nth(1).textContent()) ?? '').includes('Invoice ready'), 'newest first');
    assert((await items.nth(0).getAttribute('data-new')) === 'true', 'unread ones marked while the list is open');
    await A.page.locator('[data-testid=bell][data-unread="0"]').waitFor();
    const ext = items.nth(1).getByTestId('notification-link');
    assert((await ext.getAttribute('href')) === 'https://billing.example.com/inv/12' && (await ext.getAttribute('target')) === '_blank' && /noopener/.test((await ext.getAttribute('rel')) ?? ''), 'an https link opens in a new tab, noopener');
    await shot(A.page, '28-notifications');
    await items.nth(0).getByTestId('notification-link').click();
    await tid(A.page, 'settings-view').waitFor();
    assert(await A.page.evaluate(() => window.__noReload === true), 'opened in the app, without a reload');
    assert((await tid(A.page, 'notification-panel').count()) === 0, 'the list closed');
    // Read on the server too: Alice's other browser, loaded now, shows none unread.
    await AA.page.reload();
    await connected(AA.page);
    await AA.page.locator('[data-testid=bell][data-unread="0"]').waitFor();
    const list = await apiGet(await apiToken(names.a), '/notifications');
    assert(list.unread_count === 0 && list.notifications[0].title === 'Profile check', `server: ${JSON.stringify(list).slice(0, 200)}`);
    // A Web Push of a notification (when no device is connected) goes through the worker.
    if (await hasPushFeature()) {
      const p = await testPush(A.page, { type: 'notification', id: 'n-e2e', title: 'Build failed', body: 'main is red', url: '/settings' });
      const n = p.open.find((x) => x.tag === 'notification-n-e2e');
      assert(n && n.title === 'Build failed' && n.body === 'main is red' && n.data?.url === '/settings', `push shown: ${JSON.stringify(p.open)}`);
      await A.page.evaluate(async () => (await navigator.serviceWorker.ready).getNotifications().then((l) => l.forEach((x) => x.close())));
    }
  }],
  ['settings: uploads against the quotas', async () => {
    if (!(await hasIntegrationsWeb())) return SKIP;
    await tid(A.page, 'nav-settings').click();
    const today = (await tid(A.page, 'usage-today').textContent()) ?? '';
    const total = (await tid(A.page, 'usage-total').textContent()) ?? '';
    assert(/^\d[\d.]* (B|KB|MB) of 1 GB \(\d+%\)$/.test(today), `today: ${today}`);
    assert(/^\d[\d.]* (B|KB|MB) of 10 GB \(\d+%\)$/.test(total) && !/^0 B/.test(total), `total (Alice sent photos): ${total}`);
  }],
  ['accessibility: axe finds no serious or critical problem on any view, light and dark', async () => {
    if (!(await hasNewWeb())) return SKIP;
    const axeSource = fs.readFileSync(path.resolve(here, '../node_modules/axe-core/axe.min.js'), 'utf8');
    const report = [];
    const audit = async (page, view) => {
      for (const scheme of ['light', 'dark']) {
        // Reduced motion turns transitions off, so the new scheme's colours are there once two
        // frames have been drawn (a fixed wait raced a 150-ms background transition once).
        await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
        await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
        await page.waitForTimeout(50);
        // Evaluated over the DevTools protocol, so the page's CSP (no inline script) stays on.
        if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
        const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
        const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
        const minor = r.violations.filter((v) => !bad.includes(v));
        report.push({ view, scheme, bad, minor: minor.map((v) => `${v.id} (${v.impact})`) });
      }
      await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'no-preference' });
    };
    const P = A.page;
    // Logged out: the login and registration forms.
    const L = await newPage('L');
    try {
      await L.page.goto(`${base}/`);
      await tid(L.page, 'login-form').waitFor();
      await audit(L.page, 'login');
      await tid(L.page, 'tab-register').click();
      await audit(L.page, 'register');
    } finally {
      await L.ctx.close();
    }
    await tid(P, 'nav-chats').click();
    await tid(P, 'conversation-list').waitFor();
    await audit(P, 'home');
    await openConv(P, 'Bob Builder');
    await messageWith(P, 'Back online').waitFor();
    await audit(P, 'direct chat');
    const withReactions = messageWith(P, 'Café crème');
    await withReactions.scrollIntoViewIfNeeded();
    await withReactions.hover();
    await withReactions.getByTestId('react-button').click();
    await tid(P, 'reaction-picker').locator('[data-testid=quick-reaction][data-emoji="😮"]').click();
    await withReactions.getByTestId('reaction-chip').first().waitFor();
    await withReactions.getByTestId('react-button').click();
    await tid(P, 'reaction-picker').getByTestId('more-reactions').click();
    await audit(P, 'reaction picker');
    await P.keyboard.press('Escape');
    await tid(P, 'emoji-button').click();
    await audit(P, 'emoji picker');
    await tid(P, 'emoji-button').click();
    await tid(P, 'chat-search-button').click();
    await tid(P, 'chat-search-input').fill('bulk');
    await P.getByTestId('message-result').first().waitFor();
    await audit(P, 'search in a chat');
    await tid(P, 'chat-search-close').click();
    await tid(P, 'conv-filter').fill('cafe');
    await P.getByTestId('message-result').first().waitFor();
    await audit(P, 'search over all chats');
    await tid(P, 'conv-filter').fill('');
    await tid(P, 'mute-button').click();
    await audit(P, 'mute menu');
    await tid(P, 'mute-button').click();
    // The photo is older than the newest page: open it through search.
    await tid(P, 'conv-filter').fill('sunset lake');
    await P.getByTestId('message-result').first().click();
    await tid(P, 'conv-filter').fill('');
    const photo = messageWith(P, 'Sunset at the lake');
    await photo.waitFor();
    await photo.getByTestId('attachment-image').first().click();
    await tid(P, 'media-viewer').waitFor();
    await audit(P, 'media viewer');
    await P.keyboard.press('Escape');
    // A group (Carol's, Alice left it): members, @ picker, the panel.
    const Q = C.page;
    await tid(Q, 'nav-chats').click();
    await openConv(Q, `Hiking club ${run}`);
    await tid(Q, 'composer').fill('');
    await tid(Q, 'composer').pressSequentially('@');
    await tid(Q, 'mention-picker').waitFor();
    await audit(Q, 'mention picker');
    await tid(Q, 'composer').fill('');
    await tid(Q, 'group-info').click();
    await tid(Q, 'group-panel').waitFor();
    await audit(Q, 'group panel');
    await tid(Q, 'close-group-panel').click();
    await tid(P, 'new-group').click();
    await audit(P, 'new group dialog');
    await P.keyboard.press('Escape');
    for (const [nav, view] of [['nav-people', 'people'], ['nav-groups', 'discover'], ['nav-settings', 'settings']]) {
      await tid(P, nav).click();
      await P.waitForTimeout(300);
      await audit(P, view);
    }
    // Bots (with a token shown), the notification list, a direct chat's info with its webhooks,
    // the report dialog, and (Alice is a system admin when the command line was available) the
    // admin page's tabs and the suspend dialog.
    if (await hasIntegrationsWeb()) {
      await tid(P, 'open-bots').click();
      await tid(P, 'bot-username').fill(`axe_${run}`);
      await tid(P, 'bot-create').click();
      await tid(P, 'bot-token-box').waitFor();
      await audit(P, 'bots');
      await P.locator(`[data-testid=bot][data-username=axe_${run}] [data-testid=bot-delete]`).click();
      await P.locator(`[data-testid=bot][data-username=axe_${run}]`).waitFor({ state: 'detached' });
      await tid(P, 'bell').click();
      await tid(P, 'notification-panel').waitFor();
      await audit(P, 'notifications');
      await P.keyboard.press('Escape');
      await tid(P, 'notification-panel').waitFor({ state: 'detached' });
      await tid(P, 'nav-chats').click();
      await openConv(P, 'Bob Builder');
      await tid(P, 'chat-info').click();
      await tid(P, 'direct-panel').locator('[data-testid=webhook-form]').waitFor();
      await audit(P, 'chat info with webhooks');
      await tid(P, 'close-direct-panel').click();
      const theirs = P.locator('[data-testid=message][data-mine=false]').last();
      await theirs.scrollIntoViewIfNeeded();
      await theirs.hover();
      await theirs.getByTestId('message-actions').click();
      await theirs.getByTestId('action-report').click();
      await tid(P, 'report-dialog').waitFor();
      await audit(P, 'report dialog');
      await P.keyboard.press('Escape');
      await tid(P, 'report-dialog').waitFor({ state: 'detached' });
      if (AA) {
        const X = AA.page;
        await tid(X, 'nav-admin').click();
        await X.locator('[data-testid=admin-user]').first().waitFor();
        await audit(X, 'admin: users');
        await X.locator(`[data-testid=admin-user][data-username=${names.b}] [data-testid=suspend]`).click();
        await tid(X, 'suspend-dialog').waitFor();
        await audit(X, 'admin: suspend dialog');
        await X.keyboard.press('Escape');
        await tid(X, 'suspend-dialog').waitFor({ state: 'detached' });
        await tid(X, 'admin-tab-reports').click();
        await tid(X, 'reports-resolved').click();
        await X.getByTestId('report').first().waitFor();
        await audit(X, 'admin: reports');
        await tid(X, 'admin-tab-audit').click();
        await X.getByTestId('audit-entry').first().waitFor();
        await audit(X, 'admin: audit log');
        await tid(X, 'admin-tab-stats').click();
        await tid(X, 'hour-chart').waitFor();
        await X.getByText('Show the numbers').click();
        await audit(X, 'admin: statistics');
        await tid(X, 'admin-tab-invites').click();
        await tid(X, 'invite-list').waitFor();
        await audit(X, 'admin: invites');
      }
      await tid(P, 'nav-chats').click();
    }
    await tid(P, 'nav-chats').click();
    const M = await newPage('M', { width: 375, height: 740 });
    try {
      await login(M, names.a);
      await audit(M.page, 'phone: list');
      await openConv(M.page, 'Bob Builder');
      await audit(M.page, 'phone: chat');
    } finally {
      await M.ctx.close();
    }
    const minor = [...new Set(report.flatMap((r) => r.minor))];
    console.log(`      axe: ${report.length} runs (${[...new Set(report.map((r) => r.view))].length} views × light/dark); moderate/minor: ${minor.length ? minor.join(', ') : 'none'}`);
    const bad = report.filter((r) => r.bad.length);
    assert(
      bad.length === 0,
      bad.map((r) => `${r.view} (${r.scheme}): ${r.bad.map((v) => `${v.id} [${v.impact}] ${v.help}: ${v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')} — ${n.failureSummary?.split('\n').slice(1, 2).join(' ')}`).join('; ')}`).join(' | ')}`).join('\n'),
    );
  }],
  ['profile edit and logout', async () => {
    await tid(B.page, 'nav-settings').click();
    await tid(B.page, 'profile-bio').fill('I build things.');
    await tid(B.page, 'profile-save').click();
    await B.page.getByTestId('toast').filter({ hasText: 'Profile saved' }).waitFor();
    await shot(B.page, '09-toast');
    const spent = await B.page.evaluate(() => localStorage.getItem('chatnode.refresh_token'));
    await tid(B.page, 'logout').click();
    await tid(B.page, 'login-form').waitFor();
    assert((await B.page.evaluate(() => localStorage.getItem('chatnode.refresh_token'))) === null, 'refresh token removed');
    const r = await fetch(`${base}/api/v1/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: spent }) });
    assert(r.status === 401, `logged-out refresh token is revoked (got ${r.status})`);
    await B.page.reload();
    await tid(B.page, 'login-form').waitFor();
  }],
  ['no CSP violations or page errors in the console', async () => {
    const bad = consoleProblems.filter((t) => /Content.Security.Policy|Refused to|pageerror/i.test(t));
    assert(bad.length === 0, `console problems:\n  ${bad.join('\n  ')}`);
  }],
];

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const [name, fn] of tests) {
  if (only && !only.some((o) => name.includes(o))) continue;
  const t0 = Date.now();
  try {
    const r = await fn();
    if (r === SKIP || r?.skip) {
      skipped++;
      console.log(`  - ${name} (skipped: ${r?.skip ?? "the page under test is an older web build without this feature; direct mode serves the binary's embedded build"})`);
      continue;
    }
    passed++;
    console.log(`  ✓ ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    failures.push(name);
    console.log(`  ✗ ${name} (${Date.now() - t0} ms)\n      ${String(e?.message ?? e).split('\n').join('\n      ')}`);
    for (const p of [A, B, C]) if (p) await shot(p.page, `fail-${p.label}-${name.replace(/\W+/g, '-').slice(0, 40)}`).catch(() => undefined);
  }
}
// Lighthouse (its own Node 22 package, see tools/lighthouse): scores for the chat view, written
// into README.md. CHATNODE_E2E_LIGHTHOUSE=0 leaves it out (or CHATNODE_E2E_ONLY without "lighthouse").
// Accessibility and best practices are audits of the page and must be 100. Performance (the
// target is 95) is a timing: printed here, asserted only if LIGHTHOUSE_MIN_PERFORMANCE is set,
// since simulated throttling scales what the machine measured (a slower or busier machine
// scored 84 with the same build that scored 91 elsewhere). It is measured, not tested.
const lhMin = process.env.LIGHTHOUSE_MIN_PERFORMANCE ?? '0';
const lhName = `lighthouse: accessibility 100, best practices 100${lhMin !== '0' ? `, mobile performance at least ${lhMin}` : ', mobile performance printed'} (target 95)`;
if (!mock && process.env.CHATNODE_E2E_LIGHTHOUSE !== '0' && (!only || only.some((o) => lhName.includes(o)))) {
  const t0 = Date.now();
  await browser.close();
  const ok = await new Promise((resolve) => {
    const child = exec('npm run --silent lighthouse', { cwd: path.resolve(here, '..'), env: { ...process.env, CHATNODE_URL: backend, LIGHTHOUSE_MIN_PERFORMANCE: lhMin }, timeout: 300_000 }, (err) => resolve(!err));
    child.stdout.on('data', (d) => process.stdout.write(String(d).replace(/^/gm, '      ')));
    child.stderr.on('data', (d) => process.stdout.write(String(d).replace(/^/gm, '      ')));
  });
  if (ok) passed++;
  else {
    failed++;
    failures.push(lhName);
  }
  console.log(`  ${ok ? '✓' : '✗'} ${lhName} (${Date.now() - t0} ms)`);
}

const other = consoleProblems.filter((t) => !/Content.Security.Policy|Refused to|pageerror/i.test(t));
if (other.length) console.log(`  console errors (informational, ${other.length}):\n    ${[...new Set(other)].slice(0, 15).join('\n    ')}`);

await browser.close().catch(() => undefined);
await serve?.close();
await mock?.close();
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
