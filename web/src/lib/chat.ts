import { authorKey, isMine } from './authors';
import { applyReaction, keepMine } from './reactions';
import type { Conversation, LocalMessage, Message, OutboxItem, User, WebhookRef } from './types';

/** Everything the client knows about conversations and messages. Updated only through the pure functions below. */
export interface ChatState {
  me: string | null;
  conversations: Record<string, Conversation>;
  /** Committed messages per conversation, sorted by seq, unique by seq. */
  messages: Record<string, LocalMessage[]>;
  /** Messages written here and not yet acknowledged, per conversation, in the order written. */
  pending: Record<string, LocalMessage[]>;
  /** Whether older history exists beyond the oldest loaded message. */
  hasMore: Record<string, boolean>;
  /** Read markers: conversation → user → seq. */
  readMarkers: Record<string, Record<string, number>>;
  /** Typing: conversation → user → expiry (ms epoch). */
  typing: Record<string, Record<string, number>>;
  /**
   * Conversations this user cannot read (any more): removed from the group (`member.removed`
   * for me), or a link the server answers with 404. The chat says so instead of loading
   * forever; `name` is the group's name when it was known here.
   */
  unavailable: Record<string, { name: string | null }>;
  /**
   * Conversations whose loaded messages stop short of the newest: after a jump to an older
   * message (search), messages after this seq may be missing until loaded (`loadNewer`).
   */
  gapAfter: Record<string, number>;
}

export const TYPING_TTL_MS = 5_000;

export function emptyState(me: string | null = null): ChatState {
  return { me, conversations: {}, messages: {}, pending: {}, hasMore: {}, readMarkers: {}, typing: {}, unavailable: {}, gapAfter: {} };
}

export interface ViewContext {
  /** The conversation open on screen and visible (its new messages count as read). */
  activeVisible: string | null;
}

function markersFromConversation(c: Conversation): Record<string, number> {
  const out: Record<string, number> = {};
  if (c.kind === 'direct' && c.peer && typeof c.peer_last_read_seq === 'number') out[c.peer.id] = c.peer_last_read_seq;
  return out;
}

function mergeMarkers(prev: Record<string, number> | undefined, next: Record<string, number>): Record<string, number> {
  const out = { ...(prev ?? {}) };
  for (const [u, s] of Object.entries(next)) out[u] = Math.max(out[u] ?? 0, s);
  return out;
}

/** Insert or replace a conversation (from REST or `conversation.updated`). */
export function upsertConversation(s: ChatState, c: Conversation): ChatState {
  const prev = s.conversations[c.id];
  let merged: Conversation = prev ? { ...prev, ...c } : c;
  // Never move last_message backwards (a stale REST answer racing a live event).
  if (prev?.last_message && (!c.last_message || c.last_message.seq < prev.last_message.seq)) {
    merged = { ...merged, last_message: prev.last_message };
  }
  if (prev && c.last_read_seq < prev.last_read_seq) merged = { ...merged, last_read_seq: prev.last_read_seq };
  // A full Conversation without `muted_until` is not muted (the server omits it then).
  if (!('muted_until' in c)) merged = { ...merged, muted_until: undefined, mute_mentions: undefined };
  const markers = markersFromConversation(c);
  const readMarkers = Object.keys(markers).length
    ? { ...s.readMarkers, [c.id]: mergeMarkers(s.readMarkers[c.id], markers) }
    : s.readMarkers;
  // Readable again (added back to the group, or joined it).
  let unavailable = s.unavailable;
  if (unavailable[c.id]) {
    unavailable = { ...unavailable };
    delete unavailable[c.id];
  }
  return { ...s, conversations: { ...s.conversations, [c.id]: merged }, readMarkers, unavailable };
}

/** Replace the whole list (initial load / after reconnect); drops conversations no longer listed. */
export function setConversations(s: ChatState, list: Conversation[]): ChatState {
  let next: ChatState = { ...s, conversations: {} };
  for (const c of list) {
    if (s.conversations[c.id]) next = { ...next, conversations: { ...next.conversations, [c.id]: s.conversations[c.id] } };
    next = upsertConversation(next, c);
  }
  return next;
}

/**
 * Records a mute change (`mutedUntil` null = unmuted, and `mentions` = mentions still notify,
 * as in `MuteState`). The Conversation's `mute_mentions` is true when mentions are muted too.
 */
