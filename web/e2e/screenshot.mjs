// Takes the documentation screenshot of the chat view (docs/screenshots/chat.png, 1280x800):
// three made-up users and a short, realistic conversation, written over REST, then shown in
// headless Chromium as one of them.
//   CHATNODE_URL          backend base URL (default http://127.0.0.1:8080); use a fresh data dir
//   CHATNODE_E2E_DIRECT=1 load the page from CHATNODE_URL itself instead of ./dist via the proxy
//   SCREENSHOT_OUT        output file (default ../docs/screenshots/chat.png)
//   CHROMIUM_PATH         browser binary (default /usr/bin/chromium)
// No emoji in the text: Debian's Chromium has no colour emoji font unless
// fonts-noto-color-emoji is installed, and they would render as empty boxes.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServe } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.env.SCREENSHOT_OUT ?? path.join(here, '../../docs/screenshots/chat.png'));
const backend = process.env.CHATNODE_URL ?? 'http://127.0.0.1:8080';
const direct = process.env.CHATNODE_E2E_DIRECT === '1';
const api = `${backend}/api/v1`;
const tag = Math.random().toString(36).slice(2, 6);
const password = 'correct horse battery';

async function call(method, p, token, body) {
  for (;;) {
    const r = await fetch(api + p, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 429) {
      await new Promise((res) => setTimeout(res, 1000 * Number(r.headers.get('retry-after') ?? 1)));
      continue;
    }
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p} → ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}
const register = (username, display_name) =>
  call('POST', '/auth/register', null, { email: `${username}@example.test`, username, password, display_name });
async function befriend(a, b) {
  const r = await call('POST', '/friends/requests', a.access_token, { user_id: b.user.id });
  if (r.id) await call('POST', `/friends/requests/${r.id}/accept`, b.access_token);
}
const say = (who, conv, body, reply_to_seq) =>
  call('POST', `/conversations/${conv.id}/messages`, who.access_token, { client_id: crypto.randomUUID(), body, ...(reply_to_seq ? { reply_to_seq } : {}) });
const read = (who, conv, seq) => call('POST', `/conversations/${conv.id}/read`, who.access_token, { seq });
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

const maya = await register(`maya_${tag}`, 'Maya Chen');
const leo = await register(`leo_${tag}`, 'Leo Martins');
const sam = await register(`sam_${tag}`, 'Sam Okafor');
await befriend(maya, leo);
await befriend(maya, sam);
await befriend(leo, sam);

// Other conversations, so the list is not empty (older activity first).
const crew = await call('POST', '/groups', maya.access_token, { name: 'Climbing crew', description: 'Tuesday and Thursday evenings', member_ids: [leo.user.id, sam.user.id] });
await say(sam, crew, 'Gym at 7 tonight? I can bring the spare rope.');
const samDm = await call('POST', '/conversations/direct', maya.access_token, { user_id: sam.user.id });
await say(sam, samDm, 'Thanks for the book, I finished it in two days!');
const m0 = await say(maya, samDm, 'Told you it was good. The sequel is even better.');
await read(sam, samDm, m0.seq);

// The conversation on screen.
const dm = await call('POST', '/conversations/direct', maya.access_token, { user_id: leo.user.id });
const lines = [
  [leo, 'Hey Maya, are we still on for the trip planning call tomorrow?'],
  [maya, "Yes! 10:00 works for me. I'll bring the route notes."],
  [leo, 'Perfect. I found a campsite right by the lake, with room for four tents.'],
  [leo, 'Here it is: https://example.com/lakeside-camp'],
  [maya, "That looks lovely, and it's only two hours from the city.", 'reply:campsite'],
  [maya, 'Should we book Friday and Saturday night?'],
  [leo, "Let's do it. I'll book tonight and send you the confirmation."],
  [leo, 'Can you check if Priya wants to come too?'],
  [maya, 'Just asked her, she is in. That makes four of us.'],
  [maya, "Great, thank you! I'll sort out the food."],
];
const seqs = {};
let last = null;
for (const [who, body, reply] of lines) {
  const replyTo = reply === 'reply:campsite' ? seqs.campsite : undefined;
  last = await say(who, dm, body, replyTo);
  if (body.includes('campsite right by the lake')) seqs.campsite = last.seq;
  if (who === leo) seqs.leoLast = last.seq;
  await pause(30);
}
await read(leo, dm, last.seq - 1); // Leo has read all but Maya's last message
await read(maya, dm, seqs.leoLast);

let serve = null;
let base = backend;
if (!direct) {
  serve = await startServe({ distDir: path.resolve(here, '../dist'), backend });
  base = serve.url;
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
try {
  // Leo online, so Maya's header says so.
  const leoCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const leoPage = await leoCtx.newPage();
  await leoPage.goto(`${base}/`);
  await leoPage.getByTestId('login-login').fill(leo.user.username);
  await leoPage.getByTestId('login-password').fill(password);
  await leoPage.getByTestId('login-submit').click();
  await leoPage.locator('[data-testid=conn-state][data-state=connected]').waitFor({ timeout: 20_000 });

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${base}/`);
  await page.getByTestId('login-login').fill(maya.user.username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.locator('[data-testid=conn-state][data-state=connected]').waitFor({ timeout: 20_000 });
  await page.locator('[data-testid=conversation-item]', { hasText: 'Leo Martins' }).click();
  await page.locator('[data-testid=message]', { hasText: 'sort out the food' }).waitFor();
  await page.locator('[data-testid=msg-status][data-status=read]').first().waitFor();
  await page.getByTestId('chat-subtitle').filter({ hasText: /online/i }).waitFor();
  await page.getByTestId('reply-quote').waitFor();
  // No hover menus, no focus ring, no toasts.
  await page.mouse.move(640, 760);
  await page.getByTestId('composer').evaluate((el) => el.blur());
  await page.getByTestId('toast').waitFor({ state: 'detached' }).catch(() => undefined);
  await page.waitForTimeout(300);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  await page.screenshot({ path: out });
  console.log(`saved ${out}`);
} finally {
  await browser.close();
  await serve?.close();
}
