// Shapes from /work/shared/api-contract.md (v1). Extra optional fields tolerated.
export interface User {
  id: string;
  username: string;
  display_name: string;
  avatar_url: string | null;
  bio: string | null;
  online: boolean;
  last_seen_at: string | null;
  email?: string | null;
  phone?: string | null;
  /** Extension (own profile only): notifications show message text. */
  notification_previews?: boolean;
}

export interface Media {
  id: string;
  mime: string;
  size: number;
  name: string;
  url: string;
  width: number | null;
  height: number | null;
  thumbnail_url: string | null;
  /** Voice messages (`kind: "audio"`): the length, when the server could read it. */
  duration_ms?: number | null;
}

/** `audio` (voice messages) was added to the contract on 2026-11-29. */
export type MessageKind = 'text' | 'image' | 'file' | 'video' | 'audio' | 'system';

export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  client_id: string | null;
  kind: MessageKind;
  body: string;
  attachments: Media[];
  reply_to_seq: number | null;
  created_at: string;
  edited_at: string | null;
  deleted: boolean;
}

export type Role = 'owner' | 'admin' | 'member';

export interface Conversation {
  id: string;
  kind: 'direct' | 'group';
  name: string | null;
  avatar_url: string | null;
  description: string | null;
  public: boolean;
  created_at: string;
  last_message: Message | null;
  unread_count: number;
  my_role: Role;
  last_read_seq: number;
  member_count: number;
  peer?: User;
  /** Optional server extension: the direct peer's read marker. */
  peer_last_read_seq?: number;
  /** Optional server extension: read markers of members. */
  read_markers?: { user_id: string; seq: number }[] | Record<string, number>;
  /** Extension: muted until this time (RFC 3339; year 9999 = until unmuted); null/absent = not muted. */
  muted_until?: string | null;
}

export interface Member {
  user: User;
  role: Role;
  joined_at: string;
  /** Optional server extension: this member's read marker. */
  last_read_seq?: number;
}

export interface FriendRequest {
  id: string;
  from: User;
  to: User;
  created_at: string;
}

export interface AuthResult {
  user: User;
  access_token: string;
  refresh_token: string;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
}

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

export type ServerEvent =
  | { type: 'ready'; user: User; stream_pos: number }
  | { type: 'synced'; stream_pos: number }
  | { type: 'pong' }
  | { type: 'ack'; client_id: string; message: Message }
  | { type: 'error'; client_id?: string; code: string; message: string }
  | { type: 'message'; message: Message; stream_pos?: number }
  | { type: 'message.updated'; message: Message; stream_pos?: number }
  | { type: 'message.deleted'; conversation_id: string; seq: number; scope?: 'everyone' | 'me'; stream_pos?: number }
  | { type: 'typing'; conversation_id: string; user_id: string; typing: boolean }
  | { type: 'presence'; user_id: string; online: boolean; last_seen_at: string | null; stream_pos?: number }
  | { type: 'read'; conversation_id: string; user_id: string; seq: number; stream_pos?: number }
  | { type: 'friend.request'; request: FriendRequest; stream_pos?: number }
  | { type: 'friend.request.removed'; request_id: string; stream_pos?: number }
  | { type: 'friend.added'; user: User; stream_pos?: number }
  | { type: 'friend.removed'; user_id: string; stream_pos?: number }
  | { type: 'conversation.updated'; conversation: Conversation; stream_pos?: number }
  | { type: 'member.added' | 'member.removed' | 'member.updated'; conversation_id: string; user_id: string; role?: Role; stream_pos?: number };