export function setMuted(s: ChatState, id: string, mutedUntil: string | null, mentions = true): ChatState {
  const c = s.conversations[id];
  if (!c) return s;
  const next: Conversation = { ...c, muted_until: mutedUntil ?? undefined, mute_mentions: mutedUntil ? !mentions : undefined };
  return { ...s, conversations: { ...s.conversations, [id]: next } };
}

/**
 * This user can no longer read the conversation (removed from the group, or the server says it
 * does not exist for them): forget what was loaded of it and remember it is unavailable, keeping
 * the group's name when one is known (now, or from an earlier removal).
 */
export function markUnavailable(s: ChatState, id: string, name: string | null = null): ChatState {
  const c = s.conversations[id];
  const known = name ?? (c?.kind === 'group' ? conversationTitle(c) : null) ?? s.unavailable[id]?.name ?? null;
  const without = <T>(r: Record<string, T>): Record<string, T> => {
    if (!(id in r)) return r;
    const n = { ...r };
    delete n[id];
    return n;
  };
  return {
    ...s,
    conversations: without(s.conversations),
    messages: without(s.messages),
    pending: without(s.pending),
    hasMore: without(s.hasMore),
    readMarkers: without(s.readMarkers),
    typing: without(s.typing),
    gapAfter: without(s.gapAfter),
    unavailable: { ...s.unavailable, [id]: { name: known } },
  };
}

/** What the chat view shows for a conversation that cannot be read. */
export function unavailableText(u: { name: string | null }): string {
  return u.name ? `You are no longer a member of ${u.name}` : 'This conversation is not available';
}

export function removeConversation(s: ChatState, id: string): ChatState {
  const conversations = { ...s.conversations };
  delete conversations[id];
  return { ...s, conversations };
}

function activity(c: Conversation): string {
  return c.last_message?.created_at ?? c.created_at;
}

/** Most recent activity first. */
export function sortedConversations(s: ChatState): Conversation[] {
  return Object.values(s.conversations).sort((a, b) => (activity(a) < activity(b) ? 1 : activity(a) > activity(b) ? -1 : 0));
}

export function totalUnread(s: ChatState): number {
  return Object.values(s.conversations).reduce((n, c) => n + (c.unread_count || 0), 0);
}

function insertSorted(list: LocalMessage[], m: LocalMessage): { list: LocalMessage[]; added: boolean } {
  const i = list.findIndex((x) => x.seq === m.seq);
  if (i >= 0) {
    // Same seq already known: keep the newer view of it (edits/deletes win).
    const cur = list[i];
    const newer = m.deleted || (m.edited_at && m.edited_at !== cur.edited_at);
    if (!newer) return { list, added: false };
    const copy = list.slice();
    copy[i] = { ...cur, ...m, status: 'sent' };
    return { list: copy, added: false };
  }
  if (list.some((x) => x.client_id === m.client_id && x.sender_id === m.sender_id)) {
    return { list, added: false };
  }
  const copy = list.slice();
  let j = copy.length;
  while (j > 0 && copy[j - 1].seq > m.seq) j--;
  copy.splice(j, 0, m);
  return { list: copy, added: true };
}

/**
 * A message from an event sent to many (`message`, `message.updated`, `ack`): its reactions'
 * `me` is always false there, so what this client knows of its own reactions is kept.
 */
export function withMyReactions(s: ChatState, msg: Message): Message {
  const known = (s.messages[msg.conversation_id] ?? []).find((x) => x.seq === msg.seq);
  const prev = known ?? (s.conversations[msg.conversation_id]?.last_message?.seq === msg.seq ? s.conversations[msg.conversation_id].last_message : null);
  return { ...msg, reactions: keepMine(msg.reactions, prev?.reactions), mentions: msg.mentions ?? [] };
}

