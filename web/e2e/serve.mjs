// Serves web/dist with the server's strict CSP and SPA fallback, and proxies /api (HTTP and
// WebSocket) to a ChatNode backend. `POST /__e2e/outage?ms=N` simulates a server outage.
// Like the server, it sends the build's precompressed `X.br` / `X.gz` when Accept-Encoding
// allows (Content-Encoding, Vary: Accept-Encoding), caches /assets/ for a year and revalidates
// the rest, and names the manifest application/manifest+json.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.woff2': 'font/woff2' };

/** The precompressed copy to send for `file`, by the request's Accept-Encoding (br first). */
export function encodedVariant(file, acceptEncoding) {
  const accepts = (enc) => new RegExp(`(^|,)\\s*${enc}\\s*(;\\s*q=(?!0(\\.0*)?\\s*(,|$))[\\d.]+)?\\s*(,|$)`, 'i').test(acceptEncoding ?? '');
  for (const [enc, ext] of [['br', '.br'], ['gzip', '.gz']]) {
    if (accepts(enc) && fs.existsSync(file + ext)) return { path: file + ext, encoding: enc };
  }
  return null;
}

export function startServe({ distDir, backend, port = 0 }) {
  const be = new URL(backend);
  let downUntil = 0;
  const upgraded = new Set();
  const isDown = () => Date.now() < downUntil;

  const beOrigin = `${be.protocol}//${be.host}`;
  let ownOrigins = new Set(); // http://127.0.0.1:<port> (and localhost), known once listening
  // The server refuses WebSocket upgrades whose Origin host differs from Host (cross-site
  // WebSocket hijacking defence). The proxy rewrites Host to the backend's, so it rewrites the
  // Origin of requests from its own pages to the backend's origin too (HTTP and upgrades).
  const originFor = (v) => (v && ownOrigins.has(v.toLowerCase()) ? beOrigin : v);

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/__e2e/outage' && req.method === 'POST') {
      downUntil = Date.now() + Number(url.searchParams.get('ms') ?? 3000);
      for (const s of upgraded) s.destroy();
      upgraded.clear();
      res.writeHead(204);
      res.end();
      return;
    }
    if (url.pathname.startsWith('/api/')) {
      if (isDown()) {
        req.socket.destroy();
        return;
      }
      const p = http.request(
        { host: be.hostname, port: be.port || 80, method: req.method, path: req.url, headers: { ...req.headers, host: be.host, ...(req.headers.origin ? { origin: originFor(req.headers.origin) } : {}) } },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      p.on('error', () => {
        // The backend may answer early (e.g. 413) and close while the upload is still streaming;
        // when its answer is lost with the connection, the browser sees what it would see from
        // the server itself: a dropped connection (not an answer the server never gave).
        setTimeout(() => {
          if (res.headersSent) return void res.end();
          req.socket.destroy();
        }, 250);
      });
      req.on('error', () => p.destroy());
      req.pipe(p);
      return;
    }
    let file = path.join(distDir, path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ''));
    if (!file.startsWith(distDir) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      // A missing file is a 404, not the app shell (as the server does).
      if (url.pathname.startsWith('/assets/') || /\.[a-z0-9]+$/i.test(url.pathname)) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      file = path.join(distDir, 'index.html');
    }
    const variant = encodedVariant(file, req.headers['accept-encoding']);
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': url.pathname.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'Accept-Encoding',
      ...(variant ? { 'content-encoding': variant.encoding } : {}),
    });
    fs.createReadStream(variant ? variant.path : file).pipe(res);
  });

  server.on('upgrade', (req, socket, head) => {
    if (isDown() || !req.url.startsWith('/api/')) {
      socket.destroy();
      return;
    }
    const up = net.connect(Number(be.port || 80), be.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const k = req.rawHeaders[i];
        const lk = k.toLowerCase();
        lines.push(`${k}: ${lk === 'host' ? be.host : lk === 'origin' ? originFor(req.rawHeaders[i + 1]) : req.rawHeaders[i + 1]}`);
      }
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head?.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    upgraded.add(socket);
    const done = () => {
      upgraded.delete(socket);
      up.destroy();
      socket.destroy();
    };
    up.on('error', done);
    socket.on('error', done);
    up.on('close', done);
    socket.on('close', done);
  });

  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () => {
      const p = server.address().port;
      ownOrigins = new Set([`http://127.0.0.1:${p}`, `http://localhost:${p}`]);
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        close: () =>
          new Promise((r) => {
            for (const s of upgraded) s.destroy();
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    }),
  );
}

if (process.argv[1] && process.argv[1].endsWith('serve.mjs')) {
  const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../dist');
  const s = await startServe({ distDir: dist, backend: process.env.CHATNODE_URL ?? 'http://127.0.0.1:8080', port: Number(process.argv[2] ?? 5174) });
  console.log(`serving ${dist} with CSP on ${s.url}`);
}
