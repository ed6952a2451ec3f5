import { describe, expect, it } from 'vitest';
import { auditLine, chartGeometry, chartSummary, hourRange, isSuspended, niceCeil, registrationLink, suspendUntil, suspensionState, untilWords, usagePercent, usageWords } from './admin';
import type { AuditEntry, User } from './types';

const user = (id: string, display_name: string): User => ({ id, username: display_name.toLowerCase(), display_name, avatar_url: null, bio: null, online: false, last_seen_at: null, bot: false });
const ann = user('a', 'Ann');
const bob = user('b', 'Bob');
const entry = (o: Partial<AuditEntry>): AuditEntry => ({ id: 'e', actor: ann, action: 'grant_admin', target_user: bob, conversation_id: null, seq: null, details: null, created_at: '2026-12-07T10:00:00Z', ...o });
const name = (u: User) => u.display_name;

describe('suspensions', () => {
  it('durations become an `until`, "until lifted" is null', () => {
    const now = Date.UTC(2026, 11, 7, 10);
    expect(suspendUntil(3_600_000, now)).toBe('2026-12-07T11:00:00.000Z');
    expect(suspendUntil(7 * 24 * 3_600_000, now)).toBe('2026-12-14T10:00:00.000Z');
    expect(suspendUntil(null, now)).toBeNull();
  });
  it('reads the state: timed ones end by themselves, year 9999 is "until lifted"', () => {
    const now = Date.UTC(2026, 11, 7, 10);
    expect(isSuspended({ suspended_until: null }, now)).toBe(false);
    expect(isSuspended({ suspended_until: '2026-12-07T09:00:00Z' }, now)).toBe(false);
    expect(isSuspended({ suspended_until: '2026-12-07T11:00:00Z' }, now)).toBe(true);
    expect(suspensionState({ suspended_until: '9999-12-31T23:59:59Z', suspension_reason: 'spam' }, now)).toBe('Suspended until lifted: spam');
    expect(suspensionState({ suspended_until: '2026-12-07T11:00:00Z', suspension_reason: null }, now)).toMatch(/^Suspended until .*2026/);
    expect(suspensionState({ suspended_until: null, suspension_reason: 'x' }, now)).toBe('');
    expect(untilWords(null)).toBe('until lifted');
  });
});

describe('audit log lines', () => {
  it('says who did what to whom', () => {
    expect(auditLine(entry({}), name)).toBe('Ann made Bob a system admin');
    expect(auditLine(entry({ action: 'revoke_admin' }), name)).toBe('Ann took the system admin role from Bob');
    expect(auditLine(entry({ action: 'unsuspend' }), name)).toBe('Ann lifted the suspension of Bob');
    expect(auditLine(entry({ actor: null, target_user: ann }), name)).toBe('The command line made Ann a system admin');
    expect(auditLine(entry({ target_user: null }), name)).toBe('Ann made a deleted account a system admin');
    const you = (u: User) => (u.id === 'a' ? 'you' : u.display_name);
    expect(auditLine(entry({ action: 'unsuspend' }), you)).toBe('You lifted the suspension of Bob');
    expect(auditLine(entry({ actor: null, target_user: ann }), you)).toBe('The command line made you a system admin');
  });
  it('suspensions with their end and reason', () => {
    expect(auditLine(entry({ action: 'suspend', details: 'until lifted (spam, again)' }), name)).toBe('Ann suspended Bob until lifted (spam, again)');
    const timed = auditLine(entry({ action: 'suspend', details: 'until 2026-12-08T10:00:00Z (rude (very))' }), name);
    expect(timed).toMatch(/^Ann suspended Bob until .*2026.* \(rude \(very\)\)$/);
    expect(timed).not.toContain('T10:00:00Z');
    expect(auditLine(entry({ action: 'suspend', details: 'odd' }), name)).toBe('Ann suspended Bob (odd)');
  });
  it('messages, reports, invites and service tokens', () => {
    expect(auditLine(entry({ action: 'delete_message', conversation_id: 'c', seq: 12 }), name)).toBe('Ann deleted a message by Bob (message 12 of its conversation)');
    expect(auditLine(entry({ action: 'resolve_report', details: 'warned' }), name)).toBe('Ann resolved a report about Bob: “warned”');
    expect(auditLine(entry({ action: 'resolve_report', details: null }), name)).toBe('Ann resolved a report about Bob');
    expect(auditLine(entry({ action: 'create_registration_invite', target_user: null, details: 'Ab3x…: 5 use(s), no expiry' }), name)).toBe('Ann made the registration invite Ab3x… (5 uses, no expiry)');
    expect(auditLine(entry({ action: 'create_registration_invite', target_user: null, details: 'Ab3x…: 1 use(s), expires 2026-12-31T00:00:00Z' }), name)).toMatch(/^Ann made the registration invite Ab3x… \(1 use, expires .*\)$/);
    expect(auditLine(entry({ action: 'revoke_registration_invite', target_user: null, details: 'Ab3x…' }), name)).toBe('Ann revoked the registration invite Ab3x…');
    expect(auditLine(entry({ actor: null, action: 'create_service_token', target_user: null, details: 'billing' }), name)).toBe('The command line made the service token “billing”');
    expect(auditLine(entry({ action: 'something_new', details: 'x' }), name)).toBe('Ann: something new (Bob) (x)');
  });
});

