// The last loaded chats, kept in localStorage so that a reload without a network (the service
// worker serves the app shell) shows the conversation list and recent messages instead of a
// blank page, and every start renders at once before the server answers. One snapshot, of the
// last account that used this browser; logging out deletes it. Only what was on screen is kept:
// the most recent conversations and the newest messages of each.
import { emptyState, sortedConversations, type ChatState } from './chat';
import type { Conversation, LocalMessage, Me, Message } from './types';

export const OFFLINE_KEY = 'chatnode.offline';
const VERSION = 1;

export interface Snapshot {
  v: number;
  saved_at: string;
  me: Me;
  conversations: Conversation[];
  /** Newest messages per conversation, oldest first. */
  messages: Record<string, Message[]>;
}

/** What is kept: at most `maxConversations` (most recent), `maxMessages` newest messages each. */
export function makeSnapshot(me: Me, s: ChatState, o: { maxConversations?: number; maxMessages?: number; now?: Date } = {}): Snapshot {
  const convs = sortedConversations(s).slice(0, o.maxConversations ?? 30);
  const messages: Record<string, Message[]> = {};
  for (const c of convs) {
    const list = s.messages[c.id];
    // A window far from the newest (after a jump) is not "the recent messages".
    if (!list?.length || s.gapAfter[c.id] !== undefined) continue;
    messages[c.id] = list.slice(-(o.maxMessages ?? 40)).map(({ status: _s, error: _e, ...m }: LocalMessage) => m);
  }
  return { v: VERSION, saved_at: (o.now ?? new Date()).toISOString(), me, conversations: convs, messages };
}

/** The chat state a snapshot shows (its messages count as "may be stale": reloaded when opened). */
export function stateFromSnapshot(snap: Snapshot): ChatState {
  const s = emptyState(snap.me.id);
  for (const c of snap.conversations) s.conversations[c.id] = c;
  for (const [cid, list] of Object.entries(snap.messages)) {
    if (!s.conversations[cid]) continue;
    s.messages[cid] = list.map((m) => ({ ...m, reactions: m.reactions ?? [], mentions: m.mentions ?? [], via_webhook: m.via_webhook ?? null, status: 'sent' as const }));
    s.hasMore[cid] = !list.some((m) => m.seq === 1);
  }
  return s;
}

export class OfflineStore {
  constructor(private storage: Storage) {}

  load(userId?: string): Snapshot | null {
    try {
      const raw = this.storage.getItem(OFFLINE_KEY);
      if (!raw) return null;
      const snap = JSON.parse(raw) as Snapshot;
      if (snap?.v !== VERSION || !snap.me?.id || !Array.isArray(snap.conversations)) return null;
      if (userId && snap.me.id !== userId) return null;
      return snap;
    } catch {
      return null;
    }
  }

  save(snap: Snapshot): void {
    try {
      this.storage.setItem(OFFLINE_KEY, JSON.stringify(snap));
    } catch {
      // Full: keep fewer messages rather than nothing.
      try {
        const small = { ...snap, messages: Object.fromEntries(Object.entries(snap.messages).slice(0, 5).map(([k, v]) => [k, v.slice(-10)])) };
        this.storage.setItem(OFFLINE_KEY, JSON.stringify(small));
      } catch {
        /* no room: no offline copy */
      }
    }
  }

  clear(): void {
    this.storage.removeItem(OFFLINE_KEY);
  }
}
