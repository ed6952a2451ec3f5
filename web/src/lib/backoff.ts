export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** Fraction of the delay that is randomized (0..1). 0.5 = "equal jitter". */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 30_000, jitter: 0.5 };

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential growth capped at
 * maxMs, with the top `jitter` fraction randomized so clients do not reconnect in lockstep.
 * Result is always within [cap*(1-jitter), cap] where cap = min(maxMs, baseMs*2^attempt).
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const a = Math.max(0, Math.min(attempt, 30));
  const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** a);
  const fixed = cap * (1 - policy.jitter);
  return Math.round(fixed + (cap - fixed) * random());
}
