// Smoke test for both comparison peers. Starts each server as a child process
// on port 0, seeds 3 users + a direct chat [0,1] + a group [0,1,2], and checks
// the wire protocol the benchmark relies on. Exit 0 only if everything passes.
//
//   node smoke.mjs                 # full run (waits ~25 s for an Engine.IO ping)
//   SMOKE_SKIP_PING=1 node smoke.mjs   # skip the Engine.IO ping/pong wait

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { io as ioClient } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
const SKIP_PING = process.env.SMOKE_SKIP_PING === '1';
const QUIET_MS = 300; // how long we wait to be sure no extra frame arrives

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`  PASS ${name}`);
  } else {
    failed++;
    console.log(`  FAIL ${name}${detail === undefined ? '' : ` -- ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
}

// ---------------------------------------------------------------- process

async function startServer(rel) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-smoke-'));
  const child = spawn(process.execPath, [path.join(here, rel)], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${rel}: no "listening on" line within 10 s`)), 10_000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /^listening on (\d+)\n/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`${rel} exited early with ${code}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    port,
    dataDir,
    async stop() {
      child.kill('SIGTERM');
      const r = await Promise.race([exited, sleep(5000).then(() => null)]);
      if (!r) child.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
      return r;
    },
  };
}

async function seed(port) {
  const res = await fetch(`http://127.0.0.1:${port}/bench/seed`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ users: 3, conversations: [[0, 1], [0, 1, 2]] }),
  });
  if (!res.ok) throw new Error(`seed failed: ${res.status} ${await res.text()}`);
  return res.json();
}

// ---------------------------------------------------------------- inboxes

/** Collects incoming items; `next(pred)` resolves with the first matching one. */
class Inbox {
  constructor() {
    this.items = [];
    this.taken = new Set(); // items already handed out by next()
    this.waiters = [];
  }
  push(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) {
      if (w.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(item);
        break;
      }
    }
  }
  next(pred, ms = 3000, what = 'frame') {
    const hit = this.items.find((i) => !this.taken.has(i) && pred(i));
    if (hit) {
      this.taken.add(hit);
      return Promise.resolve(hit);
    }
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (i) => {
          this.taken.add(i);
          resolve(i);
        },
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`timeout waiting for ${what}`));
        }, ms),
      };
      this.waiters.push(w);
    });
  }
  count(pred) {
    return this.items.filter(pred).length;
  }
}

// ---------------------------------------------------------------- ws-express

