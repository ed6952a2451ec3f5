/** Reads the `exp` claim (seconds) of a JWT without verifying it; null if unreadable. */
export function jwtExpiry(token: string): number | null {
  const parts = token.split('.');
  if (parts.length < 2) return null;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const json = JSON.parse(atob(b64));
    return typeof json.exp === 'number' ? json.exp : null;
  } catch {
    return null;
  }
}
