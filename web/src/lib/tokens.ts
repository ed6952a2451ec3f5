// Tokens: the access token in memory, the rotating refresh token in storage, refreshes serialized.
import { ApiError } from './errors';
import { jwtExpiry } from './jwt';
import type { LockFn } from './lock';
import type { TokenPair } from './types';

export const REFRESH_KEY = 'chatnode.refresh_token';

export interface TokenManagerOptions {
  storage: Storage;
  lock: LockFn;
  /** Calls POST /auth/refresh. */
  refreshCall: (refreshToken: string) => Promise<TokenPair>;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  /**
   * Called once the session is definitely gone (refresh refused), with the refusal: 401 for an
   * ended session, 403 `account_suspended` (its message says why and until when).
   */
  onSessionEnded?: (why: ApiError) => void;
  /** Called with every new access token (login, register, refresh), e.g. to renew the media cookie. */
  onAccessToken?: (token: string) => void;
}

/**
 * Keeps the access token in memory and the (rotating, single-use) refresh token in
 * storage. Every refresh runs under a cross-tab lock and re-reads the stored refresh
 * token inside it, so two tabs or two requests never spend the same token.
 */
export class TokenManager {
  private access: string | null = null;
  private accessExp = 0; // ms epoch
  private inflight: Promise<string> | null = null;
  private timer: unknown = null;
  private o: Required<Omit<TokenManagerOptions, 'onSessionEnded' | 'onAccessToken'>> & Pick<TokenManagerOptions, 'onSessionEnded' | 'onAccessToken'>;

  constructor(opts: TokenManagerOptions) {
    this.o = {
      now: () => Date.now(),
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
      ...opts,
    };
  }

  get refreshToken(): string | null {
    return this.o.storage.getItem(REFRESH_KEY);
  }

  hasSession(): boolean {
    return !!this.refreshToken;
  }

  /** Stores a fresh pair from login, register or refresh. */
  setTokens(pair: TokenPair): void {
    this.o.storage.setItem(REFRESH_KEY, pair.refresh_token);
    this.setAccess(pair.access_token);
  }

  private setAccess(token: string): void {
    this.access = token;
    const exp = jwtExpiry(token);
    this.accessExp = exp ? exp * 1000 : this.o.now() + 15 * 60_000;
    this.schedule();
    this.o.onAccessToken?.(token);
  }

  private schedule(): void {
    if (this.timer) this.o.clearTimer(this.timer);
    // Refresh proactively a minute before expiry (at least 5 s from now).
    const ms = Math.max(5_000, this.accessExp - this.o.now() - 60_000);
    this.timer = this.o.setTimer(() => {
      this.timer = null;
      this.refresh().catch(() => undefined);
    }, ms);
  }

  /** A valid access token, refreshing first if it is missing or about to expire. */
  async getAccessToken(): Promise<string> {
    if (this.access && this.accessExp - this.o.now() > 30_000) return this.access;
    return this.refresh();
  }

  /** The access token we have now (possibly stale), without refreshing. */
  currentAccessToken(): string | null {
    return this.access;
  }

  /** Spends the stored refresh token for a new pair. Concurrent calls share one request. */
  refresh(): Promise<string> {
    if (this.inflight) return this.inflight;
    const p = this.o.lock('chatnode-refresh', async () => {
      // Read inside the lock: another tab may have rotated it meanwhile.
      const stored = this.o.storage.getItem(REFRESH_KEY);
      if (!stored) {
        this.access = null;
        throw new ApiError(401, 'unauthenticated', 'Not logged in');
      }
      let pair: TokenPair;
      try {
        pair = await this.o.refreshCall(stored);
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          // Only forget it if nobody replaced it while we were asking.
          if (this.o.storage.getItem(REFRESH_KEY) === stored) this.o.storage.removeItem(REFRESH_KEY);
          this.clear();
          this.o.onSessionEnded?.(e);
        }
        throw e;
      }
      this.setTokens(pair);
      return pair.access_token;
    });
    this.inflight = p;
    p.then(
      () => (this.inflight = null),
      () => (this.inflight = null),
    );
    return p;
  }

  /** Forgets tokens (memory and storage). */
  clear(): void {
    this.access = null;
    this.accessExp = 0;
    if (this.timer) this.o.clearTimer(this.timer);
    this.timer = null;
    this.o.storage.removeItem(REFRESH_KEY);
  }
}
