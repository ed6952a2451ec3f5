// The operators' page (system admins): suspension lengths and how a suspension reads, audit log
// entries as sentences ("Ann suspended Bob until … (spam)"), the geometry and the words of the
// messages-per-hour chart, upload usage against a limit, and registration invite links. Plain
// functions, unit-tested without a browser.
import { readableTime } from './errors';
import { formatBytes } from './media';
import type { AuditEntry, User } from './types';

const HOUR = 3_600_000;

// ---------- suspensions ----------

export interface SuspendOption {
  key: string;
  label: string;
  /** Length in ms; null = until lifted. */
  ms: number | null;
}

export const SUSPEND_OPTIONS: SuspendOption[] = [
  { key: 'hour', label: '1 hour', ms: HOUR },
  { key: 'day', label: '1 day', ms: 24 * HOUR },
  { key: 'week', label: '1 week', ms: 7 * 24 * HOUR },
  { key: 'lifted', label: 'Until lifted', ms: null },
];

/** The `until` of `POST /admin/users/{id}/suspend`: null suspends until lifted. */
export function suspendUntil(ms: number | null, now = Date.now()): string | null {
  return ms === null ? null : new Date(now + ms).toISOString();
}

/** The server's "until lifted" is the end of year 9999: anything from year 9000 on reads so. */
export function isForever(iso: string): boolean {
  const t = Date.parse(iso);
  return Number.isNaN(t) || t >= Date.UTC(9000, 0, 1);
}

/** Whether the account is suspended now (a timed suspension ends by itself). */
export function isSuspended(u: { suspended_until: string | null }, now = Date.now()): boolean {
  if (!u.suspended_until) return false;
  const t = Date.parse(u.suspended_until);
  return Number.isNaN(t) || t > now;
}

/** "until lifted" / "until 8 Dec 2026, 10:00". */
export function untilWords(iso: string | null): string {
  return !iso || isForever(iso) ? 'until lifted' : `until ${readableTime(iso)}`;
}

/** "Suspended until 8 Dec 2026, 10:00: spam links", or '' when not suspended. */
export function suspensionState(u: { suspended_until: string | null; suspension_reason?: string | null }, now = Date.now()): string {
  if (!isSuspended(u, now)) return '';
  const why = u.suspension_reason?.trim();
  return `Suspended ${untilWords(u.suspended_until)}${why ? `: ${why}` : ''}`;
}

// ---------- the audit log ----------

function who(u: User | null, name: (u: User) => string): string {
  return u ? name(u) : 'a deleted account';
}

/**
 * One audit entry as a sentence. `name` gives a user's name (or "you"); an entry without an
 * actor was made on the server's command line (`chatnode admin …`, `chatnode service-token …`).
 */
export function auditLine(e: AuditEntry, name: (u: User) => string): string {
  const s = auditSentence(e, name);
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function auditSentence(e: AuditEntry, name: (u: User) => string): string {
  const actor = e.actor ? name(e.actor) : 'The command line';
  const target = who(e.target_user, name);
  const details = e.details?.trim() ?? '';
  switch (e.action) {
    case 'grant_admin':
      return `${actor} made ${target} a system admin`;
    case 'revoke_admin':
      return `${actor} took the system admin role from ${target}`;
    case 'suspend': {
      // Details: "until 2026-12-08T10:00:00Z (reason)" or "until lifted (reason)".
      const m = /^until (\S+) \(([\s\S]*)\)$/.exec(details);
      if (!m) return `${actor} suspended ${target}${details ? ` (${details})` : ''}`;
      const until = m[1] === 'lifted' ? 'until lifted' : `until ${readableTime(m[1])}`;
      return `${actor} suspended ${target} ${until}${m[2].trim() ? ` (${m[2].trim()})` : ''}`;
    }
    case 'unsuspend':
      return `${actor} lifted the suspension of ${target}`;
    case 'delete_message':
      return `${actor} deleted a message by ${target}${e.seq !== null ? ` (message ${e.seq} of its conversation)` : ''}`;
    case 'resolve_report':
      return `${actor} resolved a report about ${target}${details ? `: “${details}”` : ''}`;
    case 'create_registration_invite': {
      // Details: "Ab3x…: 5 use(s), no expiry" or "…, expires 2026-12-31T00:00:00Z".
      const m = /^(\S+): (\d+) use\(s\), (?:no expiry|expires (\S+))$/.exec(details);
      if (!m) return `${actor} made a registration invite${details ? ` (${details})` : ''}`;
      const uses = `${m[2]} ${m[2] === '1' ? 'use' : 'uses'}`;
      return `${actor} made the registration invite ${m[1]} (${uses}, ${m[3] ? `expires ${readableTime(m[3])}` : 'no expiry'})`;
    }
    case 'revoke_registration_invite':
      return `${actor} revoked the registration invite ${details || ''}`.trimEnd();
    case 'create_service_token':
      return `${actor} made the service token “${details}”`;
    case 'revoke_service_token':
      return `${actor} revoked the service token “${details}”`;
    default: {
      const what = e.action.replace(/_/g, ' ');
      return `${actor}: ${what}${e.target_user ? ` (${target})` : ''}${details ? ` (${details})` : ''}`;
    }
  }
}

// ---------- the messages-per-hour chart ----------

/** Round tops of a scale, times a power of ten: the bars use at least 40% of the height. */
const NICE = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];

