// Signing in beyond a password: single sign-on (the "Sign in with …" start URL, the fragment the
// server comes back with — `#oidc_code=…` to trade for tokens, `#oidc_error=…` to explain), and
// registration invites (the code a link carries: `/register?code=CODE`, also `?invite=CODE`).
// Plain functions, unit-tested without a browser.

export type AuthFragment = { kind: 'code'; code: string } | { kind: 'error'; code: string };

/** `#oidc_code=CODE` or `#oidc_error=CODE` (alone or among other fragment parameters); else null. */
export function parseAuthFragment(hash: string): AuthFragment | null {
  const h = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!h) return null;
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(h);
  } catch {
    return null;
  }
  const code = params.get('oidc_code')?.trim();
  if (code) return { kind: 'code', code };
  const error = params.get('oidc_error')?.trim();
  if (error !== undefined && params.has('oidc_error')) return { kind: 'error', code: error || 'oidc_failed' };
  return null;
}

/** The fragment without the single sign-on parameters ('' when nothing else is left). */
export function fragmentWithoutAuth(hash: string): string {
  const h = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!h) return '';
  const params = new URLSearchParams(h);
  params.delete('oidc_code');
  params.delete('oidc_error');
  const rest = params.toString();
  return rest ? `#${rest}` : '';
}

const OIDC_ERRORS: Record<string, string> = {
  oidc_failed: 'Signing in with your provider did not work. Please try again.',
  registration_closed: 'There is no account here for you yet, and new accounts cannot be created on this server right now. Ask its administrator for an invitation.',
  account_suspended: 'This account is suspended. Log in with your password to see why and until when, or ask the server’s administrator.',
};

/** Plain words for the `oidc_error` the server sent back (unknown codes read as a failure). */
export function oidcErrorText(code: string): string {
  return OIDC_ERRORS[code] ?? OIDC_ERRORS.oidc_failed;
}

/** A one-time code that was spent or is over 60 s old, or any failed exchange. */
export const OIDC_EXCHANGE_FAILED = 'That sign-in did not finish in time (or was already used). Please sign in again.';

/**
 * Where "Sign in with …" goes (a full page load): the server sends the browser to the provider,
 * and back to `path` (a path on this site) with `#oidc_code=…`.
 */
export function ssoStartUrl(providerId: string, path: string): string {
  const back = path.startsWith('/') && !path.startsWith('//') ? path : '/';
  return `/api/v1/auth/oidc/${encodeURIComponent(providerId)}/start?redirect_to=${encodeURIComponent(back)}`;
}

/**
 * The path to come back to after signing in: where the page is now, except the registration link
 * (which would open the form again).
 */
export function returnPath(pathname: string, search: string): string {
  if (pathname === '/register') return '/';
  return `${pathname}${search}`;
}

/** A registration invite code from a link: `/register?code=CODE`, `/register?invite=CODE`, `/?invite=CODE`. */
export function inviteCodeFromUrl(pathname: string, search: string): string | null {
  const q = new URLSearchParams(search);
  const code = (pathname === '/register' ? (q.get('code') ?? q.get('invite')) : q.get('invite'))?.trim();
  return code ? code : null;
}

/** Whether the page was opened to create an account (`/register`, or with an invite code). */
export function wantsRegistration(pathname: string, search: string): boolean {
  return pathname === '/register' || inviteCodeFromUrl(pathname, search) !== null;
}

/**
 * The server answers a password change with 403 and this message for an account made by single
 * sign-on that has no password yet: it sets a first one with an empty current password.
 */
export function needsFirstPassword(message: string): boolean {
  return /single sign-on/i.test(message) && /no password/i.test(message);
}