function wsConnect(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws`);
    const inbox = new Inbox();
    ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
    ws.on('open', () => resolve({ ws, inbox, send: (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o)) }));
    ws.on('error', reject);
  });
}

async function wsAuthed(port, user) {
  const c = await wsConnect(port);
  c.send({ type: 'auth', token: user.token });
  c.ready = await c.inbox.next((f) => f.type === 'ready', 3000, 'ready');
  return c;
}

function checkMessage(name, m, { conv, sender, clientId, body }) {
  const ok =
    m &&
    m.conversation_id === conv &&
    m.sender_id === sender &&
    m.client_id === clientId &&
    m.body === body &&
    m.kind === 'text' &&
    typeof m.seq === 'number' &&
    m.id === String(m.seq) &&
    typeof m.created_at === 'string' &&
    !Number.isNaN(Date.parse(m.created_at)) &&
    new Date(m.created_at).toISOString() === m.created_at;
  check(name, ok, m);
}

async function testWsExpress() {
  console.log('== ws-express peer');
  const srv = await startServer('ws-express/server.js');
  try {
    const health = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
    check('GET /healthz -> 200 ok', health.status === 200 && (await health.text()) === 'ok');
    const s = await seed(srv.port);
    check('seed returns 3 users with tokens + 2 conversations in order',
      s.users.length === 3 && s.users.every((u) => u.id && u.token) &&
      s.conversations.length === 2 && JSON.stringify(s.conversations.map((c) => c.members)) === '[[0,1],[0,1,2]]');
    const [u0, u1, u2] = s.users;
    const [direct, group] = s.conversations;

    const a = await wsAuthed(srv.port, u0); // sender socket
    const a2 = await wsAuthed(srv.port, u0); // sender's other socket
    const b = await wsAuthed(srv.port, u1);
    const c = await wsAuthed(srv.port, u2);
    check('ready frame: user {id, username} and stream_pos 0',
      a.ready.user.id === u0.id && a.ready.user.username === 'u0' && a.ready.stream_pos === 0 &&
      Object.keys(a.ready).join() === 'type,user,stream_pos', a.ready);

    a.send({ type: 'ping' });
    check('ping -> pong', (await a.inbox.next((f) => f.type === 'pong')).type === 'pong');

    // Direct message.
    const body1 = `hello direct ✓ "quoted" \\ ${process.hrtime.bigint()}`;
    a.send({ type: 'send', conversation_id: direct.id, client_id: 'k-direct', body: body1 });
    const ack1 = await a.inbox.next((f) => f.type === 'ack', 3000, 'ack');
    check('direct: ack to sender with client_id', ack1.client_id === 'k-direct', ack1);
    checkMessage('direct: ack.message has the M shape, body echoed', ack1.message,
      { conv: direct.id, sender: u0.id, clientId: 'k-direct', body: body1 });
    const m1b = await b.inbox.next((f) => f.type === 'message' && f.message.client_id === 'k-direct', 3000, 'message');
    check('direct: recipient gets {type:message, message: M} equal to ack.message',
      JSON.stringify(m1b.message) === JSON.stringify(ack1.message), m1b);

    // Group message.
    const body2 = `hello group ${Date.now()}`;
    a.send({ type: 'send', conversation_id: group.id, client_id: 'k-group', body: body2 });
    const ack2 = await a.inbox.next((f) => f.type === 'ack', 3000, 'ack');
    checkMessage('group: ack with body echoed', ack2.message,
      { conv: group.id, sender: u0.id, clientId: 'k-group', body: body2 });
    check('group: seq increases', ack2.message.seq > ack1.message.seq);

    // Non-member send: u2 is not in the direct chat.
    c.send({ type: 'send', conversation_id: direct.id, client_id: 'k-forbidden', body: 'nope' });
    const err = await c.inbox.next((f) => f.type === 'error', 3000, 'error');
    check('non-member send -> error forbidden "not a member"',
      JSON.stringify(err) === JSON.stringify({ type: 'error', client_id: 'k-forbidden', code: 'forbidden', message: 'not a member' }), err);

    // Garbage after auth -> bad_request, connection stays up.
    b.send('this is not json');
    const bad = await b.inbox.next((f) => f.type === 'error', 3000, 'error');
    check('unparseable frame -> error bad_request', bad.code === 'bad_request', bad);
    b.send({ type: 'ping' });
    check('connection survives a bad frame', (await b.inbox.next((f) => f.type === 'pong')).type === 'pong');

    await sleep(QUIET_MS);
    const n = (cl, k) => cl.inbox.count((f) => f.type === 'message' && f.message.client_id === k);
    check('direct: u1 got it exactly once', n(b, 'k-direct') === 1);
    check("direct: sender's other socket got it exactly once", n(a2, 'k-direct') === 1);
    check('direct: sending socket got no message frame (only the ack)', n(a, 'k-direct') === 0);
    check('direct: non-member u2 got nothing', n(c, 'k-direct') === 0);
    check('group: u1 got it exactly once', n(b, 'k-group') === 1);
    check('group: u2 got it exactly once', n(c, 'k-group') === 1);
    check("group: sender's other socket got it exactly once", n(a2, 'k-group') === 1);
    check('group: sending socket got no message frame', n(a, 'k-group') === 0);
    check('forbidden send delivered nowhere', [a, a2, b, c].every((x) => n(x, 'k-forbidden') === 0));
    check('exactly one ack per send', a.inbox.count((f) => f.type === 'ack') === 2);

    // Bad token -> close 4001.
    const d = await wsConnect(srv.port);
    d.send({ type: 'auth', token: 'not.a.jwt' });
    const closed = await Promise.race([d.ws.closed, sleep(3000).then(() => ({ code: 'timeout' }))]);
    check('bad token -> close 4001', closed.code === 4001, closed);
    // Non-auth first frame -> close 4001.
    const e = await wsConnect(srv.port);
    e.send({ type: 'ping' });
    const closed2 = await Promise.race([e.ws.closed, sleep(3000).then(() => ({ code: 'timeout' }))]);
    check('non-auth first frame -> close 4001', closed2.code === 4001, closed2);

    for (const x of [a, a2, b, c]) x.ws.close();
  } finally {
    const r = await srv.stop();
    check('exits cleanly on SIGTERM', r && r.code === 0, r);
  }
}

// ---------------------------------------------------------------- socket.io (client library)

function sioConnect(port, token) {
  const socket = ioClient(`http://127.0.0.1:${port}`, {
    path: '/socket.io/',
    transports: ['websocket'],
    auth: { token },
    reconnection: false,
    forceNew: true,
  });
  const inbox = new Inbox();
  for (const ev of ['ready', 'ack', 'message', 'error_frame']) socket.on(ev, (data) => inbox.push({ ev, data }));
  socket.on('connect_error', (err) => inbox.push({ ev: 'connect_error', data: { message: err.message } }));
  return { socket, inbox };
}

