// Reactions on messages: the quick set, the reducers that keep counts and "mine" right across
// optimistic toggles, live `reaction` events (replayed by `sync`) and broadcast message events
// (whose `me` is always false), and the words screen readers get for a reaction chip.
import type { Reaction } from './types';

/** The emoji offered at once under "React"; the full picker has the rest. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'] as const;

/** The server's limit of different emoji one person may put on one message. */
export const MAX_REACTIONS_PER_USER = 20;

/**
 * One emoji added or removed by someone. `mine`: the reactor is the current user. Idempotent
 * for my own reactions (an optimistic toggle followed by its echo changes nothing); another
 * person's event moves the count by one. A count that reaches zero drops the chip; a new emoji
 * goes last (the server orders by first use).
 */
export function applyReaction(list: readonly Reaction[], emoji: string, added: boolean, mine: boolean): Reaction[] {
  const i = list.findIndex((r) => r.emoji === emoji);
  const cur = i >= 0 ? list[i] : null;
  if (mine && cur && cur.me === added) return list as Reaction[];
  if (mine && !cur && !added) return list as Reaction[];
  if (!cur) return added ? [...list, { emoji, count: 1, me: mine }] : (list as Reaction[]);
  const count = Math.max(0, cur.count + (added ? 1 : -1));
  const me = mine ? added : cur.me;
  if (count === 0) return list.filter((_, j) => j !== i);
  const out = list.slice();
  out[i] = { emoji, count: Math.max(count, me ? 1 : 0), me };
  return out;
}

/**
 * Reactions from a message event sent to many (`message`, `message.updated`): counts and order
 * come from the server, `me` (always false there) from what this client knew.
 */
export function keepMine(incoming: readonly Reaction[] | undefined, known: readonly Reaction[] | undefined): Reaction[] {
  const mine = new Set((known ?? []).filter((r) => r.me).map((r) => r.emoji));
  return (incoming ?? []).map((r) => ({ ...r, me: r.me || mine.has(r.emoji) }));
}

/** Whether I reacted with `emoji`. */
export function hasMine(list: readonly Reaction[] | undefined, emoji: string): boolean {
  return !!list?.some((r) => r.emoji === emoji && r.me);
}

/** How many different emoji I put on the message. */
export function myReactionCount(list: readonly Reaction[] | undefined): number {
  return (list ?? []).filter((r) => r.me).length;
}

/** "👍 2 reactions, including you", "❤️ 1 reaction, yours", "😂 3 reactions". */
export function reactionLabel(r: Pick<Reaction, 'emoji' | 'count' | 'me'>): string {
  const n = `${r.count} ${r.count === 1 ? 'reaction' : 'reactions'}`;
  if (r.me) return `${r.emoji} ${n}, ${r.count === 1 ? 'yours' : 'including you'}`;
  return `${r.emoji} ${n}`;
}

/** "Ann Lee, Bob and you", "Ann Lee and 3 others": who reacted, for the chip's tooltip. */
export function reactorsText(names: string[], max = 4): string {
  if (!names.length) return '';
  // "You" goes last, as people say it.
  const sorted = [...names.filter((n) => n !== 'You'), ...names.filter((n) => n === 'You')].map((n, i) => (i > 0 && n === 'You' ? 'you' : n));
  if (sorted.length <= max) return sorted.length === 1 ? sorted[0] : `${sorted.slice(0, -1).join(', ')} and ${sorted[sorted.length - 1]}`;
  const rest = sorted.length - (max - 1);
  return `${sorted.slice(0, max - 1).join(', ')} and ${rest} others`;
}
