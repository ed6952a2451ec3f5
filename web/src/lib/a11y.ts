// Words for screen readers: what a sighted person takes in at a glance from a message bubble
// (who wrote it, when, what it says or carries, whether it arrived and was read), and names for
// per-message buttons that say which message they act on.
import type { MessageStatus } from './chat';
import { attachmentsInWords } from './media';
import type { LocalMessage } from './types';

/** The longest message text put in a name; the bubble itself holds the rest. */
const MAX_TEXT = 300;
const EXCERPT = 40;

const STATUS_WORDS: Record<MessageStatus, string> = {
  sending: 'Sending',
  sent: 'Sent',
  read: 'Read',
  failed: 'Not sent',
};

function clip(text: string, max: number): string {
  const t = text.replace(/\s+/g, ' ').trim();
  const chars = [...t];
  return chars.length > max ? `${chars.slice(0, max - 1).join('').trimEnd()}…` : t;
}

/** The message's content in words: its text, what it carries, or that it was deleted. */
export function messageContentInWords(m: Pick<LocalMessage, 'body' | 'attachments' | 'deleted'>): string {
  if (m.deleted) return 'This message was deleted';
  const parts: string[] = [];
  if (m.attachments?.length) parts.push(attachmentsInWords(m.attachments));
  if (m.body.trim()) parts.push(clip(m.body, MAX_TEXT));
  return parts.join('. ') || 'Empty message';
}

export interface MessageLabelInput {
  /** "You" for my own messages, else the sender's name. */
  sender: string;
  /** As shown in the bubble ("10:42"). */
  time: string;
  m: Pick<LocalMessage, 'body' | 'attachments' | 'deleted' | 'edited_at'>;
  /** My messages only: sending / sent / read / failed. */
  status: MessageStatus | null;
  /** Name of the person whose message this one replies to. */
  replyTo?: string | null;
  /** The message mentions the reader (`@username` or `@all`). */
  mentionsMe?: boolean;
}

/**
 * The accessible name of a message item, e.g. "You, 10:42: Hello Bob. Read" or
 * "Ann Lee, 10:43, edited, replying to You: Sure!".
 */
export function messageLabel({ sender, time, m, status, replyTo, mentionsMe }: MessageLabelInput): string {
  let head = `${sender}, ${time}`;
  if (m.edited_at && !m.deleted) head += ', edited';
  if (mentionsMe && !m.deleted) head += ', mentions you';
  if (replyTo) head += `, replying to ${replyTo}`;
  const tail = status ? `. ${STATUS_WORDS[status]}` : '';
  return `${head}: ${messageContentInWords(m)}${tail}`;
}

/** Plain words for a status ("Not sent" for a failed message). */
export function statusWords(status: MessageStatus): string {
  return STATUS_WORDS[status];
}

/**
 * The name of a message's actions button, distinct per message: "Actions for your message at
 * 10:42: Hello Bob" / "Actions for message from Ann Lee at 10:43: Sure!".
 */
export function actionsLabel({ sender, time, m, mine }: { sender: string; time: string; m: Pick<LocalMessage, 'body' | 'attachments' | 'deleted'>; mine: boolean }): string {
  const whose = mine ? 'your message' : `message from ${sender}`;
  return `Actions for ${whose} at ${time}: ${clip(messageContentInWords(m), EXCERPT)}`;
}

/** The name of a message's "React" button: "React to message from Ann Lee at 10:43: Sure!". */
export function reactLabel({ sender, time, m, mine }: { sender: string; time: string; m: Pick<LocalMessage, 'body' | 'attachments' | 'deleted'>; mine: boolean }): string {
  const whose = mine ? 'your message' : `message from ${sender}`;
  return `React to ${whose} at ${time}: ${clip(messageContentInWords(m), EXCERPT)}`;
}
