// App icons for the web app manifest, drawn at build time (no binary files in the repository):
// the ChatNode mark (a white speech bubble on indigo) rasterized with 4×4 supersampling and
// written as PNG with Node's zlib. `any` icons have rounded corners; the `maskable` one is full
// bleed with the mark inside the central safe zone (a circle of 40% radius).
import zlib from 'node:zlib';

const INDIGO = [0x4f, 0x46, 0xe5];
const WHITE = [255, 255, 255];

/** Inside a rounded rectangle (x0,y0)-(x1,y1) with corner radius r. */
function inRoundRect(x, y, x0, y0, x1, y1, r) {
  if (x < x0 || x > x1 || y < y0 || y > y1) return false;
  const cx = Math.min(Math.max(x, x0 + r), x1 - r);
  const cy = Math.min(Math.max(y, y0 + r), y1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}
/** Inside the triangle a-b-c. */
function inTriangle(x, y, [ax, ay], [bx, by], [cx, cy]) {
  const d = (px, py, qx, qy, rx, ry) => (px - rx) * (qy - ry) - (qx - rx) * (py - ry);
  const d1 = d(x, y, ax, ay, bx, by);
  const d2 = d(x, y, bx, by, cx, cy);
  const d3 = d(x, y, cx, cy, ax, ay);
  return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0));
}
/** The bubble of favicon.svg, in its 64-unit box. */
function inBubble(x, y) {
  return inRoundRect(x, y, 16, 14, 48, 40, 6) || inTriangle(x, y, [21, 38], [30, 38], [21, 48]);
}

/** RGBA pixels of the icon at `size` px. */
export function drawIcon(size, { maskable = false } = {}) {
  const px = new Uint8Array(size * size * 4);
  const S = 4;
  const unit = 64 / size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let bg = 0;
      let fg = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const ux = (x + (sx + 0.5) / S) * unit;
          const uy = (y + (sy + 0.5) / S) * unit;
          const inBg = maskable || inRoundRect(ux, uy, 0, 0, 64, 64, 14);
          if (!inBg) continue;
          bg++;
          // The maskable icon's mark sits a little smaller, well inside the safe zone.
          const k = maskable ? 0.84 : 1;
          if (inBubble(32 + (ux - 32) / k, 32 + (uy - 31) / k)) fg++;
        }
      }
      const o = (y * size + x) * 4;
      const a = bg / (S * S);
      const f = bg ? fg / bg : 0;
      for (let c = 0; c < 3; c++) px[o + c] = Math.round(INDIGO[c] * (1 - f) + WHITE[c] * f);
      px[o + 3] = Math.round(a * 255);
    }
  }
  return px;
}

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
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A PNG (8-bit RGBA) of `size`×`size` pixels. */
export function encodePng(size, rgba) {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    Buffer.from(rgba.buffer, y * size * 4, size * 4).copy(raw, y * (size * 4 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8;
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The icons the manifest and index.html name: file name → PNG bytes. */
export function appIcons() {
  return {
    'icons/icon-192.png': encodePng(192, drawIcon(192)),
    'icons/icon-512.png': encodePng(512, drawIcon(512)),
    'icons/maskable-192.png': encodePng(192, drawIcon(192, { maskable: true })),
    'icons/maskable-512.png': encodePng(512, drawIcon(512, { maskable: true })),
    'icons/apple-touch-icon.png': encodePng(180, drawIcon(180, { maskable: true })),
  };
}
