import { describe, expect, it } from 'vitest';
import { makeSnapshot, OfflineStore, stateFromSnapshot } from './offline';
import { emptyState, mergeHistory, mergeNewer, replaceHistory, replaceWithWindow, setConversations } from './chat';
import { conv, MemoryStorage, msg } from './testutil';
import type { Me } from './types';

const me: Me = { id: 'me', username: 'me', display_name: 'Me', avatar_url: null, bio: null, online: true, last_seen_at: null, bot: false, email: null, phone: null, created_at: '2026-01-01T00:00:00Z', notification_previews: true, system_admin: false };

describe('offline copy', () => {
  it('keeps recent conversations and their newest messages, and shows them again', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'c1' }), conv({ id: 'c2' })]);
    s = mergeHistory(s, 'c1', Array.from({ length: 60 }, (_, i) => msg({ seq: i + 1 })), true);
    const snap = makeSnapshot(me, s, { maxMessages: 40 });
    expect(snap.conversations.length).toBe(2);
    expect(snap.messages.c1.length).toBe(40);
    expect(snap.messages.c1[0].seq).toBe(21);
    expect('status' in snap.messages.c1[0]).toBe(false);
    const store = new OfflineStore(new MemoryStorage());
    store.save(snap);
    expect(store.load('other')).toBeNull();
    const back = stateFromSnapshot(store.load('me')!);
    expect(back.me).toBe('me');
    expect(back.messages.c1.map((m) => m.seq).slice(0, 2)).toEqual([21, 22]);
    expect(back.messages.c1[0].status).toBe('sent');
    store.clear();
    expect(store.load()).toBeNull();
  });
});

describe('history windows (jump to a message)', () => {
  const base = () => mergeHistory(setConversations(emptyState('me'), [conv({ id: 'c1' })]), 'c1', [msg({ seq: 90 }), msg({ seq: 91 })], true);
  it('a window replaces the list and remembers the gap; newer pages close it', () => {
    let s = replaceWithWindow(base(), 'c1', [msg({ seq: 10 }), msg({ seq: 11 }), msg({ seq: 12 })], { hasOlder: true, hasNewer: true });
    expect(s.messages.c1.map((m) => m.seq)).toEqual([10, 11, 12]);
    expect(s.gapAfter.c1).toBe(12);
    expect(s.hasMore.c1).toBe(true);
    s = mergeNewer(s, 'c1', [msg({ seq: 13 }), msg({ seq: 14 })], true);
    expect(s.gapAfter.c1).toBe(14);
    s = mergeNewer(s, 'c1', [msg({ seq: 15 })], false);
    expect(s.gapAfter.c1).toBeUndefined();
    expect(s.messages.c1.map((m) => m.seq)).toEqual([10, 11, 12, 13, 14, 15]);
  });
  it('the latest page replaces a window but keeps live messages newer than it', () => {
    let s = replaceWithWindow(base(), 'c1', [msg({ seq: 10 })], { hasOlder: false, hasNewer: true });
    s = replaceHistory(s, 'c1', [msg({ seq: 90 }), msg({ seq: 91 })], true);
    expect(s.messages.c1.map((m) => m.seq)).toEqual([90, 91]);
    expect(s.gapAfter.c1).toBeUndefined();
    const live = mergeHistory(s, 'c1', [msg({ seq: 92 })], null);
    expect(replaceHistory(live, 'c1', [msg({ seq: 90 }), msg({ seq: 91 })], true).messages.c1.map((m) => m.seq)).toEqual([90, 91, 92]);
  });
});
