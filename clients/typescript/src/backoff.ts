/**
 * Reconnection delays: exponential, capped, with "equal jitter" (half the delay fixed,
 * half random), so that the thousand phones a server restart disconnects at once do
 * not all come back in the same instant, and none comes back at once in a tight loop.
 */
export interface BackoffOptions {
  /** The first retry's delay, before jitter. Default 500 ms. */
  initialMs?: number;
  /** The longest delay. Default 30 s. */
  maxMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 500, maxMs: 30_000 };

/** The delay before retry number `attempt` (0-based): within [base/2, base]. */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const max = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + random() * (base / 2));
}
