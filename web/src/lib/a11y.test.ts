import { describe, expect, it } from 'vitest';
import { actionsLabel, messageContentInWords, messageLabel } from './a11y';
import { msg } from './testutil';
import type { Media } from './types';

const file = (p: Partial<Media> & { id: string }): Media => ({
  mime: 'application/pdf',
  size: 12 * 1024,
  name: `${p.id}.pdf`,
  url: `/api/v1/media/${p.id}`,
  width: null,
  height: null,
  thumbnail_url: null,
  duration_ms: null,
  ...p,
});

describe('messageLabel', () => {
  it('names sender, time, text and, for my messages, the state', () => {
    const m = msg({ seq: 1, body: 'Hello Bob 👋' });
    expect(messageLabel({ sender: 'You', time: '10:42', m, status: 'read' })).toBe('You, 10:42: Hello Bob 👋. Read');
    expect(messageLabel({ sender: 'You', time: '10:42', m, status: 'sending' })).toBe('You, 10:42: Hello Bob 👋. Sending');
    expect(messageLabel({ sender: 'You', time: '10:42', m, status: 'sent' })).toBe('You, 10:42: Hello Bob 👋. Sent');
    expect(messageLabel({ sender: 'You', time: '10:42', m, status: 'failed' })).toBe('You, 10:42: Hello Bob 👋. Not sent');
    expect(messageLabel({ sender: 'Ann Lee', time: '10:43', m, status: null })).toBe('Ann Lee, 10:43: Hello Bob 👋');
  });

  it('says edited, replying to whom, and deleted', () => {
    const m = msg({ seq: 2, body: 'Sure!', edited_at: '2026-01-01T12:01:00Z' });
    expect(messageLabel({ sender: 'Ann Lee', time: '10:43', m, status: null, replyTo: 'You' })).toBe('Ann Lee, 10:43, edited, replying to You: Sure!');
    const d = msg({ seq: 3, body: '', deleted: true, edited_at: '2026-01-01T12:01:00Z' });
    expect(messageLabel({ sender: 'Ann Lee', time: '10:44', m: d, status: null })).toBe('Ann Lee, 10:44: This message was deleted');
  });

  it('describes attachments (and the caption), and shortens very long text', () => {
    const photo = file({ id: 'p', mime: 'image/png', name: 'sunset.png' });
    expect(messageContentInWords({ body: 'At the lake', attachments: [photo], deleted: false })).toBe('Photo sunset.png. At the lake');
    expect(messageContentInWords({ body: '', attachments: [photo, { ...photo, id: 'q' }], deleted: false })).toBe('2 photos');
    expect(messageContentInWords({ body: '', attachments: [file({ id: 'report' })], deleted: false })).toBe('File report.pdf, 12 KB');
    expect(messageContentInWords({ body: '', attachments: [file({ id: 'v', mime: 'audio/ogg', duration_ms: 7200 })], deleted: false })).toBe('Voice message, 0:07');
    expect(messageContentInWords({ body: '', attachments: [file({ id: 'c', mime: 'video/mp4', name: 'clip.mp4' })], deleted: false })).toBe('Video clip.mp4');
    const long = messageContentInWords({ body: 'word '.repeat(200), attachments: [], deleted: false });
    expect([...long].length).toBe(300);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('actionsLabel', () => {
  it('is distinct per message: whose, when, and the start of what', () => {
    const a = msg({ seq: 1, body: 'Hello Bob' });
    const b = msg({ seq: 2, body: 'See you at eight' });
    expect(actionsLabel({ sender: 'You', time: '10:42', m: a, mine: true })).toBe('Actions for your message at 10:42: Hello Bob');
    expect(actionsLabel({ sender: 'Ann Lee', time: '10:42', m: b, mine: false })).toBe('Actions for message from Ann Lee at 10:42: See you at eight');
    const long = actionsLabel({ sender: 'Ann Lee', time: '10:42', m: msg({ seq: 3, body: 'x'.repeat(100) }), mine: false });
    expect(long).toBe(`Actions for message from Ann Lee at 10:42: ${'x'.repeat(39)}…`);
  });
});

describe('names for this round', () => {
  it('a message that mentions me says so; React buttons name their message', async () => {
    const { messageLabel, reactLabel } = await import('./a11y');
    const m = { body: 'Hey @ann', attachments: [], deleted: false, edited_at: null };
    expect(messageLabel({ sender: 'Bob', time: '10:42', m, status: null, mentionsMe: true })).toBe('Bob, 10:42, mentions you: Hey @ann');
    expect(reactLabel({ sender: 'Bob', time: '10:42', m, mine: false })).toBe('React to message from Bob at 10:42: Hey @ann');
    expect(reactLabel({ sender: 'You', time: '10:42', m, mine: true })).toBe('React to your message at 10:42: Hey @ann');
  });
});
