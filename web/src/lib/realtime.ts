import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff';
import { ApiError } from './errors';
import type { StreamPos } from './streampos';
import { CLOSE_CODE, type ClientFrame, type ServerFrame, type User } from './types';

export type ConnState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface RealtimeOptions {
  url: string;
  createSocket: (url: string) => SocketLike;
  getToken: () => Promise<string>;
  refreshToken: () => Promise<string>;
  streamPos: () => StreamPos | null;
  onEvent: (ev: ServerFrame) => void;
  onState?: (st: ConnState) => void;
  /** Called when the connection is authenticated and caught up (after `synced`). */
  onLive?: (user: User | null) => void;
  /** Called when the session is gone (refresh refused). */
  onAuthFailed?: () => void;
  backoff?: BackoffPolicy;
  random?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  pingMs?: number;
  pongTimeoutMs?: number;
  syncTimeoutMs?: number;
  isOnline?: () => boolean;
}

const OPEN = 1;

/** Every frame this client sends is a protocol `ClientFrame` (types from the Rust crate). */
function encode(frame: ClientFrame): string {
  return JSON.stringify(frame);
}

/** The one WebSocket: auth frame first, sync on reconnect, ping, backoff with jitter. */
export class Realtime {
  private ws: SocketLike | null = null;
  private attempt = 0;
  private stopped = true;
  private live = false;
  private retryTimer: unknown = null;
  private pingTimer: unknown = null;
  private pongTimer: unknown = null;
  private syncTimer: unknown = null;
  private user: User | null = null;
  private authFailures = 0;
  /** The conversation on screen (`view` frame), re-sent on every new connection. */
  private view: string | null = null;
  /** What this connection was last told (a new connection starts with nothing in view). */
  private sentView: string | null = null;
  /** `ready` arrived on the current connection (frames other than auth may be sent). */
  private readyOnThis = false;
  state: ConnState = 'offline';
  private o: RealtimeOptions & Required<Pick<RealtimeOptions, 'setTimer' | 'clearTimer' | 'random' | 'backoff' | 'pingMs' | 'pongTimeoutMs' | 'syncTimeoutMs'>>;

  constructor(opts: RealtimeOptions) {
    this.o = {
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
      random: Math.random,
      backoff: DEFAULT_BACKOFF,
      pingMs: 25_000,
      pongTimeoutMs: 10_000,
      syncTimeoutMs: 15_000,
      ...opts,
    };
  }

  private setState(st: ConnState) {
    if (st === this.state) return;
    this.state = st;
    this.o.onState?.(st);
  }

  get isLive(): boolean {
    return this.live && this.ws?.readyState === OPEN;
  }

