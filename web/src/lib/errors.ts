// Errors: the ApiError every request and frame failure becomes, and plain words for each code.
import type { ErrorCode } from './types';

/**
 * An error returned by the API (`{"error":{"code","message"}}`), an `error` frame, or a network
 * failure. `code` is one of the protocol's `ErrorCode`s, a code newer than this build (shown
 * with the server's message), or one this client makes up: `network` (no answer),
 * `http_<status>` (an answer without the contract's error body) and `invalid_credentials`
 * (a 401 answer to a login).
 */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: ErrorCode | 'network' | (string & {}),
    message: string,
    public retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * Plain words for every code the server sends. Typed by the generated `ErrorCode` union, so a
 * code added to the protocol crate fails `npm run check` until it has words here.
 */
const FRIENDLY: Record<ErrorCode, string> = {
  invalid_request: 'Some of the information is not valid.',
  unauthenticated: 'Your session has ended. Please log in again.',
  forbidden: 'You are not allowed to do that.',
  not_friends: 'You can only do that with friends.',
  blocked: 'You cannot message or add this person.',
  not_found: 'That could not be found (it may have been removed).',
  method_not_allowed: 'That cannot be done here.',
  conflict: 'That conflicts with something that already exists.',
  email_taken: 'An account with that email already exists.',
  phone_taken: 'An account with that phone number already exists.',
  username_taken: 'That username is already taken.',
  too_large: 'That is too large.',
  unsupported_media_type: 'This type of file is not accepted.',
  rate_limited: 'You are doing that too often. Please wait a moment and try again.',
  internal: 'Something went wrong on the server. Please try again.',
  unavailable: 'The server is busy right now. Please try again in a moment.',
  invalid_emoji: 'That cannot be used as a reaction (one emoji only).',
  too_many_reactions: 'You can put at most 20 different reactions on one message.',
  account_suspended: 'This account is suspended.',
  registration_closed: 'New accounts cannot be created here right now.',
  quota_exceeded: 'You have reached your upload limit. Try again later, or ask an administrator.',
};

/** Words for the codes this client makes up (never sent by the server). */
const CLIENT_WORDS: Record<string, string> = {
  network: 'Cannot reach the server. Check your connection.',
  /** A 401 answer to a login (`Session.login`): wrong login or password. */
  invalid_credentials: 'That login and password do not match.',
};

function wordsFor(code: string): string | undefined {
  return Object.hasOwn(FRIENDLY, code) ? FRIENDLY[code as ErrorCode] : CLIENT_WORDS[code];
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** An RFC 3339 time as "7 Dec 2026, 06:27" in the reader's time zone (as is when unreadable). */
export function readableTime(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : dateTime.format(t);
}

/**
 * The server's `account_suspended` message ("this account is suspended until 2026-12-08T10:00:00Z:
 * spam links", or "… until further notice: …") in plain words, with the time in the reader's zone.
 */
export function suspensionText(message: string): string {
  const m = /^this account is suspended (until further notice|until (\S+)): ([\s\S]*)$/i.exec(message.trim());
  if (!m) return message.trim() ? `This account is suspended: ${message.trim()}` : FRIENDLY.account_suspended;
  const until = m[2] ? `until ${readableTime(m[2])}` : 'until further notice';
  const reason = m[3].trim();
  return `This account is suspended ${until}.${reason ? ` Reason: ${reason}` : ''}`;
}

/**
 * The server's `quota_exceeded` message ("upload quota exceeded: 1020 MiB of 1 GiB uploaded in
 * the last 24 hours; 4 MiB left") in plain words, keeping its numbers.
 */
export function quotaText(message: string): string {
  const why = message.replace(/^upload quota exceeded:\s*/i, '').trim();
  return why ? `Upload limit reached: ${why}.` : FRIENDLY.quota_exceeded;
}

/** Plain words for an error, for showing to a person. */
export function friendlyError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'rate_limited' && err.retryAfter) {
      return `You are doing that too often. Try again in ${err.retryAfter} s.`;
    }
    // The server's message carries the reason and until when, or the numbers: say them.
    if (err.code === 'account_suspended') return suspensionText(err.message);
    if (err.code === 'quota_exceeded') return quotaText(err.message);
    return wordsFor(err.code) ?? (err.message || `Something went wrong (${err.code}).`);
  }
  if (err instanceof Error) return err.message || 'Something went wrong.';
  return 'Something went wrong.';
}

/**
 * For a form: like `friendlyError`, but a refused field says what is wrong with it (the
 * server's message for `invalid_request`, e.g. "username must be 3-32 characters: …").
 */
export function formError(err: unknown): string {
  if (err instanceof ApiError && err.code === 'invalid_request' && err.message && err.status === 400) {
    const t = err.message.trim();
    return `${t[0].toUpperCase()}${t.slice(1)}${/[.!?]$/.test(t) ? '' : '.'}`;
  }
  return friendlyError(err);
}