/** A committed message arrived (`message` event, `ack`, REST answer). Deduped by seq and client_id. */
export function applyMessage(s: ChatState, msg: Message, ctx: ViewContext = { activeVisible: null }): ChatState {
  const cid = msg.conversation_id;
  const local: LocalMessage = { ...msg, status: 'sent' };
  const { list, added } = insertSorted(s.messages[cid] ?? [], local);
  let next: ChatState = { ...s, messages: { ...s.messages, [cid]: list } };
  // The pending copy (same client_id) is replaced by the committed one.
  if (s.pending[cid]?.some((p) => p.client_id === msg.client_id)) {
    next.pending = { ...s.pending, [cid]: s.pending[cid].filter((p) => p.client_id !== msg.client_id) };
  }
  // Someone who sends a message has stopped typing.
  if (s.typing[cid]?.[msg.sender_id]) {
    const t = { ...s.typing[cid] };
    delete t[msg.sender_id];
    next.typing = { ...s.typing, [cid]: t };
  }
  const conv = s.conversations[cid];
  if (conv) {
    let c = conv;
    const isNewest = !c.last_message || msg.seq >= c.last_message.seq;
    if (isNewest) c = { ...c, last_message: msg };
    const fromMe = msg.sender_id === s.me;
    if (fromMe) {
      // Writing implies having read everything before.
      if (msg.seq > c.last_read_seq) c = { ...c, last_read_seq: msg.seq, unread_count: 0 };
    } else if (added && msg.seq > c.last_read_seq && !msg.deleted) {
      if (ctx.activeVisible === cid) c = { ...c };
      else {
        c = { ...c, unread_count: (c.unread_count || 0) + 1 };
        // Someone mentioned me in a chat that is not on screen: the list shows "@".
        if (s.me && msg.mentions?.includes(s.me)) c = { ...c, unread_mentions: (c.unread_mentions || 0) + 1 };
      }
    }
    if (c !== conv) next = { ...next, conversations: { ...next.conversations, [cid]: c } };
  }
  return next;
}

/** `message.updated`: replace the message with the same seq. */
export function applyUpdated(s: ChatState, msg: Message): ChatState {
  const cid = msg.conversation_id;
  const list = s.messages[cid] ?? [];
  const i = list.findIndex((x) => x.seq === msg.seq);
  let next = s;
  if (i >= 0) {
    const copy = list.slice();
    copy[i] = { ...copy[i], ...msg, status: 'sent' };
    next = { ...s, messages: { ...s.messages, [cid]: copy } };
  }
  const conv = next.conversations[cid];
  if (conv?.last_message?.seq === msg.seq) {
    next = { ...next, conversations: { ...next.conversations, [cid]: { ...conv, last_message: msg } } };
  }
  return next;
}

/** `message.deleted` (for everyone): the seq stays, body emptied, marked deleted. */
export function applyDeleted(s: ChatState, cid: string, seq: number): ChatState {
  const list = s.messages[cid] ?? [];
  const i = list.findIndex((x) => x.seq === seq);
  let next = s;
  if (i >= 0) {
    const copy = list.slice();
    copy[i] = { ...copy[i], deleted: true, body: '', attachments: [] };
    next = { ...s, messages: { ...s.messages, [cid]: copy } };
  }
  const conv = next.conversations[cid];
  if (conv?.last_message?.seq === seq) {
    next = {
      ...next,
      conversations: { ...next.conversations, [cid]: { ...conv, last_message: { ...conv.last_message, deleted: true, body: '' } } },
    };
  }
  return next;
}

/** Deleted for me only: drop it from this client's view. */
export function removeMessageLocally(s: ChatState, cid: string, seq: number): ChatState {
  const list = s.messages[cid] ?? [];
  return { ...s, messages: { ...s.messages, [cid]: list.filter((m) => m.seq !== seq) } };
}

/** `read` event (or our own read). Markers only move forward. */
export function applyRead(s: ChatState, cid: string, userId: string, seq: number): ChatState {
  const markers = s.readMarkers[cid] ?? {};
  let next = s;
  if ((markers[userId] ?? 0) < seq) {
    next = { ...s, readMarkers: { ...s.readMarkers, [cid]: { ...markers, [userId]: seq } } };
  }
  if (userId === s.me) {
    const conv = next.conversations[cid];
    if (conv && seq >= conv.last_read_seq) {
      const lastSeq = conv.last_message?.seq ?? 0;
      const loaded = next.messages[cid] ?? [];
      let unread = 0;
      if (seq < lastSeq) {
        const known = loaded.filter((m) => m.seq > seq && m.sender_id !== s.me && !m.deleted).length;
        unread = Math.min(conv.unread_count || 0, Math.max(known, 0)) || Math.min(conv.unread_count || 0, lastSeq - seq);
      }
      // Mentions after the new marker: those still loaded and unread (never more than before).
      const mentionsLeft =
        seq >= lastSeq ? 0 : Math.min(conv.unread_mentions || 0, loaded.filter((m) => m.seq > seq && !!s.me && m.mentions?.includes(s.me)).length);
      next = { ...next, conversations: { ...next.conversations, [cid]: { ...conv, last_read_seq: seq, unread_count: unread, unread_mentions: mentionsLeft } } };
    }
  }
  return next;
}

