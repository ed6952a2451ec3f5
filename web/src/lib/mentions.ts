// Mentions: where an `@name` is being typed in the composer, the people the picker offers for it
// (filtered as one types), inserting the choice, and splitting a message body into text and
// `@name` tokens by the server's rule (an `@` at the start or after a character that cannot be in
// a username, so `someone@bob.com` mentions nobody; a trailing `.` or `-` is punctuation).
import { foldText } from './searchtext';
import type { User } from './types';

/** Characters of a username (the server's `domain::Username`). */
export function isUsernameChar(c: string | undefined): boolean {
  return !!c && /^[A-Za-z0-9_.-]$/.test(c);
}

/** An `@` at `i` starts a mention: at the start, or after a character that cannot be in a username. */
function startsMention(text: string, i: number): boolean {
  if (text[i] !== '@') return false;
  const prev = i > 0 ? text[i - 1] : undefined;
  return prev === undefined || (!isUsernameChar(prev) && prev !== '@');
}

/**
 * The mention being typed at the caret: the `@` position and what follows it up to the caret,
 * or null when the caret is not in one.
 */
export function mentionAt(text: string, caret: number): { start: number; query: string } | null {
  let i = caret;
  while (i > 0 && isUsernameChar(text[i - 1])) i--;
  if (i === 0 || !startsMention(text, i - 1)) return null;
  const query = text.slice(i, caret);
  if (query.length > 32) return null;
  return { start: i - 1, query };
}

/** One entry of the picker: a person, or `@all` (group admins and the owner). */
export type MentionOption = { kind: 'user'; user: User } | { kind: 'all' };

/** What an option inserts (without the `@`). */
export function optionName(o: MentionOption): string {
  return o.kind === 'all' ? 'all' : o.user.username;
}

/**
 * The people offered for `query`: usernames and display-name words that start with it (case
 * and accents ignored), usernames first, then by name; never myself; `@all` when allowed and it
 * fits. At most `limit`.
 */
export function filterMentions(people: User[], query: string, o: { me?: string | null; canAll?: boolean; limit?: number } = {}): MentionOption[] {
  const q = foldText(query);
  const seen = new Set<string>();
  const scored: { u: User; score: number }[] = [];
  for (const u of people) {
    if (u.id === o.me || seen.has(u.id)) continue;
    seen.add(u.id);
    const uname = foldText(u.username);
    const words = foldText(u.display_name ?? '').split(/[^\p{L}\p{N}]+/u).filter(Boolean);
    let score = -1;
    if (!q) score = 2;
    else if (uname.startsWith(q)) score = 0;
    else if (words.some((w) => w.startsWith(q)) || foldText(u.display_name ?? '').startsWith(q)) score = 1;
    if (score >= 0) scored.push({ u, score });
  }
  scored.sort((a, b) => a.score - b.score || (a.u.display_name || a.u.username).localeCompare(b.u.display_name || b.u.username));
  const out: MentionOption[] = scored.map((x) => ({ kind: 'user', user: x.u }));
  if (o.canAll && 'all'.startsWith(q)) {
    if (q === 'all' || q.length > 0) out.unshift({ kind: 'all' });
    else out.push({ kind: 'all' });
  }
  return out.slice(0, o.limit ?? 8);
}

/** Replaces the `@query` at `start..caret` with `@name ` and says where the caret goes. */
export function insertMention(text: string, start: number, caret: number, name: string): { text: string; caret: number } {
  const after = text.slice(caret);
  const insert = `@${name}${after.startsWith(' ') ? '' : ' '}`;
  return { text: text.slice(0, start) + insert + after, caret: start + insert.length + (after.startsWith(' ') ? 1 : 0) };
}

export type MentionSegment = { type: 'text'; text: string } | { type: 'mention'; text: string; name: string };

/** Splits text into plain runs and `@name` tokens (the token includes the `@`; `name` is lower-case). */
export function splitMentions(text: string): MentionSegment[] {
  const out: MentionSegment[] = [];
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    if (!startsMention(text, i)) continue;
    let j = i + 1;
    while (j < text.length && isUsernameChar(text[j])) j++;
    let end = j;
    while (end > i + 1 && (text[end - 1] === '.' || text[end - 1] === '-')) end--;
    const name = text.slice(i + 1, end);
    if (!name || name.length > 32) continue;
    if (i > last) out.push({ type: 'text', text: text.slice(last, i) });
    out.push({ type: 'mention', text: text.slice(i, end), name: name.toLowerCase() });
    last = end;
    i = end - 1;
  }
  if (last < text.length) out.push({ type: 'text', text: text.slice(last) });
  return out;
}

/** Whether a message mentions me (its `mentions` lists my ID). */
export function mentionsMe(m: { mentions?: string[] | null }, me: string | null | undefined): boolean {
  return !!me && !!m.mentions?.includes(me);
}