/** The smallest whole "round" number (see NICE) at or above `n` (at least 1). */
export function niceCeil(n: number): number {
  if (!(n > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const k of NICE) if (Number.isInteger(k * p) && k * p >= n) return k * p;
  return 10 * p;
}

export interface Bar {
  x: number;
  y: number;
  width: number;
  height: number;
  value: number;
}

export interface Chart {
  /** The top of the scale (a round number at or above the busiest hour). */
  max: number;
  bars: Bar[];
  /** Gridline values, bottom to top: 0, half, max. */
  ticks: number[];
}

/**
 * Bars for `values` (oldest first) in a `width` × `height` drawing area: equal slots with a gap,
 * heights on a scale from 0 to a round maximum; a non-zero value is at least 1 unit tall, so it
 * is never invisible next to a busy hour.
 */
export function chartGeometry(values: number[], width: number, height: number, gap = 2): Chart {
  const clean = values.map((v) => (Number.isFinite(v) && v > 0 ? v : 0));
  const max = niceCeil(Math.max(0, ...clean));
  const slot = clean.length ? width / clean.length : width;
  const w = Math.max(1, slot - gap);
  const bars = clean.map((v, i) => {
    const h = v === 0 ? 0 : Math.max(1, (v / max) * height);
    return { x: i * slot + gap / 2, y: height - h, width: w, height: h, value: v };
  });
  const ticks = max >= 2 && max % 2 === 0 ? [0, max / 2, max] : [0, max];
  return { max, bars, ticks };
}

const hhmm = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/**
 * The hours of `GET /admin/stats` end now: entry `i` of 24 covers from (24 − i) hours ago to
 * (23 − i) hours ago, the last one being the hour under way. "14:05–15:05".
 */
export function hourRange(i: number, count: number, now = Date.now()): string {
  const start = now - (count - i) * HOUR;
  return `${hhmm.format(start)}–${hhmm.format(start + HOUR)}`;
}

/** The chart in words: "42 messages in the last 24 hours; the busiest hour was 14:05–15:05, with 12." */
export function chartSummary(values: number[], now = Date.now()): string {
  const total = values.reduce((a, b) => a + (b > 0 ? b : 0), 0);
  const span = `the last ${values.length} hours`;
  if (total === 0) return `No messages in ${span}.`;
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return `${total} ${total === 1 ? 'message' : 'messages'} in ${span}; the busiest hour was ${hourRange(best, values.length, now)}, with ${values[best]}.`;
}

// ---------- uploads and quotas ----------

/** "12 MB of 1 GB (1%)", or "12 MB (no limit)". */
export function usageWords(used: number, limit: number | null): string {
  if (limit === null || limit <= 0) return `${formatBytes(used)} (no limit)`;
  return `${formatBytes(used)} of ${formatBytes(limit)} (${usagePercent(used, limit)}%)`;
}

/** Whole percent of a limit used, 0–100 (a small non-zero use shows as 1%). */
export function usagePercent(used: number, limit: number | null): number {
  if (limit === null || limit <= 0 || used <= 0) return 0;
  return Math.min(100, Math.max(1, Math.round((used / limit) * 100)));
}

// ---------- registration invites ----------

export interface ExpiryOption {
  key: string;
  label: string;
  /** Lifetime in ms; null = never expires. */
  ms: number | null;
}

export const INVITE_EXPIRY: ExpiryOption[] = [
  { key: 'never', label: 'Never', ms: null },
  { key: '1d', label: 'In 1 day', ms: 24 * HOUR },
  { key: '7d', label: 'In 7 days', ms: 7 * 24 * HOUR },
  { key: '30d', label: 'In 30 days', ms: 30 * 24 * HOUR },
];

/** The link that opens the registration form with the code filled in (see `auth.ts`). */
export function registrationLink(origin: string, code: string): string {
  return `${origin}/register?code=${encodeURIComponent(code)}`;
}