async function sioAuthed(port, user) {
  const c = sioConnect(port, user.token);
  c.ready = (await c.inbox.next((f) => f.ev === 'ready', 3000, 'ready')).data;
  return c;
}

async function testSocketIo() {
  console.log('== socket.io peer (socket.io-client, websocket transport only)');
  const srv = await startServer('socketio/server.js');
  try {
    const health = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
    check('GET /healthz -> 200 ok', health.status === 200 && (await health.text()) === 'ok');
    const s = await seed(srv.port);
    check('seed returns 3 users + 2 conversations', s.users.length === 3 && s.conversations.length === 2);
    const [u0, u1, u2] = s.users;
    const [direct, group] = s.conversations;

    const a = await sioAuthed(srv.port, u0);
    const a2 = await sioAuthed(srv.port, u0);
    const b = await sioAuthed(srv.port, u1);
    const c = await sioAuthed(srv.port, u2);
    check('ready event: {type:"ready", user:{id,username}, stream_pos:0}',
      a.ready.type === 'ready' && a.ready.user.id === u0.id && a.ready.user.username === 'u0' && a.ready.stream_pos === 0, a.ready);

    const body1 = `sio direct ✓ ${process.hrtime.bigint()}`;
    a.socket.emit('send', { conversation_id: direct.id, client_id: 'k-direct', body: body1 });
    const ack1 = (await a.inbox.next((f) => f.ev === 'ack', 3000, 'ack')).data;
    check('direct: ack {client_id, message}', ack1.client_id === 'k-direct' && Object.keys(ack1).join() === 'client_id,message', ack1);
    checkMessage('direct: ack.message has the M shape, body echoed', ack1.message,
      { conv: direct.id, sender: u0.id, clientId: 'k-direct', body: body1 });
    const m1b = (await b.inbox.next((f) => f.ev === 'message' && f.data.message.client_id === 'k-direct', 3000, 'message')).data;
    check('direct: recipient gets message {message: M}', JSON.stringify(m1b) === JSON.stringify({ message: ack1.message }), m1b);

    const body2 = `sio group ${Date.now()}`;
    a.socket.emit('send', { type: 'send', conversation_id: group.id, client_id: 'k-group', body: body2 });
    const ack2 = (await a.inbox.next((f) => f.ev === 'ack', 3000, 'ack')).data;
    checkMessage('group: ack with body echoed (a "type" field in send is ignored)', ack2.message,
      { conv: group.id, sender: u0.id, clientId: 'k-group', body: body2 });

    c.socket.emit('send', { conversation_id: direct.id, client_id: 'k-forbidden', body: 'nope' });
    const err = (await c.inbox.next((f) => f.ev === 'error_frame', 3000, 'error_frame')).data;
    check('non-member send -> error_frame {client_id, code:"forbidden", message:"not a member"}',
      JSON.stringify(err) === JSON.stringify({ client_id: 'k-forbidden', code: 'forbidden', message: 'not a member' }), err);

    b.socket.emit('send', 'garbage');
    const bad = (await b.inbox.next((f) => f.ev === 'error_frame', 3000, 'error_frame')).data;
    check('malformed send -> error_frame bad_request', bad.code === 'bad_request', bad);

    await sleep(QUIET_MS);
    const n = (cl, k) => cl.inbox.count((f) => f.ev === 'message' && f.data.message.client_id === k);
    check('direct: u1 got it exactly once', n(b, 'k-direct') === 1);
    check("direct: sender's other socket got it exactly once", n(a2, 'k-direct') === 1);
    check('direct: sending socket got no message event', n(a, 'k-direct') === 0);
    check('direct: non-member u2 got nothing', n(c, 'k-direct') === 0);
    check('group: u1 got it exactly once', n(b, 'k-group') === 1);
    check('group: u2 got it exactly once', n(c, 'k-group') === 1);
    check("group: sender's other socket got it exactly once", n(a2, 'k-group') === 1);
    check('group: sending socket got no message event', n(a, 'k-group') === 0);
    check('forbidden send delivered nowhere', [a, a2, b, c].every((x) => n(x, 'k-forbidden') === 0));

    const d = sioConnect(srv.port, 'not.a.jwt');
    const ce = await d.inbox.next((f) => f.ev === 'connect_error' || f.ev === 'ready', 3000, 'connect_error').catch((e) => ({ ev: e.message }));
    check('bad token -> connect_error', ce.ev === 'connect_error', ce);
    d.socket.close();
    for (const x of [a, a2, b, c]) x.socket.close();

    await testRawEngineIo(srv.port, s);
  } finally {
    const r = await srv.stop();
    check('exits cleanly on SIGTERM', r && r.code === 0, r);
  }
}

