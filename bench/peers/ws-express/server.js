'use strict';
// Comparison peer: express + ws + better-sqlite3 + jsonwebtoken, written the
// way a typical tutorial chat server is. See ../README.md.

const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');

const { config, openDb, createStore, createAuth, createApp, listen } = require('../common');

const cfg = config();
const db = openDb(cfg.dataDir);
const store = createStore(db);
const auth = createAuth();
const app = createApp(store, auth);
const server = http.createServer(app);
const wss = new WebSocketServer({ server, path: '/api/v1/ws' });

/** userId -> Set of authenticated sockets */
const connections = new Map();

function sendJson(ws, obj) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

wss.on('connection', (ws) => {
  let user = null;

  ws.on('error', (err) => {
    console.error('ws error:', err.message);
  });

  ws.on('message', (data) => {
    let frame;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      frame = undefined;
    }

    // The first frame must be a valid `auth`; anything else closes with 4001.
    if (!user) {
      if (!frame || frame.type !== 'auth') {
        ws.close(4001, 'first frame must be auth');
        return;
      }
      const userId = auth.verify(frame.token);
      const row = userId && store.stmts.getUser.get(userId);
      if (!row) {
        sendJson(ws, { type: 'error', code: 'unauthenticated', message: 'invalid or expired token' });
        ws.close(4001, 'invalid token');
        return;
      }
      user = { id: row.id, username: row.username };
      if (!connections.has(user.id)) connections.set(user.id, new Set());
      connections.get(user.id).add(ws);
      sendJson(ws, { type: 'ready', user, stream_pos: 0 });
      return;
    }

    if (!frame || typeof frame !== 'object') {
      sendJson(ws, { type: 'error', code: 'bad_request', message: 'frame is not a JSON object' });
      return;
    }

    switch (frame.type) {
      case 'ping':
        sendJson(ws, { type: 'pong' });
        break;

      case 'send': {
        const result = store.createMessage(user.id, frame);
        if (result.error) {
          sendJson(ws, { type: 'error', ...result.error });
          return;
        }
        const { message } = result;
        sendJson(ws, { type: 'ack', client_id: message.client_id, message });

        const out = JSON.stringify({ type: 'message', message });
        const members = store.stmts.membersOf.all(message.conversation_id);
        for (const { user_id } of members) {
          const sockets = connections.get(user_id);
          if (!sockets) continue;
          for (const socket of sockets) {
            if (socket !== ws && socket.readyState === WebSocket.OPEN) socket.send(out);
          }
        }
        break;
      }

      case 'auth':
        sendJson(ws, { type: 'error', code: 'bad_request', message: 'this connection is already authenticated' });
        break;

      default:
        sendJson(ws, { type: 'error', code: 'bad_request', message: `unknown frame type: ${frame.type}` });
    }
  });

  ws.on('close', () => {
    if (!user) return;
    const sockets = connections.get(user.id);
    if (sockets) {
      sockets.delete(ws);
      if (sockets.size === 0) connections.delete(user.id);
    }
  });
});

listen(server, cfg, () => {
  for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  wss.close();
  db.close();
});
