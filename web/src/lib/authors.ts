// Who a message is shown as from, and the badges that say what kind of sender it is: a bot
// (`User.bot`), or an incoming webhook (`message.via_webhook`: the webhook's name is shown, not
// that of the person who made it, whose ID is the message's `sender_id`). Plain functions,
// unit-tested without a browser.
import type { Message, User } from './types';

export type Badge = 'bot' | 'webhook';

/** Messages from the same author are grouped together: a webhook (per name) is its own author. */
export function authorKey(m: Pick<Message, 'sender_id' | 'via_webhook'>): string {
  return m.via_webhook ? `hook:${m.via_webhook.id}:${m.via_webhook.name}` : m.sender_id;
}

/** Mine: written by me, not posted through a webhook I made (which is shown as from the webhook). */
export function isMine(m: Pick<Message, 'sender_id' | 'via_webhook'>, me: string | null): boolean {
  return !!me && m.sender_id === me && !m.via_webhook;
}

/** The badge of a user ("bot" for bots, none for people). */
export function userBadge(u: Pick<User, 'bot'> | null | undefined): Badge | null {
  return u?.bot ? 'bot' : null;
}

/** The badge of a message's author: "webhook", "bot" or none. */
export function messageBadge(m: Pick<Message, 'via_webhook'>, sender: Pick<User, 'bot'> | null | undefined): Badge | null {
  return m.via_webhook ? 'webhook' : userBadge(sender);
}

/**
 * The name a message is shown under: the webhook's name, "You", or the sender's name
 * (`senderName`, e.g. from the users known here).
 */
export function authorName(m: Pick<Message, 'sender_id' | 'via_webhook'>, me: string | null, senderName: (id: string) => string): string {
  if (m.via_webhook) return m.via_webhook.name.trim() || 'Webhook';
  if (me && m.sender_id === me) return 'You';
  return senderName(m.sender_id);
}

/** A name with its badge in words, for screen readers: "Echo (bot)", "CI (webhook)". */
export function withBadge(name: string, badge: Badge | null): string {
  return badge ? `${name} (${badge})` : name;
}
