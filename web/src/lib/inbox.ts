// Service notifications (the bell): what other systems told this user (`POST /notify` on the
// server), as a list newest first with an unread count. Reducers for the first page, older pages,
// live `notification` events and marking read; where an item leads (a path in the app, or an
// https page in a new tab). Plain functions, unit-tested without a browser.
import type { Notification, NotificationList } from './types';

export interface InboxState {
  /** Newest first, unique by id. */
  items: Notification[];
  /** Unread notifications, loaded or not (the server's count, kept current here). */
  unread: number;
  /** `before` for the next older page; null at the end (or before the first page). */
  next: string | null;
  /** The first page has been answered. */
  loaded: boolean;
}

export function emptyInbox(): InboxState {
  return { items: [], unread: 0, next: null, loaded: false };
}

/** Newest first: by creation time, then by id (UUIDv7 ids grow with time). */
function newestFirst(a: Notification, b: Notification): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * A live `notification` event (also replayed by `sync`): added once, counted as unread. The
 * same one again (a replay, or already on a loaded page) changes nothing.
 */
export function applyLiveNotification(s: InboxState, n: Omit<Notification, 'read'> & { read?: boolean }): InboxState {
  if (s.items.some((x) => x.id === n.id)) return s;
  const item: Notification = { id: n.id, title: n.title, body: n.body, url: n.url ?? null, created_at: n.created_at, read: n.read ?? false };
  return { ...s, items: [...s.items, item].sort(newestFirst), unread: s.unread + (item.read ? 0 : 1) };
}

/**
 * The first page (`GET /notifications`): the server's list and count. Events that arrived while
 * it was asked for and that it does not hold stay, and count as unread on top of its count.
 */
export function applyFirstPage(s: InboxState, page: NotificationList): InboxState {
  const ids = new Set(page.notifications.map((n) => n.id));
  const extra = s.items.filter((n) => !ids.has(n.id));
  const newest = page.notifications[0]?.created_at ?? '';
  const newer = extra.filter((n) => n.created_at >= newest);
  return {
    items: [...page.notifications, ...newer].sort(newestFirst),
    unread: page.unread_count + newer.filter((n) => !n.read).length,
    next: page.next_cursor,
    loaded: true,
  };
}

/** An older page (`before=next`): appended, the count unchanged (the server counted them already). */
export function applyOlderPage(s: InboxState, page: NotificationList): InboxState {
  const ids = new Set(s.items.map((n) => n.id));
  return { ...s, items: [...s.items, ...page.notifications.filter((n) => !ids.has(n.id))].sort(newestFirst), next: page.next_cursor };
}

/**
 * Marked read up to (and including) `upTo`, the newest one shown (`POST /notifications/read
 * {up_to}`): it and everything older are read; anything newer keeps counting.
 */
export function markReadUpTo(s: InboxState, upTo: string): InboxState {
  const at = s.items.find((n) => n.id === upTo);
  if (!at) return s;
  const isOlder = (n: Notification) => newestFirst(n, at) >= 0;
  const items = s.items.map((n) => (!n.read && isOlder(n) ? { ...n, read: true } : n));
  const unread = items.filter((n) => !n.read && !isOlder(n)).length;
  return { ...s, items, unread };
}

export type NotificationTarget = { kind: 'app'; path: string } | { kind: 'external'; href: string } | null;

/**
 * Where a notification leads: a path inside the app (navigated to without a reload), an https
 * page (a new tab), or nowhere. The server accepts only those two forms; anything else is
 * ignored here too. Paths under /api/ are files or endpoints, not app views: opened as pages.
 */
export function notificationTarget(url: string | null | undefined): NotificationTarget {
  const u = url?.trim();
  if (!u) return null;
  if (u.startsWith('/') && !u.startsWith('//') && !u.startsWith('/\\')) {
    return u.startsWith('/api/') ? { kind: 'external', href: u } : { kind: 'app', path: u };
  }
  if (/^https:\/\/[^\s/]/i.test(u)) return { kind: 'external', href: u };
  return null;
}

/** The bell's accessible name: "Notifications, 3 unread". */
export function bellLabel(unread: number): string {
  return unread > 0 ? `Notifications, ${unread} unread` : 'Notifications';
}

/** The badge on the bell: "9+" past nine. */
export function badgeText(unread: number): string {
  return unread > 9 ? '9+' : String(unread);
}
