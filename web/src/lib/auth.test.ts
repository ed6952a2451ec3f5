import { describe, expect, it } from 'vitest';
import { fragmentWithoutAuth, inviteCodeFromUrl, needsFirstPassword, oidcErrorText, parseAuthFragment, returnPath, ssoStartUrl, wantsRegistration } from './auth';
import { ApiError, formError, friendlyError, quotaText, suspensionText } from './errors';

describe('single sign-on', () => {
  it('reads the fragment the server comes back with', () => {
    expect(parseAuthFragment('#oidc_code=abc-_123')).toEqual({ kind: 'code', code: 'abc-_123' });
    expect(parseAuthFragment('oidc_code=abc')).toEqual({ kind: 'code', code: 'abc' });
    expect(parseAuthFragment('#x=1&oidc_code=abc')).toEqual({ kind: 'code', code: 'abc' });
    expect(parseAuthFragment('#oidc_error=account_suspended')).toEqual({ kind: 'error', code: 'account_suspended' });
    expect(parseAuthFragment('#oidc_error=')).toEqual({ kind: 'error', code: 'oidc_failed' });
    for (const none of ['', '#', '#msg-12', '#oidc_code=', '#something=else']) expect(parseAuthFragment(none), none).toBeNull();
  });
  it('removes only its own parameters from the fragment', () => {
    expect(fragmentWithoutAuth('#oidc_code=abc')).toBe('');
    expect(fragmentWithoutAuth('#a=1&oidc_error=x')).toBe('#a=1');
    expect(fragmentWithoutAuth('')).toBe('');
  });
  it('failures in plain words (unknown codes too)', () => {
    expect(oidcErrorText('registration_closed')).toMatch(/new accounts cannot be created/);
    expect(oidcErrorText('account_suspended')).toMatch(/suspended/);
    expect(oidcErrorText('oidc_failed')).toMatch(/did not work/);
    expect(oidcErrorText('made_up')).toBe(oidcErrorText('oidc_failed'));
  });
  it('starts at the server with the path to come back to', () => {
    expect(ssoStartUrl('test-idp', '/c/abc?x=1')).toBe('/api/v1/auth/oidc/test-idp/start?redirect_to=%2Fc%2Fabc%3Fx%3D1');
    expect(ssoStartUrl('a b', '//evil.example')).toBe('/api/v1/auth/oidc/a%20b/start?redirect_to=%2F');
    expect(returnPath('/register', '?code=X')).toBe('/');
    expect(returnPath('/c/1', '')).toBe('/c/1');
  });
  it('knows the password change answer of an account without a password', () => {
    expect(needsFirstPassword('this account signs in with single sign-on and has no password yet: set one first')).toBe(true);
    expect(needsFirstPassword('the password is wrong')).toBe(false);
  });
});

describe('registration links', () => {
  it('takes the invite code from /register?code= or ?invite=', () => {
    expect(inviteCodeFromUrl('/register', '?code=Ab3x')).toBe('Ab3x');
    expect(inviteCodeFromUrl('/register', '?invite=Ab3x')).toBe('Ab3x');
    expect(inviteCodeFromUrl('/', '?invite=Ab3x')).toBe('Ab3x');
    expect(inviteCodeFromUrl('/', '?code=Ab3x')).toBeNull();
    expect(inviteCodeFromUrl('/register', '?code=%20')).toBeNull();
    expect(wantsRegistration('/register', '')).toBe(true);
    expect(wantsRegistration('/c/1', '')).toBe(false);
  });
});

describe('error words', () => {
  it('a suspension says until when and why', () => {
    const t = suspensionText('this account is suspended until 2026-12-08T10:00:00Z: spam links');
    expect(t).toMatch(/^This account is suspended until .*2026.*\. Reason: spam links$/);
    expect(suspensionText('this account is suspended until further notice: forever')).toBe('This account is suspended until further notice. Reason: forever');
    expect(suspensionText('odd')).toBe('This account is suspended: odd');
    expect(friendlyError(new ApiError(403, 'account_suspended', 'this account is suspended until further notice: x'))).toBe('This account is suspended until further notice. Reason: x');
  });
  it('a quota keeps the numbers', () => {
    expect(quotaText('upload quota exceeded: 1020 MiB of 1 GiB uploaded in the last 24 hours; 4 MiB left')).toBe('Upload limit reached: 1020 MiB of 1 GiB uploaded in the last 24 hours; 4 MiB left.');
    expect(friendlyError(new ApiError(413, 'quota_exceeded', ''))).toMatch(/upload limit/);
    expect(friendlyError(new ApiError(403, 'registration_closed', 'registration is closed'))).toBe('New accounts cannot be created here right now.');
  });
  it('a refused form field says what is wrong with it', () => {
    expect(formError(new ApiError(400, 'invalid_request', "username must be 3-32 characters: letters, digits, '_', '.' or '-'"))).toBe("Username must be 3-32 characters: letters, digits, '_', '.' or '-'.");
    expect(formError(new ApiError(409, 'username_taken', 'this username is taken'))).toBe('That username is already taken.');
  });
});
