// Client routes (history API): the path ↔ the view, and navigating without a reload.
import { writable } from 'svelte/store';

/** The tabs of the admin page, `/admin/<tab>` (`/admin` is the first). */
export const ADMIN_TABS = ['users', 'reports', 'audit', 'stats', 'invites'] as const;
export type AdminTab = (typeof ADMIN_TABS)[number];

export type Route =
  | { name: 'home' }
  | { name: 'chat'; id: string }
  | { name: 'people' }
  | { name: 'groups' }
  | { name: 'invite'; code: string }
  | { name: 'settings' }
  | { name: 'bots' }
  | { name: 'admin'; tab: AdminTab };

export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'c' && parts[1]) return { name: 'chat', id: parts[1] };
  if (parts[0] === 'invite' && parts[1]) return { name: 'invite', code: parts[1] };
  if (parts[0] === 'people') return { name: 'people' };
  if (parts[0] === 'groups') return { name: 'groups' };
  if (parts[0] === 'settings') return parts[1] === 'bots' ? { name: 'bots' } : { name: 'settings' };
  if (parts[0] === 'admin') return { name: 'admin', tab: (ADMIN_TABS as readonly string[]).includes(parts[1]) ? (parts[1] as AdminTab) : 'users' };
  return { name: 'home' };
}

export const route = writable<Route>(typeof location !== 'undefined' ? parseRoute(location.pathname) : { name: 'home' });

export function navigate(path: string, replace = false): void {
  if (typeof history !== 'undefined') {
    if (replace) history.replaceState(null, '', path);
    else if (location.pathname !== path) history.pushState(null, '', path);
  }
  route.set(parseRoute(path));
}

if (typeof window !== 'undefined') {
  window.addEventListener('popstate', () => route.set(parseRoute(location.pathname)));
}
