import type { ClientFrame, OutboxItem } from './types';

/** Messages written but not yet acknowledged, persisted per user, in the order written. */
export class Outbox {
  private items: OutboxItem[] = [];
  private key: string;

  constructor(
    private storage: Storage,
    userId: string,
  ) {
    this.key = `chatnode.outbox.${userId}`;
    try {
      const raw = storage.getItem(this.key);
      const parsed = raw ? JSON.parse(raw) : [];
      if (Array.isArray(parsed)) this.items = parsed;
    } catch {
      this.items = [];
    }
  }

  private save(): void {
    if (this.items.length) this.storage.setItem(this.key, JSON.stringify(this.items));
    else this.storage.removeItem(this.key);
  }

  /** Adds a message (no-op if its client_id is already queued). */
  add(item: OutboxItem): void {
    if (this.items.some((i) => i.client_id === item.client_id)) return;
    this.items.push(item);
    this.save();
  }

  /** Removes a message once acked (or abandoned). Returns whether it was queued. */
  remove(clientId: string): boolean {
    const n = this.items.length;
    this.items = this.items.filter((i) => i.client_id !== clientId);
    if (this.items.length !== n) {
      this.save();
      return true;
    }
    return false;
  }

  has(clientId: string): boolean {
    return this.items.some((i) => i.client_id === clientId);
  }

  list(conversationId?: string): OutboxItem[] {
    return conversationId ? this.items.filter((i) => i.conversation_id === conversationId) : [...this.items];
  }

  get size(): number {
    return this.items.length;
  }

  /** Sends every queued message, oldest first. Items stay queued until `remove` (on ack). */
  flush(send: (item: OutboxItem) => boolean | void): number {
    let sent = 0;
    for (const item of [...this.items]) {
      if (send(item) === false) break;
      sent++;
    }
    return sent;
  }

  clear(): void {
    this.items = [];
    this.save();
  }
}

/** The WebSocket `send` frame for a queued message (resends reuse its client_id). */
export function sendFrame(item: OutboxItem): ClientFrame {
  return {
    type: 'send',
    conversation_id: item.conversation_id,
    client_id: item.client_id,
    body: item.body,
    kind: item.kind ?? 'text',
    ...(item.attachments?.length ? { attachment_ids: item.attachments.map((a) => a.id) } : {}),
    ...(item.reply_to_seq ? { reply_to_seq: item.reply_to_seq } : {}),
  };
}
