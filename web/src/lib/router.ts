import { writable } from 'svelte/store';

export type Route =
  | { name: 'home' }
  | { name: 'chat'; id: string }
  | { name: 'people' }
  | { name: 'groups' }
  | { name: 'invite'; code: string }
  | { name: 'settings' };

export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'c' && parts[1]) return { name: 'chat', id: parts[1] };
  if (parts[0] === 'invite' && parts[1]) return { name: 'invite', code: parts[1] };
  if (parts[0] === 'people') return { name: 'people' };
  if (parts[0] === 'groups') return { name: 'groups' };
  if (parts[0] === 'settings') return { name: 'settings' };
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
