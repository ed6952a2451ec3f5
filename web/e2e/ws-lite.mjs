// Minimal RFC 6455 server-side framing (text, close, ping/pong) for the dev harness.
import { createHash } from 'node:crypto';

export function acceptUpgrade(req, socket) {
  const key = req.headers['sec-websocket-key'];
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  const conn = { socket, onmessage: null, onclose: null, closed: false };
  let buf = Buffer.alloc(0);
  conn.send = (text) => {
    if (conn.closed) return;
    socket.write(frame(1, Buffer.from(text)));
  };
  conn.close = (code = 1000, reason = '') => {
    if (conn.closed) return;
    const p = Buffer.alloc(2 + Buffer.byteLength(reason));
    p.writeUInt16BE(code, 0);
    p.write(reason, 2);
    socket.write(frame(8, p));
    finish(code);
    setTimeout(() => socket.destroy(), 50);
  };
  function finish(code) {
    if (conn.closed) return;
    conn.closed = true;
    conn.onclose?.(code);
  }
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 0x0f;
      const masked = buf[1] & 0x80;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      let payload = buf.subarray(off, off + len);
      if (masked) {
        const m = buf.subarray(maskOff, maskOff + 4);
        payload = Buffer.from(payload.map((b, i) => b ^ m[i % 4]));
      }
      buf = buf.subarray(off + len);
      if (op === 1) conn.onmessage?.(payload.toString('utf8'));
      else if (op === 8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!conn.closed) socket.write(frame(8, payload.subarray(0, 2)));
        finish(code);
        socket.end();
      } else if (op === 9) socket.write(frame(10, payload));
    }
  });
  socket.on('close', () => finish(1006));
  socket.on('error', () => finish(1006));
  return conn;
}

function frame(op, payload) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | op, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | op;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | op;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}