/**
 * Read markers of several members at once (e.g. `last_read_seq` from `GET /groups/{id}/members`,
 * loaded after a reload). Markers only move forward; my own marker is left to `applyRead`.
 */
export function applyReadMarkers(s: ChatState, cid: string, list: { user_id: string; seq: number | null | undefined }[]): ChatState {
  const next: Record<string, number> = {};
  for (const { user_id, seq } of list) {
    if (user_id !== s.me && typeof seq === 'number' && seq > 0) next[user_id] = Math.max(next[user_id] ?? 0, seq);
  }
  const prev = s.readMarkers[cid] ?? {};
  if (!Object.entries(next).some(([u, seq]) => (prev[u] ?? 0) < seq)) return s;
  return { ...s, readMarkers: { ...s.readMarkers, [cid]: mergeMarkers(prev, next) } };
}

/** Older history from REST (any order); `hasMore` says whether to offer loading further back. */
export function mergeHistory(s: ChatState, cid: string, msgs: Message[], hasMore: boolean | null): ChatState {
  let list = s.messages[cid] ?? [];
  for (const m of msgs) list = insertSorted(list, (m as LocalMessage).status === 'sent' ? (m as LocalMessage) : { ...m, status: 'sent' }).list;
  const pending = s.pending[cid]?.filter((p) => !list.some((m) => m.client_id === p.client_id));
  return {
    ...s,
    messages: { ...s.messages, [cid]: list },
    pending: pending ? { ...s.pending, [cid]: pending } : s.pending,
    hasMore: hasMore === null ? s.hasMore : { ...s.hasMore, [cid]: hasMore },
  };
}

export function pendingFromOutbox(item: OutboxItem, me: string): LocalMessage {
  return {
    id: `local-${item.client_id}`,
    conversation_id: item.conversation_id,
    seq: 0,
    sender_id: me,
    client_id: item.client_id,
    kind: item.kind ?? 'text',
    body: item.body,
    attachments: item.attachments ?? [],
    reply_to_seq: item.reply_to_seq,
    created_at: item.created_at,
    edited_at: null,
    deleted: false,
    reactions: [],
    mentions: [],
    via_webhook: null,
    status: 'sending',
  };
}

/** A message was written here: show it at once as "sending". */
export function addPending(s: ChatState, item: OutboxItem): ChatState {
  if (!s.me) return s;
  const cid = item.conversation_id;
  const cur = s.pending[cid] ?? [];
  if (cur.some((p) => p.client_id === item.client_id)) {
    return { ...s, pending: { ...s.pending, [cid]: cur.map((p) => (p.client_id === item.client_id ? { ...p, status: 'sending', error: undefined } : p)) } };
  }
  if ((s.messages[cid] ?? []).some((m) => m.client_id === item.client_id)) return s;
  return { ...s, pending: { ...s.pending, [cid]: [...cur, pendingFromOutbox(item, s.me)] } };
}

export function failPending(s: ChatState, clientId: string, error: string): ChatState {
  const pending: Record<string, LocalMessage[]> = {};
  for (const [cid, list] of Object.entries(s.pending)) {
    pending[cid] = list.map((p) => (p.client_id === clientId ? { ...p, status: 'failed', error } : p));
  }
  return { ...s, pending };
}

export function dropPending(s: ChatState, clientId: string): ChatState {
  const pending: Record<string, LocalMessage[]> = {};
  for (const [cid, list] of Object.entries(s.pending)) pending[cid] = list.filter((p) => p.client_id !== clientId);
  return { ...s, pending };
}

export type MessageStatus = 'sending' | 'failed' | 'sent' | 'read';

