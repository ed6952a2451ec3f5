import { describe, expect, it } from 'vitest';
import { PresenceTrust, presenceText, shownPresence } from './presence';

describe('shownPresence / presenceText', () => {
  it('shows online/offline only while trusted', () => {
    expect(shownPresence(true, true)).toBe('online');
    expect(shownPresence(false, true)).toBe('offline');
    expect(shownPresence(undefined, true)).toBe('offline');
    expect(shownPresence(true, false)).toBe('unknown');
    expect(shownPresence(false, false)).toBe('unknown');
  });

  it('never says "online" (or "last seen") for an unknown presence', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(presenceText('online', null, now)).toBe('online');
    expect(presenceText('offline', '2026-01-01T11:55:00Z', now)).toBe('last seen 5 min ago');
    expect(presenceText('unknown', '2026-01-01T11:55:00Z', now)).toBe('status unknown');
  });
});

describe('PresenceTrust', () => {
  function trust() {
    const changes: boolean[] = [];
    const t = new PresenceTrust((v) => changes.push(v));
    return { t, changes };
  }

  it('is not trusted before the first live connection and its reload', () => {
    const { t, changes } = trust();
    t.connection('connecting');
    expect(t.value).toBe(false);
    t.connection('connected');
    expect(t.value).toBe(false); // connected, but the data predates the socket
    t.beginRefresh()(true);
    expect(t.value).toBe(true);
    expect(changes).toEqual([true]);
  });

  it('is lost as soon as the connection drops, and comes back only with a fresh reload', () => {
    const { t, changes } = trust();
    t.connection('connected');
    t.beginRefresh()(true);
    t.connection('reconnecting');
    expect(t.value).toBe(false);
    t.connection('connected');
    expect(t.value).toBe(false);
    t.beginRefresh()(true);
    expect(t.value).toBe(true);
    t.connection('offline');
    expect(t.value).toBe(false);
    expect(changes).toEqual([true, false, true, false]);
  });

  it('ignores a reload that started before a later drop, a failed reload, and one started while down', () => {
    const { t } = trust();
    t.connection('connected');
    const stale = t.beginRefresh();
    t.connection('reconnecting');
    t.connection('connected');
    stale(true); // answered after the reconnect, but may predate events missed while down
    expect(t.value).toBe(false);
    t.beginRefresh()(false);
    expect(t.value).toBe(false);
    t.connection('reconnecting');
    const whileDown = t.beginRefresh();
    t.connection('connected');
    whileDown(true);
    expect(t.value).toBe(false);
    t.beginRefresh()(true);
    expect(t.value).toBe(true);
  });
});
