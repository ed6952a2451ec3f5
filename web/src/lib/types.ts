// Wire shapes come from the Rust protocol crate: `protocol.gen.ts` is generated from
// crates/protocol (`UPDATE_TS=1 cargo test -p chatnode-protocol typescript`; a Rust test fails
// while it is stale). Import them from here; only client-side types are written by hand below.
import type { Media, Message, MessageKind } from './protocol.gen';

export type * from './protocol.gen';
export { CLOSE_CODE, MAX_MESSAGE_BODY, MAX_WS_FRAME } from './protocol.gen';

/** A message as the client shows it: committed or still pending in the outbox. */
export interface LocalMessage extends Message {
  /** 'sending' while not acked, 'failed' when the server refused it, 'sent' once committed. */
  status: 'sending' | 'sent' | 'failed';
  error?: string;
}

export interface OutboxItem {
  client_id: string;
  conversation_id: string;
  body: string;
  reply_to_seq: number | null;
  created_at: string;
  /** Absent for text (items stored before media existed). */
  kind?: MessageKind;
  /** Uploaded media sent as `attachment_ids` (kept whole to show the pending message). */
  attachments?: Media[];
}
