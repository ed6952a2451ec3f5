'use strict';
// Comparison peer: express + socket.io + better-sqlite3 + jsonwebtoken, written
// the way a typical socket.io chat server is. See ../README.md.

const http = require('node:http');
const { Server } = require('socket.io');

const { config, openDb, createStore, createAuth, createApp, listen } = require('../common');

const cfg = config();
const db = openDb(cfg.dataDir);
const store = createStore(db);
const auth = createAuth();
const app = createApp(store, auth);
const server = http.createServer(app);
const io = new Server(server, {
  path: '/socket.io/',
  // The benchmark speaks the websocket transport directly (no long-polling).
  transports: ['websocket'],
});

// Auth: the JWT from the client's `auth` payload (CONNECT packet `40{"token":"..."}`).
io.use((socket, next) => {
  const userId = auth.verify(socket.handshake.auth?.token);
  const row = userId && store.stmts.getUser.get(userId);
  if (!row) return next(new Error('unauthenticated'));
  socket.data.user = { id: row.id, username: row.username };
  next();
});

io.on('connection', (socket) => {
  const { user } = socket.data;

  // One room per conversation (named by its id) and one per user.
  const rooms = store.stmts.conversationsOf.all(user.id).map((r) => r.conversation_id);
  rooms.push(`user:${user.id}`);
  socket.join(rooms);

  socket.emit('ready', { type: 'ready', user, stream_pos: 0 });

  socket.on('send', (frame) => {
    const result = store.createMessage(user.id, frame);
    if (result.error) {
      socket.emit('error_frame', result.error);
      return;
    }
    const { message } = result;
    socket.emit('ack', { client_id: message.client_id, message });
    socket.to(message.conversation_id).emit('message', { message });
  });
});

listen(server, cfg, () => {
  io.close();
  db.close();
});
