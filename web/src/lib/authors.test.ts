import { describe, expect, it } from 'vitest';
import { authorKey, authorName, isMine, messageBadge, userBadge, withBadge } from './authors';
import { groupMessages } from './chat';
import type { LocalMessage } from './types';

const msg = (seq: number, sender: string, hook: { id: string; name: string } | null = null): LocalMessage => ({
  id: `m${seq}`, conversation_id: 'c', seq, sender_id: sender, client_id: `k${seq}`, kind: 'text', body: 'x', attachments: [], reply_to_seq: null,
  created_at: '2026-12-07T10:00:00Z', edited_at: null, deleted: false, reactions: [], mentions: [], via_webhook: hook, status: 'sent',
});

describe('authors and badges', () => {
  it('a webhook post is shown under the webhook, not as mine', () => {
    const hooked = msg(1, 'me', { id: 'h1', name: 'CI' });
    expect(isMine(hooked, 'me')).toBe(false);
    expect(isMine(msg(2, 'me'), 'me')).toBe(true);
    expect(authorName(hooked, 'me', () => 'Ann')).toBe('CI');
    expect(authorName(msg(2, 'me'), 'me', () => 'Ann')).toBe('You');
    expect(authorName(msg(3, 'ann'), 'me', () => 'Ann')).toBe('Ann');
    expect(messageBadge(hooked, { bot: false })).toBe('webhook');
    expect(messageBadge(msg(4, 'echo'), { bot: true })).toBe('bot');
    expect(messageBadge(msg(5, 'ann'), undefined)).toBeNull();
    expect(userBadge({ bot: true })).toBe('bot');
    expect(withBadge('Echo', 'bot')).toBe('Echo (bot)');
    expect(withBadge('Ann', null)).toBe('Ann');
  });
  it('groups split between a person and the webhooks they made, and between webhook names', () => {
    expect(authorKey(msg(1, 'me', { id: 'h1', name: 'CI' }))).not.toBe(authorKey(msg(2, 'me', { id: 'h1', name: 'Deploy' })));
    const list = [msg(1, 'me'), msg(2, 'me', { id: 'h1', name: 'CI' }), msg(3, 'me', { id: 'h1', name: 'CI' }), msg(4, 'me', { id: 'h1', name: 'Deploy' }), msg(5, 'me')];
    const groups = groupMessages(list, 'me', null, () => 'd');
    expect(groups.map((g) => [g.messages.map((m) => m.seq), g.mine, g.webhook?.name ?? null])).toEqual([
      [[1], true, null],
      [[2, 3], false, 'CI'],
      [[4], false, 'Deploy'],
      [[5], true, null],
    ]);
  });
});
