import { describe, expect, it } from 'vitest';
import { filterMentions, insertMention, mentionAt, mentionsMe, optionName, splitMentions } from './mentions';
import { applyMessage, applyRead, emptyState, setConversations } from './chat';
import { conv, msg } from './testutil';
import type { User } from './types';

const u = (id: string, username: string, display_name: string): User => ({ id, username, display_name, avatar_url: null, bio: null, online: false, last_seen_at: null, bot: false });
const people = [u('1', 'alice', 'Alice Example'), u('2', 'bob', 'Bob Builder'), u('3', 'zoe', 'Zoé Álvarez'), u('me', 'me_user', 'Me')];

describe('mentionAt', () => {
  it('finds the @name at the caret', () => {
    expect(mentionAt('@', 1)).toEqual({ start: 0, query: '' });
    expect(mentionAt('hi @al', 6)).toEqual({ start: 3, query: 'al' });
    expect(mentionAt('hi @al there', 6)).toEqual({ start: 3, query: 'al' });
    expect(mentionAt('(@bo', 4)).toEqual({ start: 1, query: 'bo' });
  });
  it('is not a mention inside an email or after @@', () => {
    expect(mentionAt('mail someone@bob', 16)).toBeNull();
    expect(mentionAt('@@bob', 5)).toBeNull();
    expect(mentionAt('hello', 5)).toBeNull();
    expect(mentionAt('hi @al there', 12)).toBeNull();
  });
});

describe('filterMentions', () => {
  it('matches usernames and name words, accents ignored, never me', () => {
    expect(filterMentions(people, 'b', { me: 'me' }).map(optionName)).toEqual(['bob']);
    expect(filterMentions(people, 'ex', { me: 'me' }).map(optionName)).toEqual(['alice']);
    expect(filterMentions(people, 'alv', { me: 'me' }).map(optionName)).toEqual(['zoe']);
    expect(filterMentions(people, 'ZOE', { me: 'me' }).map(optionName)).toEqual(['zoe']);
    expect(filterMentions(people, '', { me: 'me' }).map(optionName)).toEqual(['alice', 'bob', 'zoe']);
    expect(filterMentions(people, 'me', { me: 'me' })).toEqual([]);
  });
  it('offers @all only to admins', () => {
    expect(filterMentions(people, 'a', { me: 'me', canAll: true }).map(optionName)).toEqual(['all', 'alice', 'zoe']);
    expect(filterMentions(people, 'a', { me: 'me' }).map(optionName)).toEqual(['alice', 'zoe']);
    expect(filterMentions(people, '', { me: 'me', canAll: true }).map(optionName).at(-1)).toBe('all');
  });
});

describe('insertMention and splitMentions', () => {
  it('inserts the name and a space', () => {
    expect(insertMention('hi @al', 3, 6, 'alice')).toEqual({ text: 'hi @alice ', caret: 10 });
    expect(insertMention('hi @al see', 3, 6, 'alice')).toEqual({ text: 'hi @alice see', caret: 10 });
  });
  it('splits tokens by the server rule', () => {
    expect(splitMentions('thanks @Bob. and @all!')).toEqual([
      { type: 'text', text: 'thanks ' },
      { type: 'mention', text: '@Bob', name: 'bob' },
      { type: 'text', text: '. and ' },
      { type: 'mention', text: '@all', name: 'all' },
      { type: 'text', text: '!' },
    ]);
    expect(splitMentions('someone@bob.com')).toEqual([{ type: 'text', text: 'someone@bob.com' }]);
    expect(splitMentions('@alice')).toEqual([{ type: 'mention', text: '@alice', name: 'alice' }]);
  });
  it('mentionsMe', () => {
    expect(mentionsMe({ mentions: ['a', 'me'] }, 'me')).toBe(true);
    expect(mentionsMe({ mentions: [] }, 'me')).toBe(false);
  });
});

describe('unread mentions in the list', () => {
  it('count live mentions of me in chats not on screen, clear when read', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'c1' }), conv({ id: 'c2' })]);
    s = applyMessage(s, msg({ seq: 1, mentions: ['me'] }));
    s = applyMessage(s, msg({ seq: 2, mentions: ['other'] }));
    s = applyMessage(s, msg({ seq: 1, conversation_id: 'c2', mentions: ['me'] }), { activeVisible: 'c2' });
    expect(s.conversations.c1.unread_mentions).toBe(1);
    expect(s.conversations.c1.unread_count).toBe(2);
    expect(s.conversations.c2.unread_mentions).toBe(0);
    s = applyRead(s, 'c1', 'me', 2);
    expect(s.conversations.c1.unread_mentions).toBe(0);
  });
});

describe('mute with mentions', async () => {
  const { setMuted } = await import('./chat');
  it('mute_mentions is true when mentions are muted too (MuteState.mentions false)', () => {
    let s = setConversations(emptyState('me'), [conv({ id: 'c1' })]);
    s = setMuted(s, 'c1', '9999-12-31T23:59:59Z', false);
    expect(s.conversations.c1.mute_mentions).toBe(true);
    s = setMuted(s, 'c1', '9999-12-31T23:59:59Z', true);
    expect(s.conversations.c1.mute_mentions).toBe(false);
    s = setMuted(s, 'c1', null);
    expect(s.conversations.c1.mute_mentions).toBeUndefined();
  });
});
