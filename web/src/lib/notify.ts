// Notifications: mute state, the `view` target, Web Push subscription helpers and their errors
// in plain words. Plain functions (no browser needed) so they are unit-tested.
import type { Conversation } from './types';

// ---------- mute ----------

export interface MuteOption {
  key: string;
  label: string;
  /** Duration in ms; null = until turned back on. */
  ms: number | null;
}

export const MUTE_OPTIONS: MuteOption[] = [
  { key: '1h', label: 'For 1 hour', ms: 3_600_000 },
  { key: '8h', label: 'For 8 hours', ms: 8 * 3_600_000 },
  { key: '1w', label: 'For 1 week', ms: 7 * 24 * 3_600_000 },
  { key: 'forever', label: 'Until I turn it back on', ms: null },
];

/** Body of `PUT /conversations/{id}/mute`: `{}` mutes until unmuted. */
export function muteRequest(ms: number | null, now = Date.now()): { until?: string } {
  return ms === null ? {} : { until: new Date(now + ms).toISOString() };
}

/** Muted now? (`muted_until` null/absent = not muted; a time in the past = no longer muted.) */
export function isMuted(c: Pick<Conversation, 'muted_until'> | undefined | null, now = Date.now()): boolean {
  if (!c?.muted_until) return false;
  const t = Date.parse(c.muted_until);
  return Number.isNaN(t) ? true : t > now;
}

/** Muted until the end of year 9999 or later: the server's "forever". */
export function isMutedForever(c: Pick<Conversation, 'muted_until'> | undefined | null): boolean {
  if (!c?.muted_until) return false;
  const t = Date.parse(c.muted_until);
  return Number.isNaN(t) || t >= Date.UTC(9000, 0, 1);
}

/** "Muted", "Muted until 14:05", "Muted until Tue 14:05" (under a week), or a date. */
export function mutedLabel(c: Pick<Conversation, 'muted_until'> | undefined | null, now = Date.now()): string {
  if (!isMuted(c, now)) return '';
  if (isMutedForever(c)) return 'Muted';
  const at = new Date(c!.muted_until!);
  const time = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const sameDay = new Date(now).toDateString() === at.toDateString();
  if (sameDay) return `Muted until ${time}`;
  if (at.getTime() - now < 6.5 * 24 * 3_600_000) return `Muted until ${at.toLocaleDateString([], { weekday: 'short' })} ${time}`;
  return `Muted until ${at.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
}

/** Milliseconds until a timed mute ends (for re-rendering), null when not muted or forever. */
export function msUntilUnmuted(c: Pick<Conversation, 'muted_until'> | undefined | null, now = Date.now()): number | null {
  if (!isMuted(c, now) || isMutedForever(c)) return null;
  return Date.parse(c!.muted_until!) - now;
}

// ---------- view ----------

/**
 * The conversation to report in the `view` frame: the open one while the page is visible,
 * otherwise null (no conversation open, or the tab is in the background).
 */
export function viewTarget(active: string | null, visibility: DocumentVisibilityState | string | undefined): string | null {
  return active && visibility === 'visible' ? active : null;
}

// ---------- in-page notifications ----------

/**
 * Whether the page itself shows a notification for a new message. It does so only for a
 * hidden tab, when notifications are on, the conversation is not muted, and this browser has
 * no active push subscription: with one, the server pushes (the page reports nothing in view
 * while hidden) and the service worker shows the notification, so the page stays quiet rather
 * than notifying twice.
 */
export function shouldPageNotify(o: { enabled: boolean; permission: string; hidden: boolean; muted: boolean; pushActive: boolean }): boolean {
  return o.enabled && o.permission === 'granted' && o.hidden && !o.muted && !o.pushActive;
}

// ---------- push subscription ----------

/** base64url (no padding) → bytes, for `applicationServerKey`. */
export function base64UrlToBytes(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The parts of `PushSubscription.toJSON()` the server needs, or null if incomplete. */
export function subscriptionBody(j: { endpoint?: string; keys?: Record<string, string> } | null | undefined): { endpoint: string; keys: { p256dh: string; auth: string } } | null {
  if (!j?.endpoint || !j.keys?.p256dh || !j.keys?.auth) return null;
  return { endpoint: j.endpoint, keys: { p256dh: j.keys.p256dh, auth: j.keys.auth } };
}

export class PushSetupError extends Error {
  constructor(
    public kind: 'unsupported' | 'denied' | 'dismissed' | 'push-service' | 'timeout' | 'server',
    message: string,
  ) {
    super(message);
    this.name = 'PushSetupError';
  }
}

export const PUSH_TEXT = {
  unsupported: 'This browser cannot receive notifications from websites.',
  insecure: 'Notifications need a secure connection (https).',
  denied: 'Notifications are blocked for this site. Allow them in the browser’s site settings (the icon left of the address), then try again.',
  dismissed: 'Notifications were not allowed. Press the button again to be asked once more.',
  pushService:
    'This browser could not reach its push service, so notifications cannot arrive while ChatNode is closed. You will still get notifications while ChatNode is open in a tab.',
  refused:
    'This browser refused to set up push messages (private windows cannot receive them), so notifications cannot arrive while ChatNode is closed. You will still get notifications while ChatNode is open in a tab.',
  timeout:
    'The browser’s push service did not answer, so notifications cannot arrive while ChatNode is closed. You will still get notifications while ChatNode is open in a tab.',
} as const;

/** Plain words for a failed `pushManager.subscribe()` (DOMException names per the Push API). */
export function subscribeErrorText(e: unknown): string {
  if (e instanceof PushSetupError) return e.message;
  const name = (e as { name?: string } | null)?.name ?? '';
  if (name === 'NotAllowedError') return PUSH_TEXT.denied;
  if (name === 'NotSupportedError') return PUSH_TEXT.unsupported;
  if (name === 'TimeoutError') return PUSH_TEXT.timeout;
  // Chromium in a private (incognito) window: AbortError "Registration failed - permission denied".
  if (name === 'AbortError' && /permission denied/i.test((e as Error).message ?? '')) return PUSH_TEXT.refused;
  // AbortError ("Registration failed - push service error"), InvalidStateError, network…
  return PUSH_TEXT.pushService;
}

/** Rejects with a TimeoutError after `ms` (subscribe() can hang when the push service is unreachable). */
export function withTimeout<T>(p: Promise<T>, ms: number, setTimer: (fn: () => void, ms: number) => unknown = setTimeout): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    setTimer(() => {
      if (done) return;
      done = true;
      const e = new Error('timed out');
      e.name = 'TimeoutError';
      reject(e);
    }, ms);
    p.then(
      (v) => {
        if (done) return;
        done = true;
        resolve(v);
      },
      (e) => {
        if (done) return;
        done = true;
        reject(e);
      },
    );
  });
}
