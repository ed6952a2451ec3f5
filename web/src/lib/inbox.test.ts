import { describe, expect, it } from 'vitest';
import { applyFirstPage, applyLiveNotification, applyOlderPage, badgeText, bellLabel, emptyInbox, markReadUpTo, notificationTarget } from './inbox';
import type { Notification } from './types';

const n = (i: number, read = false): Notification => ({ id: `n${String(i).padStart(3, '0')}`, title: `T${i}`, body: `B${i}`, url: null, created_at: `2026-12-07T10:${String(i).padStart(2, '0')}:00Z`, read });

describe('service notifications', () => {
  it('live events are added once, newest first, and counted', () => {
    let s = applyLiveNotification(emptyInbox(), n(1));
    s = applyLiveNotification(s, n(3));
    s = applyLiveNotification(s, n(2));
    s = applyLiveNotification(s, n(3)); // a replay
    expect(s.items.map((x) => x.id)).toEqual(['n003', 'n002', 'n001']);
    expect(s.unread).toBe(3);
  });
  it('the first page takes the server count; events it does not hold stay on top', () => {
    let s = applyLiveNotification(emptyInbox(), n(5));
    s = applyLiveNotification(s, n(4));
    s = applyFirstPage(s, { notifications: [n(4), n(3, true), n(2)], next_cursor: 'n002', unread_count: 7 });
    expect(s.items.map((x) => x.id)).toEqual(['n005', 'n004', 'n003', 'n002']);
    expect(s.unread).toBe(8);
    expect(s.next).toBe('n002');
    expect(s.loaded).toBe(true);
  });
  it('older pages append without changing the count', () => {
    let s = applyFirstPage(emptyInbox(), { notifications: [n(9), n(8)], next_cursor: 'n008', unread_count: 4 });
    s = applyOlderPage(s, { notifications: [n(8), n(7), n(6)], next_cursor: null, unread_count: 4 });
    expect(s.items.map((x) => x.id)).toEqual(['n009', 'n008', 'n007', 'n006']);
    expect(s.unread).toBe(4);
    expect(s.next).toBeNull();
  });
  it('marking read up to the newest shown keeps newer ones counted', () => {
    let s = applyFirstPage(emptyInbox(), { notifications: [n(3), n(2), n(1)], next_cursor: null, unread_count: 5 });
    s = applyLiveNotification(s, n(4));
    s = markReadUpTo(s, 'n003');
    expect(s.items.map((x) => x.read)).toEqual([false, true, true, true]);
    expect(s.unread).toBe(1);
    expect(markReadUpTo(s, 'unknown')).toBe(s);
  });
  it('where an item leads: in the app, a new tab, or nowhere', () => {
    expect(notificationTarget('/c/abc')).toEqual({ kind: 'app', path: '/c/abc' });
    expect(notificationTarget('/settings?tab=1')).toEqual({ kind: 'app', path: '/settings?tab=1' });
    expect(notificationTarget('https://billing.example.com/inv/12')).toEqual({ kind: 'external', href: 'https://billing.example.com/inv/12' });
    expect(notificationTarget('/api/v1/media/x')).toEqual({ kind: 'external', href: '/api/v1/media/x' });
    for (const none of [null, undefined, '', '//evil.example', 'http://plain.example', 'javascript:alert(1)', 'https://']) expect(notificationTarget(none), String(none)).toBeNull();
  });
  it('the bell in words', () => {
    expect(bellLabel(0)).toBe('Notifications');
    expect(bellLabel(3)).toBe('Notifications, 3 unread');
    expect(badgeText(4)).toBe('4');
    expect(badgeText(12)).toBe('9+');
  });
});