/** State of one of my messages: sending → sent → read (some other member's marker ≥ seq). */
export function messageStatus(s: ChatState, m: LocalMessage): MessageStatus {
  if (m.status === 'sending' || m.status === 'failed') return m.status;
  const markers = s.readMarkers[m.conversation_id] ?? {};
  for (const [uid, seq] of Object.entries(markers)) if (uid !== s.me && seq >= m.seq) return 'read';
  return 'sent';
}

/** Committed then pending, for display. */
export function visibleMessages(s: ChatState, cid: string): LocalMessage[] {
  return [...(s.messages[cid] ?? []), ...(s.pending[cid] ?? [])];
}

export function setTyping(s: ChatState, cid: string, userId: string, typing: boolean, now = Date.now()): ChatState {
  if (userId === s.me) return s;
  const cur = { ...(s.typing[cid] ?? {}) };
  if (typing) cur[userId] = now + TYPING_TTL_MS;
  else delete cur[userId];
  return { ...s, typing: { ...s.typing, [cid]: cur } };
}

export function activeTypers(s: ChatState, cid: string, now = Date.now()): string[] {
  return Object.entries(s.typing[cid] ?? {})
    .filter(([, exp]) => exp > now)
    .map(([u]) => u);
}

/** `presence`: update the peer of direct conversations. */
export function applyPresence(s: ChatState, userId: string, online: boolean, lastSeen: string | null): ChatState {
  let changed = false;
  const conversations = { ...s.conversations };
  for (const c of Object.values(s.conversations)) {
    if (c.peer?.id === userId) {
      conversations[c.id] = { ...c, peer: { ...c.peer, online, last_seen_at: lastSeen ?? c.peer.last_seen_at } };
      changed = true;
    }
  }
  return changed ? { ...s, conversations } : s;
}

export function conversationTitle(c: Conversation): string {
  if (c.kind === 'direct') return c.peer ? c.peer.display_name || c.peer.username : 'Direct chat';
  return c.name || 'Unnamed group';
}

/** The avatar image of a conversation: the peer's for a direct chat, the group's otherwise. */
export function conversationAvatar(c: Conversation): string | null {
  return (c.kind === 'direct' ? c.peer?.avatar_url : c.avatar_url) ?? null;
}

export function displayName(u: User | undefined | null): string {
  return u ? u.display_name || u.username : 'Unknown';
}

export interface MessageGroup {
  key: string;
  day: string;
  senderId: string;
  /** Set when the messages came through an incoming webhook (shown under its name). */
  webhook: WebhookRef | null;
  mine: boolean;
  messages: LocalMessage[];
  /** Show the "new messages" divider before this group. */
  newDivider: boolean;
  /** First group of a new day: show the day header. */
  newDay: boolean;
}

/**
 * Groups consecutive messages by author (a sender, or a webhook) and day. `dividerAfterSeq` puts
 * a "new messages" divider before the first message from someone else with a higher seq.
 */
export function groupMessages(list: LocalMessage[], me: string | null, dividerAfterSeq: number | null, dayOf: (iso: string) => string): MessageGroup[] {
  const out: MessageGroup[] = [];
  let dividerPlaced = false;
  for (const m of list) {
    const day = dayOf(m.created_at);
    const needDivider =
      !dividerPlaced && dividerAfterSeq !== null && m.seq > dividerAfterSeq && m.sender_id !== me && m.status === 'sent';
    const last = out[out.length - 1];
    if (needDivider) dividerPlaced = true;
    if (last && authorKey(last.messages[0]) === authorKey(m) && last.day === day && !needDivider && m.kind !== 'system' && last.messages[0].kind !== 'system') {
      last.messages.push(m);
    } else {
      out.push({
        // Named by its first message, so a group keeps its key when older messages are added
        // before it (its DOM is kept, not rebuilt).
        key: m.seq ? `s${m.seq}` : `c${m.client_id}`,
        day,
        senderId: m.sender_id,
        webhook: m.via_webhook ?? null,
        mine: isMine(m, me),
        messages: [m],
        newDivider: needDivider,
        newDay: !last || last.day !== day,
      });
    }
  }
  return out;
}

export function maxSeq(s: ChatState, cid: string): number {
  const list = s.messages[cid] ?? [];
  const fromList = list.length ? list[list.length - 1].seq : 0;
  return Math.max(fromList, s.conversations[cid]?.last_message?.seq ?? 0);
}

