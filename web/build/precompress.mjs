// Precompressed copies of the built files: `X.br` (brotli, quality 11) and `X.gz` (gzip, level
// 9) next to every compressible file in dist/, so the server sends them as they are when the
// request's Accept-Encoding allows (Content-Encoding + Vary: Accept-Encoding).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const COMPRESSIBLE = /\.(js|mjs|css|html|svg|webmanifest|json|txt|map)$/i;

function* files(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else yield p;
  }
}

/** Writes the .br and .gz of every compressible file under `dir`; returns how many files. */
export function precompress(dir) {
  let n = 0;
  for (const file of [...files(dir)]) {
    if (!COMPRESSIBLE.test(file)) continue;
    const data = fs.readFileSync(file);
    const br = zlib.brotliCompressSync(data, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
        [zlib.constants.BROTLI_PARAM_MODE]: /\.(js|mjs|css|html|svg|webmanifest|json|txt|map)$/i.test(file) ? zlib.constants.BROTLI_MODE_TEXT : zlib.constants.BROTLI_MODE_GENERIC,
      },
    });
    fs.writeFileSync(`${file}.br`, br);
    fs.writeFileSync(`${file}.gz`, zlib.gzipSync(data, { level: 9 }));
    n++;
  }
  return n;
}