  /** Number of reconnect attempts since the last successful connection. */
  get attempts(): number {
    return this.attempt;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.live = false;
    this.clearTimers();
    if (this.retryTimer) this.o.clearTimer(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        /* ignore */
      }
    }
    this.setState('offline');
  }

  /** Reconnect now (e.g. the browser came back online). */
  reconnectNow(): void {
    if (this.stopped) return;
    if (this.ws && (this.ws.readyState === OPEN || this.ws.readyState === 0)) return;
    if (this.retryTimer) this.o.clearTimer(this.retryTimer);
    this.retryTimer = null;
    void this.connect();
  }

  /** Sends a frame if the connection is live; false otherwise (caller keeps it queued). */
  send(frame: ClientFrame): boolean {
    if (!this.isLive) return false;
    try {
      this.ws!.send(encode(frame));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Says which conversation is on screen (`{"type":"view"}`, a server extension): the server
   * skips push notifications for it. `null` when none is, or the page is hidden. Sent at once
   * when connected, and again after every reconnect (right after `ready`).
   */
  setView(conversationId: string | null): void {
    this.view = conversationId;
    this.sendView();
  }

  get currentView(): string | null {
    return this.view;
  }

  private sendView(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || this.sentView === this.view || !this.readyOnThis) return;
    try {
      ws.send(encode({ type: 'view', conversation_id: this.view }));
      this.sentView = this.view;
    } catch {
      /* the reconnect sends it */
    }
  }

  private clearTimers() {
    for (const t of [this.pingTimer, this.pongTimer, this.syncTimer]) if (t) this.o.clearTimer(t);
    this.pingTimer = this.pongTimer = this.syncTimer = null;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setState(this.attempt === 0 && !this.user ? 'connecting' : 'reconnecting');
    let token: string;
    try {
      token = await this.o.getToken();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.stop();
        this.o.onAuthFailed?.();
        return;
      }
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    let ws: SocketLike;
    try {
      ws = this.o.createSocket(this.o.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.live = false;
    this.sentView = null;
    this.readyOnThis = false;
    ws.onopen = () => {
      ws.send(encode({ type: 'auth', token }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let data: ServerFrame;
      try {
        data = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.handle(data);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.live = false;
      this.clearTimers();
      if (this.stopped) return;
      if (ev.code === CLOSE_CODE.UNAUTHENTICATED) {
        // Token rejected: refresh, then reconnect (backing off if it keeps happening).
        this.authFailures++;
        this.setState('reconnecting');
        this.o.refreshToken().then(
          () => (this.authFailures > 2 ? this.scheduleReconnect() : void this.connect()),
          (e) => {
            if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
              this.stop();
              this.o.onAuthFailed?.();
            } else this.scheduleReconnect();
          },
        );
        return;
      }
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    const offline = this.o.isOnline ? !this.o.isOnline() : false;
    this.setState(offline ? 'offline' : 'reconnecting');
    const delay = backoffDelay(this.attempt, this.o.backoff, this.o.random);
    this.attempt++;
    if (this.retryTimer) this.o.clearTimer(this.retryTimer);
    this.retryTimer = this.o.setTimer(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
  }

  private goLive() {
    if (this.live) return;
    if (this.syncTimer) this.o.clearTimer(this.syncTimer);
    this.syncTimer = null;
    this.live = true;
    this.attempt = 0;
    this.authFailures = 0;
    this.setState('connected');
    this.o.onLive?.(this.user);
  }

  private schedulePing() {
    if (this.pingTimer) this.o.clearTimer(this.pingTimer);
    this.pingTimer = this.o.setTimer(() => {
      this.pingTimer = null;
      const ws = this.ws;
      if (!ws || ws.readyState !== OPEN) return;
      try {
        ws.send(encode({ type: 'ping' }));
      } catch {
        /* ignore */
      }
      this.pongTimer = this.o.setTimer(() => {
        // No pong: the connection is dead even if the socket does not know yet.
        this.pongTimer = null;
        try {
          ws.close(4000, 'ping timeout');
        } catch {
          /* ignore */
        }
        ws.onclose?.({ code: 1006 });
      }, this.o.pongTimeoutMs);
      this.schedulePing();
    }, this.o.pingMs);
  }

  private handle(ev: ServerFrame) {
    if (ev.type === 'pong') {
      if (this.pongTimer) this.o.clearTimer(this.pongTimer);
      this.pongTimer = null;
      return;
    }
    if (ev.type === 'ready') {
      this.user = ev.user;
      this.readyOnThis = true;
      this.schedulePing();
      const sp = this.o.streamPos();
      if (sp && sp.value !== null) {
        this.ws?.send(encode({ type: 'sync', since: sp.value }));
        this.sendView();
        this.syncTimer = this.o.setTimer(() => this.goLive(), this.o.syncTimeoutMs);
        this.o.onEvent(ev);
      } else {
        sp?.observe(ev.stream_pos);
        this.sendView();
        this.o.onEvent(ev);
        this.goLive();
      }
      return;
    }
    if (ev.type === 'synced') {
      this.o.streamPos()?.observe(ev.stream_pos);
      this.o.onEvent(ev);
      this.goLive();
      return;
    }
    this.o.onEvent(ev);
    // Advance the position only after the event was applied.
    const pos = 'stream_pos' in ev ? ev.stream_pos : undefined;
    if (pos !== undefined) this.o.streamPos()?.observe(pos);
  }
}

export function wsUrl(loc: { protocol: string; host: string }, path = '/api/v1/ws'): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${path}`;
}
