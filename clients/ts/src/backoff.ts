// Reconnect delays: exponential with full jitter, so that the clients of a
// gateway that died do not all come back at the same moment.

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 100, maxMs: 10_000 };

export function delay(backoff: Backoff, attempt: number): number {
  const cap = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 20));
  return Math.random() * cap;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
