/** Mutual exclusion across tabs (Web Locks) and within a tab (promise chain). */
export type LockFn = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** Serializes calls within this JS realm. */
export function inProcessLock(): LockFn {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    tails.set(name, tail);
    return run;
  };
}

/**
 * Storage-based lease for browsers without navigator.locks: the holder writes
 * `{owner, until}`; others wait until it is released or expired.
 */
export function storageLock(storage: Storage, leaseMs = 10_000, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): LockFn {
  const local = inProcessLock();
  const me = Math.random().toString(36).slice(2);
  return <T>(name: string, fn: () => Promise<T>) =>
    local(name, async () => {
      const key = `chatnode.lock.${name}`;
      for (let i = 0; i < 200; i++) {
        const raw = storage.getItem(key);
        const held = raw ? (JSON.parse(raw) as { owner: string; until: number }) : null;
        if (!held || held.until < Date.now() || held.owner === me) break;
        await sleep(50);
      }
      storage.setItem(key, JSON.stringify({ owner: me, until: Date.now() + leaseMs }));
      try {
        return await fn();
      } finally {
        const raw = storage.getItem(key);
        if (raw && JSON.parse(raw).owner === me) storage.removeItem(key);
      }
    });
}

/** The best lock this environment offers. */
export function defaultLock(): LockFn {
  const nav = typeof navigator !== 'undefined' ? (navigator as Navigator & { locks?: LockManager }) : undefined;
  if (nav?.locks?.request) {
    return <T>(name: string, fn: () => Promise<T>) => nav.locks!.request(name, () => fn()) as Promise<T>;
  }
  if (typeof localStorage !== 'undefined') return storageLock(localStorage);
  return inProcessLock();
}
