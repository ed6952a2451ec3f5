export function dayKey(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

export function dayLabel(iso: string, now = new Date()): string {
  const d = new Date(iso);
  const today = dayKey(now.toISOString());
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  const k = dayKey(iso);
  if (k === today) return 'Today';
  if (k === dayKey(y.toISOString())) return 'Yesterday';
  return formatter('day', { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' }).format(d);
}

// Formatters are made once: toLocale*String() builds a new one on every call, which adds up
// over a screenful of messages.
const fmt = new Map<string, Intl.DateTimeFormat>();
function formatter(key: string, o: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  let f = fmt.get(key);
  if (!f) fmt.set(key, (f = new Intl.DateTimeFormat(undefined, o)));
  return f;
}

export function timeLabel(iso: string): string {
  return formatter('time', { hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
}

/** Short label for a conversation list: time today, weekday this week, else date. */
export function shortWhen(iso: string, now = new Date()): string {
  const d = new Date(iso);
  if (dayKey(iso) === dayKey(now.toISOString())) return timeLabel(iso);
  const diff = now.getTime() - d.getTime();
  if (diff < 6 * 86400_000) return formatter('weekday', { weekday: 'short' }).format(d);
  return formatter('date', { month: 'short', day: 'numeric' }).format(d);
}

export function lastSeen(online: boolean, iso: string | null, now = Date.now()): string {
  if (online) return 'online';
  if (!iso) return 'offline';
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return 'last seen just now';
  if (s < 3600) return `last seen ${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `last seen ${Math.floor(s / 3600)} h ago`;
  return `last seen ${new Date(iso).toLocaleDateString(undefined, { month: 'short', day: 'numeric' })}`;
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return '?';
  const a = [...parts[0]][0] ?? '';
  const b = parts.length > 1 ? ([...parts[parts.length - 1]][0] ?? '') : '';
  return (a + b).toUpperCase();
}

/** Stable colour index (0..7) for an avatar. */
export function colorIndex(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 8;
}

export function titleWithUnread(total: number, base = 'ChatNode'): string {
  return total > 0 ? `(${total}) ${base}` : base;
}

/** "1 member", "3 members". */
export function memberCount(n: number): string {
  return `${n} ${n === 1 ? 'member' : 'members'}`;
}