/**
 * A reaction added or removed (`reaction` event, or my own toggle shown at once). `mine`: by the
 * current user. Messages not loaded here are left alone (their counts come with them).
 */
export function applyReactionEvent(s: ChatState, cid: string, seq: number, emoji: string, added: boolean, mine: boolean): ChatState {
  let next = s;
  const list = s.messages[cid];
  const i = list ? list.findIndex((m) => m.seq === seq) : -1;
  if (list && i >= 0) {
    const cur = list[i];
    const reactions = applyReaction(cur.reactions ?? [], emoji, added, mine);
    if (reactions !== cur.reactions) {
      const copy = list.slice();
      copy[i] = { ...cur, reactions };
      next = { ...next, messages: { ...next.messages, [cid]: copy } };
    }
  }
  const conv = next.conversations[cid];
  if (conv?.last_message?.seq === seq) {
    const lm = conv.last_message;
    const reactions = list && i >= 0 ? next.messages[cid][i].reactions : applyReaction(lm.reactions ?? [], emoji, added, mine);
    if (reactions !== lm.reactions) next = { ...next, conversations: { ...next.conversations, [cid]: { ...conv, last_message: { ...lm, reactions } } } };
  }
  return next;
}

/**
 * The messages around one (a jump from search): replaces what was loaded of the conversation,
 * remembers whether older ones exist and that newer ones may be missing after the window.
 */
export function replaceWithWindow(s: ChatState, cid: string, msgs: Message[], o: { hasOlder: boolean; hasNewer: boolean }): ChatState {
  const base: ChatState = { ...s, messages: { ...s.messages, [cid]: [] } };
  let next = mergeHistory(base, cid, msgs, o.hasOlder && msgs.length > 0);
  const list = next.messages[cid];
  const gapAfter = { ...next.gapAfter };
  if (o.hasNewer && list.length) gapAfter[cid] = list[list.length - 1].seq;
  else delete gapAfter[cid];
  next = { ...next, gapAfter };
  return next;
}

/** Newer messages loaded after a window (`after_seq`); `more` says whether the gap remains. */
export function mergeNewer(s: ChatState, cid: string, msgs: Message[], more: boolean): ChatState {
  const next = mergeHistory(s, cid, msgs, null);
  const gapAfter = { ...next.gapAfter };
  const newest = msgs.reduce((n, m) => Math.max(n, m.seq), gapAfter[cid] ?? 0);
  // Live messages after the gap are already here: the gap is closed once it reaches them.
  const list = next.messages[cid] ?? [];
  const after = list.filter((m) => m.seq > newest);
  if (!more || !msgs.length || (after.length && after[0].seq === newest + 1)) delete gapAfter[cid];
  else gapAfter[cid] = newest;
  return { ...next, gapAfter };
}

/** The latest page replaces what was loaded (a cached copy, or a window from a jump). */
export function replaceHistory(s: ChatState, cid: string, msgs: Message[], hasMore: boolean): ChatState {
  const gapAfter = { ...s.gapAfter };
  delete gapAfter[cid];
  // Live messages newer than the page (they arrived while it was on its way) stay.
  const newest = msgs.reduce((n, m) => Math.max(n, m.seq), 0);
  const prev = s.messages[cid] ?? [];
  const keep = prev.filter((m) => newest > 0 && m.seq > newest && s.gapAfter[cid] === undefined);
  // A message that did not change keeps its object (what is on screen is not drawn again).
  const bySeq = new Map(prev.map((m) => [m.seq, m]));
  const same = (a: LocalMessage, b: Message) =>
    a.id === b.id && a.body === b.body && a.edited_at === b.edited_at && a.deleted === b.deleted && a.status === 'sent' && JSON.stringify(a.reactions ?? []) === JSON.stringify(b.reactions ?? []) && JSON.stringify(a.mentions ?? []) === JSON.stringify(b.mentions ?? []) && a.attachments.length === b.attachments.length;
  const incoming: LocalMessage[] = msgs.map((m) => {
    const old = bySeq.get(m.seq);
    return old && same(old, m) ? old : { ...m, status: 'sent' };
  });
  return mergeHistory({ ...s, messages: { ...s.messages, [cid]: keep }, gapAfter }, cid, incoming, hasMore);
}
