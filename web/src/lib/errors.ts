/** An error returned by the API (`{"error":{"code","message"}}`) or a network failure. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const FRIENDLY: Record<string, string> = {
  invalid_credentials: 'That login and password do not match.',
  unauthenticated: 'Your session has ended. Please log in again.',
  username_taken: 'That username is already taken.',
  email_taken: 'An account with that email already exists.',
  phone_taken: 'An account with that phone number already exists.',
  not_friends: 'You can only do that with friends.',
  rate_limited: 'You are doing that too often. Please wait a moment and try again.',
  forbidden: 'You are not allowed to do that.',
  not_found: 'That could not be found (it may have been removed).',
  conflict: 'That conflicts with something that already exists.',
  too_large: 'That is too large.',
  invalid_request: 'Some of the information is not valid.',
  blocked: 'You cannot message or add this person.',
  network: 'Cannot reach the server. Check your connection.',
  weak_password: 'The password must be at least 10 characters long.',
  invalid_password: 'The password must be at least 10 characters long.',
  invalid_email: 'That email address is not valid.',
  invalid_phone: 'That phone number is not valid (use the international format, e.g. +15551234567).',
  invalid_username: 'That username is not valid.',
  already_friends: 'You are already friends.',
  invite_expired: 'This invite link has expired.',
  invalid_invite: 'This invite link is not valid.',
};

/** Plain words for an error, for showing to a person. */
export function friendlyError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'rate_limited' && err.retryAfter) {
      return `You are doing that too often. Try again in ${err.retryAfter} s.`;
    }
    if (err.code === 'unauthenticated' && err.status === 401 && err.message.toLowerCase().includes('credential')) {
      return FRIENDLY.invalid_credentials;
    }
    return FRIENDLY[err.code] ?? (err.message || `Something went wrong (${err.code}).`);
  }
  if (err instanceof Error) return err.message || 'Something went wrong.';
  return 'Something went wrong.';
}
