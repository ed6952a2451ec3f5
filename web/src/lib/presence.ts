// Whether the client can vouch for the online/offline state it shows. Presence only stays true
// while `presence` events can reach us: once the WebSocket drops, a friend shown "online" may
// have left minutes ago, so we say we do not know until fresh data has arrived again.
import { lastSeen } from './format';
import type { ConnState } from './realtime';

export type Presence = 'online' | 'offline' | 'unknown';

/** What to show for a person: their `online` flag only while presence is trusted. */
export function shownPresence(online: boolean | null | undefined, trusted: boolean): Presence {
  if (!trusted) return 'unknown';
  return online ? 'online' : 'offline';
}

/** "online", "last seen 5 min ago", or, when we cannot tell, "status unknown". */
export function presenceText(p: Presence, lastSeenAt: string | null, now = Date.now()): string {
  if (p === 'unknown') return 'status unknown';
  return lastSeen(p === 'online', lastSeenAt, now);
}

/**
 * Trust in presence data. Lost as soon as the connection is anything but `connected`; given back
 * only by a reload that *started* after the connection went live again (so `presence` events are
 * flowing) and finished while it still is. A reload that began before a later drop does not
 * count: its answer may predate events we then missed.
 */
export class PresenceTrust {
  private epoch = 0;
  private live = false;
  private trusted = false;

  constructor(private readonly onChange: (trusted: boolean) => void) {}

  get value(): boolean {
    return this.trusted;
  }

  /** The WebSocket's state changed. */
  connection(state: ConnState): void {
    if (state === 'connected') {
      if (!this.live) {
        this.live = true;
        this.epoch++;
      }
      return;
    }
    if (this.live) this.epoch++;
    this.live = false;
    this.set(false);
  }

  /**
   * A reload of presence data (conversations with their peers, friends) is starting; call the
   * returned function with whether it succeeded.
   */
  beginRefresh(): (ok: boolean) => void {
    const epoch = this.epoch;
    const live = this.live;
    return (ok) => {
      if (ok && live && this.live && epoch === this.epoch) this.set(true);
    };
  }

  private set(t: boolean): void {
    if (t === this.trusted) return;
    this.trusted = t;
    this.onChange(t);
  }
}
