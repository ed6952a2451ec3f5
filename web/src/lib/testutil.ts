import type { Conversation, Message } from './types';

export class MemoryStorage implements Storage {
  private m = new Map<string, string>();
  get length() {
    return this.m.size;
  }
  clear() {
    this.m.clear();
  }
  getItem(k: string) {
    return this.m.has(k) ? this.m.get(k)! : null;
  }
  key(i: number) {
    return [...this.m.keys()][i] ?? null;
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
  setItem(k: string, v: string) {
    this.m.set(k, String(v));
  }
}

export function msg(p: Partial<Message> & { seq: number }): Message {
  return {
    id: `m${p.seq}`,
    conversation_id: 'c1',
    sender_id: 'bob',
    client_id: `k${p.seq}`,
    kind: 'text',
    body: `hello ${p.seq}`,
    attachments: [],
    reply_to_seq: null,
    created_at: new Date(Date.UTC(2026, 0, 1, 12, 0, p.seq)).toISOString(),
    edited_at: null,
    deleted: false,
    reactions: [],
    mentions: [],
    via_webhook: null,
    ...p,
  };
}

export function conv(p: Partial<Conversation> & { id: string }): Conversation {
  return {
    kind: 'direct',
    name: null,
    avatar_url: null,
    description: null,
    public: false,
    created_at: '2026-01-01T00:00:00Z',
    last_message: null,
    unread_count: 0,
    my_role: 'member',
    last_read_seq: 0,
    member_count: 2,
    last_seq: 0,
    unread_mentions: 0,
    ...p,
  };
}

export function fakeJwt(expSeconds: number): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return `${b64({ alg: 'HS256' })}.${b64({ sub: 'u', exp: expSeconds })}.sig`;
}
