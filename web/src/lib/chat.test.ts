import { describe, expect, it } from 'vitest';
import {
  activeTypers,
  addPending,
  applyDeleted,
  applyMessage,
  applyPresence,
  applyRead,
  applyReadMarkers,
  applyUpdated,
  emptyState,
  failPending,
  groupMessages,
  markUnavailable,
  mergeHistory,
  messageStatus,
  setConversations,
  setTyping,
  sortedConversations,
  totalUnread,
  unavailableText,
  upsertConversation,
  visibleMessages,
} from './chat';
import { dayKey } from './format';
import { conv, msg } from './testutil';

const base = () => setConversations(emptyState('me'), [conv({ id: 'c1', peer: { id: 'bob', username: 'bob', display_name: 'Bob', avatar_url: null, bio: null, online: false, last_seen_at: null, bot: false } }), conv({ id: 'c2', kind: 'group', name: 'G' })]);

describe('applyMessage', () => {
  it('inserts in seq order and dedupes by seq', () => {
    let s = base();
    s = applyMessage(s, msg({ seq: 2 }));
    s = applyMessage(s, msg({ seq: 1 }));
    s = applyMessage(s, msg({ seq: 2 }));
    s = applyMessage(s, msg({ seq: 3 }));
    expect(s.messages.c1.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(s.conversations.c1.unread_count).toBe(3);
    expect(s.conversations.c1.last_message?.seq).toBe(3);
  });

  it('dedupes by client_id from the same sender', () => {
    let s = base();
    s = applyMessage(s, msg({ seq: 5, client_id: 'x', sender_id: 'me' }));
    s = applyMessage(s, msg({ seq: 6, client_id: 'x', sender_id: 'me' }));
    expect(s.messages.c1).toHaveLength(1);
  });

  it('does not count unread for the visible conversation or own messages', () => {
    let s = base();
    s = applyMessage(s, msg({ seq: 1 }), { activeVisible: 'c1' });
    s = applyMessage(s, msg({ seq: 2, sender_id: 'me' }));
    expect(s.conversations.c1.unread_count).toBe(0);
    expect(s.conversations.c1.last_read_seq).toBe(2);
  });

  it('does not count messages at or below the read marker', () => {
    let s = upsertConversation(base(), conv({ id: 'c1', last_read_seq: 10 }));
    s = applyMessage(s, msg({ seq: 9 }));
    expect(s.conversations.c1.unread_count).toBe(0);
    s = applyMessage(s, msg({ seq: 11 }));
    expect(s.conversations.c1.unread_count).toBe(1);
  });

  it('keeps the older last_message when history arrives out of order', () => {
    let s = applyMessage(base(), msg({ seq: 7 }));
    s = applyMessage(s, msg({ seq: 3 }));
    expect(s.conversations.c1.last_message?.seq).toBe(7);
  });

  it('clears the typing flag of the sender', () => {
    let s = setTyping(base(), 'c1', 'bob', true, 1000);
    expect(activeTypers(s, 'c1', 1001)).toEqual(['bob']);
    s = applyMessage(s, msg({ seq: 1 }));
    expect(activeTypers(s, 'c1', 1001)).toEqual([]);
  });
});

describe('pending and ack', () => {
  const item = { client_id: 'cid-1', conversation_id: 'c1', body: 'hi', reply_to_seq: null, created_at: '2026-01-01T00:00:00Z' };

  it('shows a pending message and replaces it with the acked one', () => {
    let s = addPending(base(), item);
    expect(visibleMessages(s, 'c1').map((m) => m.status)).toEqual(['sending']);
    s = addPending(s, item); // resend: no duplicate
    expect(visibleMessages(s, 'c1')).toHaveLength(1);
    s = applyMessage(s, msg({ seq: 4, sender_id: 'me', client_id: 'cid-1', body: 'hi' }));
    const v = visibleMessages(s, 'c1');
    expect(v).toHaveLength(1);
    expect(v[0].seq).toBe(4);
    expect(messageStatus(s, v[0])).toBe('sent');
    // A later echo of the same message (`message` event) is ignored.
    s = applyMessage(s, msg({ seq: 4, sender_id: 'me', client_id: 'cid-1', body: 'hi' }));
    expect(visibleMessages(s, 'c1')).toHaveLength(1);
  });

  it('marks a refused message failed', () => {
    let s = addPending(base(), item);
    s = failPending(s, 'cid-1', 'nope');
    expect(visibleMessages(s, 'c1')[0].status).toBe('failed');
  });

  it('becomes read when the peer read marker reaches its seq', () => {
    let s = applyMessage(base(), msg({ seq: 4, sender_id: 'me', client_id: 'a' }));
    const m = () => s.messages.c1[0];
    expect(messageStatus(s, m())).toBe('sent');
    s = applyRead(s, 'c1', 'bob', 3);
    expect(messageStatus(s, m())).toBe('sent');
    s = applyRead(s, 'c1', 'bob', 4);
    expect(messageStatus(s, m())).toBe('read');
    s = applyRead(s, 'c1', 'bob', 2); // never backwards
    expect(messageStatus(s, m())).toBe('read');
  });

  it('reads the peer marker from conversation data', () => {
    let s = applyMessage(base(), msg({ seq: 4, sender_id: 'me', client_id: 'a' }));
    s = upsertConversation(s, { ...s.conversations.c1, peer_last_read_seq: 4 });
    expect(messageStatus(s, s.messages.c1[0])).toBe('read');
  });
});

describe('read state after a reload', () => {
  const bob = { id: 'bob', username: 'bob', display_name: 'Bob', avatar_url: null, bio: null, online: false, last_seen_at: null, bot: false };
  const mine = (seq: number) => msg({ seq, sender_id: 'me', client_id: `k${seq}` });

  it('direct: peer_last_read_seq from GET /conversations marks my older messages read', () => {
    // A fresh page: empty state, the conversation list first, then the history.
    let s = setConversations(emptyState('me'), [conv({ id: 'c1', peer: bob, peer_last_read_seq: 2, last_read_seq: 3 })]);
    s = mergeHistory(s, 'c1', [mine(3), mine(2), mine(1)], false);
    expect(s.messages.c1.map((m) => messageStatus(s, m))).toEqual(['read', 'read', 'sent']);
  });

  it('direct: history first, conversation list after, gives the same result', () => {
    let s = mergeHistory(emptyState('me'), 'c1', [mine(1), mine(2)], false);
    s = setConversations(s, [conv({ id: 'c1', peer: bob, peer_last_read_seq: 1 })]);
    expect(s.messages.c1.map((m) => messageStatus(s, m))).toEqual(['read', 'sent']);
  });

  it('direct: a stale list or conversation.updated never moves the marker back', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'c1', peer: bob, peer_last_read_seq: 5 })]);
    s = applyRead(s, 'c1', 'bob', 6);
    s = setConversations(s, [conv({ id: 'c1', peer: bob, peer_last_read_seq: 4 })]);
    s = upsertConversation(s, conv({ id: 'c1', peer: bob, peer_last_read_seq: 3 }));
    expect(s.readMarkers.c1.bob).toBe(6);
  });

  it('direct: without the extension, messages stay "sent" until a live read event', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'c1', peer: bob })]);
    s = mergeHistory(s, 'c1', [mine(1)], false);
    expect(messageStatus(s, s.messages.c1[0])).toBe('sent');
    s = applyRead(s, 'c1', 'bob', 1);
    expect(messageStatus(s, s.messages.c1[0])).toBe('read');
  });

  it('group: member last_read_seq marks my messages read once another member has read them', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'g1', kind: 'group', name: 'G', member_count: 3 })]);
    s = mergeHistory(s, 'g1', [mine(1), mine(2), mine(3)].map((m) => ({ ...m, conversation_id: 'g1' })), false);
    // My own marker does not count as "read by someone".
    s = applyReadMarkers(s, 'g1', [
      { user_id: 'me', seq: 3 },
      { user_id: 'bob', seq: 1 },
      { user_id: 'carol', seq: 2 },
    ]);
    expect(s.readMarkers.g1.me).toBeUndefined();
    expect(s.messages.g1.map((m) => messageStatus(s, m))).toEqual(['read', 'read', 'sent']);
    // Forward only; a missing marker (server without the extension) changes nothing.
    const same = applyReadMarkers(s, 'g1', [{ user_id: 'carol', seq: 1 }, { user_id: 'bob', seq: undefined }]);
    expect(same).toBe(s);
    s = applyReadMarkers(s, 'g1', [{ user_id: 'bob', seq: 3 }]);
    expect(messageStatus(s, s.messages.g1[2])).toBe('read');
    expect(s.readMarkers.g1).toEqual({ bob: 3, carol: 2 });
  });
});