// ---------------------------------------------------------------- socket.io (raw Engine.IO frames)

/** A plain `ws` socket speaking Engine.IO v4 / Socket.IO v4 by hand, as the Rust benchmark will. */
function rawConnect(port, log) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    const inbox = new Inbox();
    let pings = 0;
    ws.on('message', (d) => {
      const text = d.toString();
      if (log) log(text);
      if (text === '2') {
        pings++;
        ws.send('3'); // Engine.IO pong
      }
      inbox.push({ text });
    });
    ws.on('open', () => resolve({ ws, inbox, send: (t) => ws.send(t), pings: () => pings }));
    ws.on('error', reject);
    ws.closed = new Promise((r) => ws.on('close', (code) => r({ code })));
  });
}

/** Parses `42["event",data]`; returns null for anything else. */
function parseEvent(text) {
  if (!text.startsWith('42')) return null;
  const [ev, data] = JSON.parse(text.slice(2));
  return { ev, data };
}

async function rawAuthed(port, token, log) {
  const r = await rawConnect(port, log);
  const open = await r.inbox.next((f) => f.text.startsWith('0'), 3000, 'Engine.IO open packet');
  r.open = JSON.parse(open.text.slice(1));
  r.send(`40${JSON.stringify({ token })}`);
  r.connect = await r.inbox.next((f) => f.text.startsWith('40') || f.text.startsWith('44'), 3000, 'Socket.IO CONNECT reply');
  return r;
}

