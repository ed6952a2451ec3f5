export type Segment = { type: 'text'; text: string } | { type: 'link'; text: string; href: string };

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** Only http(s) URLs become links; everything else stays plain text. */
export function safeHref(raw: string): string | null {
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return u.href;
  } catch {
    return null;
  }
}

/** Splits text into plain and link segments (rendered as text nodes and <a>, never as HTML). */
export function linkify(text: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    const start = m.index ?? 0;
    // Do not swallow trailing punctuation, but keep balanced parentheses.
    const trail = url.match(TRAILING);
    if (trail) {
      let t = trail[0];
      if (t.startsWith(')') && (url.match(/\(/g)?.length ?? 0) > (url.slice(0, -t.length).match(/\)/g)?.length ?? 0)) t = t.slice(1);
      url = url.slice(0, url.length - t.length);
    }
    const href = safeHref(url);
    if (!href) continue;
    if (start > last) out.push({ type: 'text', text: text.slice(last, start) });
    out.push({ type: 'link', text: url, href });
    last = start + url.length;
  }
  if (last < text.length) out.push({ type: 'text', text: text.slice(last) });
  return out;
}