describe('updates, deletes, reads', () => {
  it('applies message.updated and message.deleted', () => {
    let s = applyMessage(base(), msg({ seq: 1 }));
    s = applyUpdated(s, msg({ seq: 1, body: 'edited', edited_at: '2026-01-01T13:00:00Z' }));
    expect(s.messages.c1[0].body).toBe('edited');
    expect(s.conversations.c1.last_message?.body).toBe('edited');
    s = applyDeleted(s, 'c1', 1);
    expect(s.messages.c1[0]).toMatchObject({ deleted: true, body: '', seq: 1 });
    expect(s.conversations.c1.last_message?.deleted).toBe(true);
  });

  it('own read event clears unread', () => {
    let s = base();
    for (let i = 1; i <= 3; i++) s = applyMessage(s, msg({ seq: i }));
    expect(totalUnread(s)).toBe(3);
    s = applyRead(s, 'c1', 'me', 2);
    expect(s.conversations.c1.unread_count).toBe(1);
    s = applyRead(s, 'c1', 'me', 3);
    expect(totalUnread(s)).toBe(0);
  });

  it('history merge dedupes and records hasMore', () => {
    let s = applyMessage(base(), msg({ seq: 10 }));
    s = mergeHistory(s, 'c1', [msg({ seq: 10 }), msg({ seq: 9 }), msg({ seq: 8 })], true);
    expect(s.messages.c1.map((m) => m.seq)).toEqual([8, 9, 10]);
    expect(s.hasMore.c1).toBe(true);
  });
});