async function testRawEngineIo(port, s) {
  console.log('== socket.io peer (raw Engine.IO v4 frames over a plain WebSocket)');
  const [u0, u1, u2] = s.users;
  const [direct, group] = s.conversations;
  const seen = [];
  const log = (who) => (t) => seen.push(`${who} <- ${t.length > 160 ? t.slice(0, 160) + '…' : t}`);

  const a = await rawAuthed(port, u0.token, log('u0'));
  console.log(`  observed open packet: 0${JSON.stringify(a.open)}`);
  check('open packet 0{sid, upgrades:[], pingInterval, pingTimeout, maxPayload}',
    typeof a.open.sid === 'string' && Array.isArray(a.open.upgrades) &&
    Number.isInteger(a.open.pingInterval) && Number.isInteger(a.open.pingTimeout) && Number.isInteger(a.open.maxPayload), a.open);
  check('CONNECT reply is 40{"sid":...}', /^40\{"sid":"[^"]+"\}$/.test(a.connect.text), a.connect.text);
  const ready = parseEvent((await a.inbox.next((f) => f.text.startsWith('42["ready"'), 3000, 'ready')).text);
  check('then 42["ready",{type:"ready",user,stream_pos:0}]',
    ready.data.type === 'ready' && ready.data.user.id === u0.id && ready.data.stream_pos === 0, ready);

  const b = await rawAuthed(port, u1.token, log('u1'));
  await b.inbox.next((f) => f.text.startsWith('42["ready"'), 3000, 'ready');
  const c = await rawAuthed(port, u2.token, log('u2'));
  await c.inbox.next((f) => f.text.startsWith('42["ready"'), 3000, 'ready');

  const body = `raw ✓ "q" ${process.hrtime.bigint()}`;
  a.send(`42${JSON.stringify(['send', { type: 'send', conversation_id: group.id, client_id: 'raw-1', body }])}`);
  const ack = parseEvent((await a.inbox.next((f) => f.text.startsWith('42["ack"'), 3000, 'ack')).text);
  check('42["send",{...}] -> 42["ack",{client_id,message}] with body echoed',
    ack.data.client_id === 'raw-1' && ack.data.message.body === body && ack.data.message.conversation_id === group.id, ack);
  for (const [name, cl] of [['u1', b], ['u2', c]]) {
    const m = parseEvent((await cl.inbox.next((f) => f.text.startsWith('42["message"'), 3000, 'message')).text);
    check(`${name} gets 42["message",{message}] with the same message`,
      JSON.stringify(m.data) === JSON.stringify({ message: ack.data.message }), m);
  }

  c.send(`42${JSON.stringify(['send', { conversation_id: direct.id, client_id: 'raw-forbidden', body: 'x' }])}`);
  const ef = parseEvent((await c.inbox.next((f) => f.text.startsWith('42["error_frame"'), 3000, 'error_frame')).text);
  check('non-member -> 42["error_frame",{client_id,code:"forbidden",...}]', ef.data.code === 'forbidden' && ef.data.client_id === 'raw-forbidden', ef);

  const bad = await rawAuthed(port, 'not.a.jwt', log('bad'));
  console.log(`  observed bad-token CONNECT reply: ${bad.connect.text}`);
  check('bad token -> 44{"message":...} (CONNECT_ERROR)', bad.connect.text.startsWith('44{'), bad.connect.text);
  bad.ws.close();

  if (SKIP_PING) {
    console.log('  (SMOKE_SKIP_PING=1: not waiting for an Engine.IO ping)');
  } else {
    const waitMs = a.open.pingInterval + 5000;
    console.log(`  waiting up to ${waitMs} ms for the server's Engine.IO ping "2" ...`);
    const t0 = Date.now();
    await a.inbox.next((f) => f.text === '2', waitMs, 'ping "2"').catch(() => null);
    check(`server ping "2" arrived (after ${Date.now() - t0} ms) and was answered with "3"`, a.pings() >= 1);
    a.send(`42${JSON.stringify(['send', { conversation_id: direct.id, client_id: 'raw-2', body: 'after ping' }])}`);
    const ack2 = parseEvent((await a.inbox.next((f) => f.text.startsWith('42["ack"'), 3000, 'ack')).text);
    check('connection still works after ping/pong', ack2.data.client_id === 'raw-2', ack2);
  }

  console.log('  raw frames observed (first 12):');
  for (const line of seen.slice(0, 12)) console.log(`    ${line}`);
  for (const x of [a, b, c]) x.ws.close();
}

// ---------------------------------------------------------------- main

try {
  await testWsExpress();
  await testSocketIo();
} catch (e) {
  failed++;
  console.log(`  FAIL unexpected: ${e.stack || e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
