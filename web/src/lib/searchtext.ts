// Message search as the server does it, for the client's side of it: text folded like the
// server folds it (compatibility decomposition, combining marks dropped, lower-cased), the
// words of a query, where they match in a text (each query word matches the start of a word),
// snippets around the first match, and merging pages of results.
import type { Message } from './types';

/** Characters of scripts written without spaces (each is a word), as the server has them. */
function unspaced(c: string): boolean {
  const n = c.codePointAt(0) ?? 0;
  return (
    (n >= 0x0e00 && n <= 0x0eff) ||
    (n >= 0x1000 && n <= 0x109f) ||
    (n >= 0x1780 && n <= 0x17ff) ||
    (n >= 0x3040 && n <= 0x30ff) ||
    (n >= 0x31f0 && n <= 0x31ff) ||
    (n >= 0x3400 && n <= 0x4dbf) ||
    (n >= 0x4e00 && n <= 0x9fff) ||
    (n >= 0xf900 && n <= 0xfaff) ||
    (n >= 0x20000 && n <= 0x2fa1f)
  );
}

const MARK = /\p{M}/gu;
const ALNUM = /^[\p{L}\p{N}]$/u;

/** One character folded: NFKD, combining marks dropped, lower-cased (may be empty or longer). */
function foldChar(c: string): string {
  return c.normalize('NFKD').replace(MARK, '').toLowerCase();
}

/** A string folded for comparison ("Café" → "cafe"). */
export function foldText(s: string): string {
  return s.normalize('NFKD').replace(MARK, '').toLowerCase();
}

/** A word of a text: its folded form and where it is in the original (UTF-16 offsets). */
interface Word {
  folded: string;
  /** For each folded character: the end offset (in the original) of the character it came from. */
  ends: number[];
  start: number;
}

function wordsWithOffsets(text: string): Word[] {
  const out: Word[] = [];
  let cur: Word | null = null;
  let offset = 0;
  const close = () => {
    if (cur && cur.folded) out.push(cur);
    cur = null;
  };
  for (const ch of text) {
    const start = offset;
    offset += ch.length;
    const f = foldChar(ch);
    for (const c of f) {
      if (unspaced(c)) {
        close();
        out.push({ folded: c, ends: [offset], start });
      } else if (ALNUM.test(c)) {
        if (!cur) cur = { folded: '', ends: [], start };
        cur.folded += c;
        cur.ends.push(offset);
      } else close();
    }
    if (!f) {
      // A lone combining mark: part of the word before it.
    }
  }
  close();
  return out;
}

/** The distinct folded words of a query ("Dinner  FRIDAY" → ["dinner", "friday"]). */
export function queryWords(q: string): string[] {
  const out: string[] = [];
  for (const w of wordsWithOffsets(q)) if (!out.includes(w.folded)) out.push(w.folded);
  return out;
}

/** Whether `q` can be sent to the server: 1 to 200 characters with at least one word. */
export function validQuery(q: string): boolean {
  const n = [...q].length;
  return n >= 1 && n <= 200 && queryWords(q).length > 0;
}

/** Whether every query word starts some word of the text (the server's rule). */
export function matches(text: string, words: string[]): boolean {
  const ws = wordsWithOffsets(text).map((w) => w.folded);
  return words.length > 0 && words.every((q) => ws.some((w) => w.startsWith(q)));
}

export type HighlightSegment = { text: string; hit: boolean };

/** Splits text into runs, marking the start of each word that a query word matches. */
export function highlight(text: string, words: string[]): HighlightSegment[] {
  const ranges: [number, number][] = [];
  for (const w of wordsWithOffsets(text)) {
    let best = 0;
    for (const q of words) if (q.length > best && w.folded.startsWith(q)) best = q.length;
    if (best) ranges.push([w.start, w.ends[best - 1]]);
  }
  const out: HighlightSegment[] = [];
  let last = 0;
  for (const [s, e] of ranges) {
    if (s > last) out.push({ text: text.slice(last, s), hit: false });
    out.push({ text: text.slice(s, e), hit: true });
    last = e;
  }
  if (last < text.length) out.push({ text: text.slice(last), hit: false });
  return out;
}

/**
 * A one-line excerpt of at most about `max` characters around the first match, with "…" where
 * text was cut.
 */
export function snippet(text: string, words: string[], max = 120): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const first = wordsWithOffsets(flat).find((w) => words.some((q) => w.folded.startsWith(q)));
  const at = first?.start ?? 0;
  let start = Math.max(0, at - Math.floor(max / 3));
  // Start at a word boundary.
  if (start > 0) {
    const sp = flat.lastIndexOf(' ', start);
    start = sp >= 0 && at - sp < max / 2 ? sp + 1 : start;
  }
  let end = Math.min(flat.length, start + max);
  if (end < flat.length) {
    const sp = flat.lastIndexOf(' ', end);
    if (sp > at) end = sp;
  }
  return `${start > 0 ? '…' : ''}${flat.slice(start, end)}${end < flat.length ? '…' : ''}`;
}

/** Appends a page of results (newest first), dropping any already listed. */
export function mergeResults(prev: Message[], next: Message[]): Message[] {
  const key = (m: Message) => `${m.conversation_id}:${m.seq}`;
  const seen = new Set(prev.map(key));
  const out = prev.slice();
  for (const m of next) {
    if (seen.has(key(m))) continue;
    seen.add(key(m));
    out.push(m);
  }
  return out;
}