describe('conversation list', () => {
  it('sorts by latest activity and sums unread', () => {
    let s = base();
    s = applyMessage(s, msg({ seq: 1, conversation_id: 'c2', created_at: '2026-02-01T00:00:00Z' }));
    s = applyMessage(s, msg({ seq: 1, conversation_id: 'c1', created_at: '2026-01-05T00:00:00Z' }));
    expect(sortedConversations(s).map((c) => c.id)).toEqual(['c2', 'c1']);
    s = applyMessage(s, msg({ seq: 2, conversation_id: 'c1', created_at: '2026-03-01T00:00:00Z' }));
    expect(sortedConversations(s).map((c) => c.id)).toEqual(['c1', 'c2']);
    expect(totalUnread(s)).toBe(3);
  });

  it('updates presence of direct peers', () => {
    const s = applyPresence(base(), 'bob', true, null);
    expect(s.conversations.c1.peer?.online).toBe(true);
  });

  it('typing expires', () => {
    const s = setTyping(base(), 'c1', 'bob', true, 0);
    expect(activeTypers(s, 'c1', 4000)).toEqual(['bob']);
    expect(activeTypers(s, 'c1', 6000)).toEqual([]);
    expect(activeTypers(setTyping(s, 'c1', 'bob', false), 'c1', 1)).toEqual([]);
  });
});

describe('groupMessages', () => {
  it('groups by sender and day and places the new-messages divider', () => {
    const list = [
      msg({ seq: 1, sender_id: 'me' }),
      msg({ seq: 2, sender_id: 'me' }),
      msg({ seq: 3, sender_id: 'bob' }),
      msg({ seq: 4, sender_id: 'bob' }),
      msg({ seq: 5, sender_id: 'bob', created_at: '2026-01-03T10:00:00Z' }),
    ].map((m) => ({ ...m, status: 'sent' as const }));
    const g = groupMessages(list, 'me', 3, dayKey);
    expect(g.map((x) => x.messages.map((m) => m.seq))).toEqual([[1, 2], [3], [4], [5]]);
    expect(g.map((x) => x.newDivider)).toEqual([false, false, true, false]);
    expect(g.map((x) => x.newDay)).toEqual([true, false, false, true]);
    expect(g[0].mine).toBe(true);
  });
});

describe('markUnavailable (removed from a group, or a stale link)', () => {
  it('forgets the conversation and keeps the group name for the chat to show', () => {
    let s = base();
    s = applyMessage(s, msg({ seq: 1, conversation_id: 'c2' }));
    s = addPending(s, { client_id: 'p1', conversation_id: 'c2', body: 'lost', reply_to_seq: null, created_at: '2026-01-01T00:00:00Z' });
    s = markUnavailable(s, 'c2');
    expect(s.conversations.c2).toBeUndefined();
    expect(s.messages.c2).toBeUndefined();
    expect(s.pending.c2).toBeUndefined();
    expect(s.unavailable.c2).toEqual({ name: 'G' });
    expect(unavailableText(s.unavailable.c2)).toBe('You are no longer a member of G');
    expect(s.conversations.c1).toBeDefined();
  });

  it('without a known name (a link to a conversation never seen here) says it is not available', () => {
    const s = markUnavailable(base(), 'zzz');
    expect(s.unavailable.zzz).toEqual({ name: null });
    expect(unavailableText(s.unavailable.zzz)).toBe('This conversation is not available');
  });

  it('a later 404 for the same conversation keeps the name learnt at the removal', () => {
    const s = markUnavailable(markUnavailable(base(), 'c2'), 'c2');
    expect(s.unavailable.c2).toEqual({ name: 'G' });
  });

  it('a direct chat is never "no longer a member of <peer>"', () => {
    expect(markUnavailable(base(), 'c1').unavailable.c1).toEqual({ name: null });
  });

  it('is cleared when the conversation comes back (added again, joined)', () => {
    let s = markUnavailable(base(), 'c2');
    s = upsertConversation(s, conv({ id: 'c2', kind: 'group', name: 'G' }));
    expect(s.unavailable.c2).toBeUndefined();
    expect(s.conversations.c2.name).toBe('G');
  });
});
