'use strict';
// Shared by both peers: config from the environment, the SQLite schema and
// prepared statements, JWT helpers, the express app (healthz + bench seed),
// the `send` handling (membership check + INSERT) and the process lifecycle.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const Database = require('better-sqlite3');
const express = require('express');
const jwt = require('jsonwebtoken');

function config() {
  const port = Number.parseInt(process.env.PORT ?? '0', 10);
  const host = process.env.HOST || '127.0.0.1';
  let dataDir = process.env.DATA_DIR;
  if (dataDir) {
    fs.mkdirSync(dataDir, { recursive: true });
  } else {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatnode-peer-'));
  }
  return { port: Number.isFinite(port) ? port : 0, host, dataDir };
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
  conversation_id TEXT NOT NULL REFERENCES conversations(id),
  user_id TEXT NOT NULL REFERENCES users(id),
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_user_id ON members(user_id);
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  conversation_id TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`;

function openDb(dataDir) {
  const db = new Database(path.join(dataDir, 'chat.db'));
  // As better-sqlite3's docs recommend. `synchronous` is left at SQLite's default.
  db.pragma('journal_mode = WAL');
  // PEER_SYNCHRONOUS=FULL gives the peers ChatNode's durability (an fsync before the ack);
  // the benchmark reports both.
  if (process.env.PEER_SYNCHRONOUS) db.pragma(`synchronous = ${process.env.PEER_SYNCHRONOUS}`);
  db.exec(SCHEMA);
  // For the benchmark log (stderr; stdout carries only the "listening on" line).
  // better-sqlite3's bundled SQLite is built with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1,
  // so in WAL mode the default is NORMAL (1), not FULL (2).
  console.error(
    `sqlite ${db.prepare('SELECT sqlite_version() AS v').get().v}: ${path.join(dataDir, 'chat.db')}` +
      ` journal_mode=${db.pragma('journal_mode', { simple: true })} synchronous=${db.pragma('synchronous', { simple: true })}`,
  );
  return db;
}

/** Prepared statements and the bits of logic both peers share. */
function createStore(db) {
  const stmts = {
    insertUser: db.prepare('INSERT INTO users (id, username) VALUES (?, ?)'),
    insertConversation: db.prepare('INSERT INTO conversations (id, kind) VALUES (?, ?)'),
    insertMember: db.prepare('INSERT INTO members (conversation_id, user_id) VALUES (?, ?)'),
    getUser: db.prepare('SELECT id, username FROM users WHERE id = ?'),
    isMember: db.prepare('SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?'),
    membersOf: db.prepare('SELECT user_id FROM members WHERE conversation_id = ?'),
    conversationsOf: db.prepare('SELECT conversation_id FROM members WHERE user_id = ?'),
    insertMessage: db.prepare(
      'INSERT INTO messages (conversation_id, sender_id, client_id, body, created_at) VALUES (?, ?, ?, ?, ?)',
    ),
  };

  /**
   * Validates a `send` frame from `userId`, checks membership and INSERTs.
   * Returns `{ message }` (the wire-format message M) or `{ error }` (an error
   * payload `{client_id, code, message}` without `type`).
   */
  function createMessage(userId, frame) {
    const clientId = frame && typeof frame.client_id === 'string' ? frame.client_id : undefined;
    if (
      !frame ||
      typeof frame.conversation_id !== 'string' ||
      typeof frame.client_id !== 'string' ||
      typeof frame.body !== 'string'
    ) {
      return {
        error: {
          client_id: clientId,
          code: 'bad_request',
          message: 'send needs string conversation_id, client_id and body',
        },
      };
    }
    const { conversation_id: conversationId, body } = frame;
    if (!stmts.isMember.get(conversationId, userId)) {
      return { error: { client_id: clientId, code: 'forbidden', message: 'not a member' } };
    }
    const createdAt = Date.now();
    const info = stmts.insertMessage.run(conversationId, userId, clientId, body, createdAt);
    const rowid = Number(info.lastInsertRowid);
    return {
      message: {
        id: String(rowid),
        conversation_id: conversationId,
        seq: rowid,
        sender_id: userId,
        client_id: clientId,
        kind: 'text',
        body,
        created_at: new Date(createdAt).toISOString(),
      },
    };
  }

  return { db, stmts, createMessage };
}

/** HS256 tokens with a secret generated at start. */
function createAuth() {
  // A KeyObject rather than a raw Buffer/string: jsonwebtoken first tries
  // createPrivateKey() on a non-KeyObject secret on every sign/verify, which
  // throws and costs ~0.5 ms per call (30x the HMAC itself). See README.
  const secret = crypto.createSecretKey(crypto.randomBytes(32));
  return {
    sign(userId) {
      return jwt.sign({ sub: userId }, secret, { algorithm: 'HS256', expiresIn: '2h' });
    },
    /** Returns the user id, or null if the token is missing, invalid or expired. */
    verify(token) {
      if (typeof token !== 'string') return null;
      try {
        const payload = jwt.verify(token, secret, { algorithms: ['HS256'] });
        return typeof payload.sub === 'string' ? payload.sub : null;
      } catch {
        return null;
      }
    },
  };
}

/** The express app: GET /healthz and the bench-only POST /bench/seed. */
function createApp(store, auth) {
  const { db, stmts } = store;
  const app = express();
  app.use(express.json({ limit: '50mb' }));

  app.get('/healthz', (req, res) => {
    res.type('text/plain').send('ok');
  });

  // One transaction for the whole seed; ids are UUIDs, usernames u<index>.
  const seed = db.transaction((userCount, convs) => {
    const users = [];
    for (let i = 0; i < userCount; i++) {
      const id = crypto.randomUUID();
      stmts.insertUser.run(id, `u${i}`);
      users.push(id);
    }
    const conversations = [];
    for (const memberIdx of convs) {
      const id = crypto.randomUUID();
      stmts.insertConversation.run(id, memberIdx.length === 2 ? 'direct' : 'group');
      for (const i of new Set(memberIdx)) stmts.insertMember.run(id, users[i]);
      conversations.push({ id, members: memberIdx });
    }
    return { users, conversations };
  });

  app.post('/bench/seed', (req, res) => {
    const userCount = req.body?.users;
    const convs = req.body?.conversations ?? [];
    if (!Number.isInteger(userCount) || userCount < 0 || !Array.isArray(convs)) {
      return res.status(400).json({ error: 'expected {"users": N, "conversations": [[i, j, ...], ...]}' });
    }
    for (const c of convs) {
      if (!Array.isArray(c) || !c.every((i) => Number.isInteger(i) && i >= 0 && i < userCount)) {
        return res.status(400).json({ error: 'each conversation is an array of user indices 0..N-1' });
      }
    }
    const result = seed(userCount, convs);
    res.json({
      users: result.users.map((id) => ({ id, token: auth.sign(id) })),
      conversations: result.conversations,
    });
  });

  return app;
}

/** Listens, prints `listening on <port>`, and exits cleanly on SIGTERM/SIGINT. */
function listen(server, cfg, onShutdown) {
  server.listen(cfg.port, cfg.host, () => {
    process.stdout.write(`listening on ${server.address().port}\n`);
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    try {
      onShutdown();
    } catch (e) {
      console.error('shutdown error:', e);
    }
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

module.exports = { config, openDb, createStore, createAuth, createApp, listen };
