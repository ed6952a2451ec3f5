import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, type Plugin } from 'vite';
// @ts-expect-error plain ESM helpers (build/*.mjs), no type declarations
import { appIcons } from './build/icons.mjs';
// @ts-expect-error plain ESM helpers (build/*.mjs), no type declarations
import { precompress } from './build/precompress.mjs';

const outDir = path.resolve(import.meta.dirname, 'dist');

/**
 * Installable and light: the manifest's PNG icons (drawn at build time), the service worker's
 * list of app-shell files and build ID (so each build installs a fresh offline copy), and
 * `X.br` / `X.gz` next to every compressible file for the server to send as they are.
 */
function pwa(): Plugin {
  let icons: Record<string, Buffer> | null = null;
  const getIcons = () => (icons ??= appIcons() as Record<string, Buffer>);
  return {
    name: 'chatnode-pwa',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const png = getIcons()[(req.url ?? '').replace(/^\//, '').split('?')[0]];
        if (!png) return next();
        res.setHeader('Content-Type', 'image/png');
        res.end(png);
      });
    },
    generateBundle() {
      for (const [fileName, source] of Object.entries(getIcons())) this.emitFile({ type: 'asset', fileName, source });
    },
    closeBundle: {
      order: 'post',
      handler() {
        const swPath = path.join(outDir, 'sw.js');
        if (!fs.existsSync(swPath)) return;
        const shell: string[] = [];
        const walk = (dir: string) => {
          for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
            const p = path.join(dir, e.name);
            if (e.isDirectory()) walk(p);
            else shell.push(`/${path.relative(outDir, p).split(path.sep).join('/')}`);
          }
        };
        walk(outDir);
        const files = shell.filter((f) => !/\.(br|gz)$/.test(f) && f !== '/sw.js' && f !== '/index.html' && !f.startsWith('/icons/apple')).sort();
        const id = createHash('sha256');
        for (const f of [...files, '/index.html']) id.update(f).update(fs.readFileSync(path.join(outDir, f)));
        let sw = fs.readFileSync(swPath, 'utf8');
        sw = sw.replace("const BUILD = 'dev';", `const BUILD = '${id.digest('hex').slice(0, 12)}';`).replace('const PRECACHE = [];', `const PRECACHE = ${JSON.stringify(files)};`);
        fs.writeFileSync(swPath, sw);
        precompress(outDir);
      },
    },
  };
}

// The page runs under a strict CSP (no inline script/style): CSS goes to external files.
export default defineConfig({
  plugins: [svelte({ compilerOptions: { css: 'external' }, emitCss: true }), pwa()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    // Views loaded later bring their own CSS (as <link>, which the CSP allows): the first page
    // parses only what it shows.
    cssCodeSplit: true,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: {
      '/api': { target: process.env.CHATNODE_URL ?? 'http://127.0.0.1:8080', ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
