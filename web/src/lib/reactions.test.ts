import { describe, expect, it } from 'vitest';
import { applyReaction, hasMine, keepMine, myReactionCount, reactionLabel, reactorsText } from './reactions';
import { applyMessage, applyReactionEvent, applyUpdated, emptyState, mergeHistory, setConversations, withMyReactions } from './chat';
import { conv, msg } from './testutil';

describe('applyReaction', () => {
  it('adds a new emoji last and counts others', () => {
    let r = applyReaction([], '👍', true, false);
    expect(r).toEqual([{ emoji: '👍', count: 1, me: false }]);
    r = applyReaction(r, '❤️', true, true);
    r = applyReaction(r, '👍', true, false);
    expect(r).toEqual([
      { emoji: '👍', count: 2, me: false },
      { emoji: '❤️', count: 1, me: true },
    ]);
  });
  it('is idempotent for my own reactions (optimistic toggle, then the echo)', () => {
    let r = applyReaction([], '👍', true, true);
    r = applyReaction(r, '👍', true, true);
    expect(r).toEqual([{ emoji: '👍', count: 1, me: true }]);
    r = applyReaction(r, '👍', false, true);
    expect(r).toEqual([]);
    expect(applyReaction(r, '👍', false, true)).toEqual([]);
  });
  it('drops a chip at zero and keeps mine when others leave', () => {
    let r = [{ emoji: '😂', count: 2, me: true }];
    r = applyReaction(r, '😂', false, false);
    expect(r).toEqual([{ emoji: '😂', count: 1, me: true }]);
    expect(applyReaction([{ emoji: '😂', count: 1, me: false }], '😂', false, false)).toEqual([]);
    expect(applyReaction([], '😂', false, false)).toEqual([]);
  });
  it('mine from another device moves the count once', () => {
    const r = applyReaction([{ emoji: '🙏', count: 1, me: false }], '🙏', true, true);
    expect(r).toEqual([{ emoji: '🙏', count: 2, me: true }]);
  });
});

describe('keepMine and helpers', () => {
  it('keeps my state when a broadcast says me=false', () => {
    expect(keepMine([{ emoji: '👍', count: 3, me: false }, { emoji: '😮', count: 1, me: false }], [{ emoji: '👍', count: 2, me: true }])).toEqual([
      { emoji: '👍', count: 3, me: true },
      { emoji: '😮', count: 1, me: false },
    ]);
    expect(keepMine(undefined, undefined)).toEqual([]);
  });
  it('counts and names', () => {
    const r = [{ emoji: '👍', count: 2, me: true }, { emoji: '❤️', count: 1, me: false }];
    expect(hasMine(r, '👍')).toBe(true);
    expect(hasMine(r, '❤️')).toBe(false);
    expect(myReactionCount(r)).toBe(1);
    expect(reactionLabel(r[0])).toBe('👍 2 reactions, including you');
    expect(reactionLabel(r[1])).toBe('❤️ 1 reaction');
    expect(reactionLabel({ emoji: '😂', count: 1, me: true })).toBe('😂 1 reaction, yours');
  });
  it('says who reacted', () => {
    expect(reactorsText(['You'])).toBe('You');
    expect(reactorsText(['You', 'Ann'])).toBe('Ann and you');
    expect(reactorsText(['Ann', 'Bob', 'Cy'])).toBe('Ann, Bob and Cy');
    expect(reactorsText(['A', 'B', 'C', 'D', 'E', 'F'])).toBe('A, B, C and 3 others');
  });
});

describe('reactions in the chat state', () => {
  const start = () => mergeHistory(setConversations(emptyState('me'), [conv({ id: 'c1' })]), 'c1', [msg({ seq: 1 }), msg({ seq: 2 })], false);
  it('a reaction event updates the message (and last_message)', () => {
    let s = applyMessage(start(), msg({ seq: 3 }));
    s = applyReactionEvent(s, 'c1', 3, '👍', true, false);
    s = applyReactionEvent(s, 'c1', 3, '👍', true, true);
    expect(s.messages.c1.find((m) => m.seq === 3)!.reactions).toEqual([{ emoji: '👍', count: 2, me: true }]);
    expect(s.conversations.c1.last_message!.reactions).toEqual([{ emoji: '👍', count: 2, me: true }]);
    // A message not loaded here is left alone.
    expect(applyReactionEvent(s, 'c1', 99, '👍', true, false)).toBe(s);
  });
  it('message.updated keeps my reaction state', () => {
    let s = applyReactionEvent(start(), 'c1', 2, '❤️', true, true);
    const edited = msg({ seq: 2, body: 'edited', edited_at: '2026-01-02T00:00:00Z', reactions: [{ emoji: '❤️', count: 2, me: false }] });
    s = applyUpdated(s, withMyReactions(s, edited));
    expect(s.messages.c1[1].reactions).toEqual([{ emoji: '❤️', count: 2, me: true }]);
    expect(s.messages.c1[1].body).toBe('edited');
  });
});