describe('messages per hour chart', () => {
  it('rounds the scale up to a whole round number, so bars use at least 40% of the height', () => {
    expect([0, 1, 3, 7, 10, 11, 42, 180, 214, 999].map(niceCeil)).toEqual([1, 1, 3, 8, 10, 15, 50, 200, 250, 1000]);
    for (let n = 1; n < 5000; n += 7) expect(n / niceCeil(n)).toBeGreaterThanOrEqual(0.4);
  });
  it('bars fill the width; heights follow the scale; small values stay visible', () => {
    const values = Array.from({ length: 24 }, (_, i) => (i === 23 ? 40 : i === 0 ? 0.5 : i === 1 ? 1 : 0));
    values[0] = 0;
    const c = chartGeometry(values, 240, 100, 2);
    expect(c.max).toBe(40);
    expect(c.ticks).toEqual([0, 20, 40]);
    expect(c.bars).toHaveLength(24);
    expect(c.bars[0]).toEqual({ x: 1, y: 100, width: 8, height: 0, value: 0 });
    expect(c.bars[1].height).toBe(2.5); // 1 of 40 on 100 units
    expect(c.bars[23]).toMatchObject({ x: 231, height: 100, y: 0, value: 40 });
    expect(chartGeometry([15], 10, 100).ticks).toEqual([0, 15]);
    const tiny = chartGeometry([1, 1000], 20, 100, 0);
    expect(tiny.bars[0].height).toBe(1);
  });
  it('an empty day and bad values draw nothing', () => {
    const c = chartGeometry([0, -3, NaN], 30, 50);
    expect(c.max).toBe(1);
    expect(c.bars.every((b) => b.height === 0)).toBe(true);
  });
  it('says it in words, with the busiest hour', () => {
    const now = Date.UTC(2026, 11, 7, 12, 30);
    const values = Array.from({ length: 24 }, () => 0);
    expect(chartSummary(values, now)).toBe('No messages in the last 24 hours.');
    values[10] = 12;
    values[11] = 3;
    expect(chartSummary(values, now)).toBe(`15 messages in the last 24 hours; the busiest hour was ${hourRange(10, 24, now)}, with 12.`);
    expect(hourRange(23, 24, now)).toMatch(/–/);
  });
});

describe('usage and invites', () => {
  it('usage against a limit, or none', () => {
    expect(usageWords(5 * 1024 * 1024, 1024 * 1024 * 1024)).toBe('5 MB of 1 GB (1%)');
    expect(usageWords(512 * 1024 * 1024, 1024 * 1024 * 1024)).toBe('512 MB of 1 GB (50%)');
    expect(usageWords(2048, null)).toBe('2 KB (no limit)');
    expect(usagePercent(0, 100)).toBe(0);
    expect(usagePercent(1, 1000)).toBe(1);
    expect(usagePercent(2000, 1000)).toBe(100);
  });
  it('a registration link opens the form with the code', () => {
    expect(registrationLink('https://chat.example', 'Ab3x_y-Z')).toBe('https://chat.example/register?code=Ab3x_y-Z');
  });
});
