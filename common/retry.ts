// One backoff and one retry loop for every caller (storage reads, scorer
// calls, score forwarding, the trainer's loader client). What is worth
// retrying is the caller's domain knowledge: each passes its own classifier
// (storage errors, scorer statuses, loader statuses) and the loop stays the
// same.
import { cancelledError, sleep, throwIfCancelled } from './signals.js';

/**
 * `full`: uniform(0, ceiling) - spreads a burst of throttled readers out
 * instead of letting them retry in lockstep (AWS architecture blog,
 * "Exponential Backoff and Jitter"). `equal`: ceiling/2 + uniform(0,
 * ceiling/2) - never retries immediately, for clients reconnecting to a
 * service that just went away.
 */
type Jitter = 'full' | 'equal';

export interface BackoffOptions {
  /** Ceiling of the first retry's delay; doubles per attempt. */
  baseDelayMs: number;
  /** Largest ceiling. */
  maxDelayMs: number;
  /** Default `full`. */
  jitter?: Jitter;
  /** Default Math.random (tests pass a fixed one). */
  random?: () => number;
}

/** The delay before retry number `attempt` (1 = the first retry): ceiling min(max, base * 2^(attempt-1)). */
export function backoffDelayMs(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  if (options.jitter === 'equal') return Math.round(ceiling / 2 + random() * (ceiling / 2));
  return Math.floor(random() * ceiling);
}

/** Whether a failure is transient in the caller's domain. */
export type RetryClassifier = (err: unknown) => boolean;

export interface RetryPolicy extends BackoffOptions {
  /** Calls in all, the first included; Infinity retries until `signal` aborts. */
  attempts: number;
}

export interface RetryOptions extends RetryPolicy {
  classify: RetryClassifier;
  signal?: AbortSignal;
  /** What is being done, for the SADP_CANCELLED message. */
  what: string;
  /** Called before each backoff sleep (metrics, logs). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Calls `fn(attempt)` (attempt 1, 2, ...) until it resolves, a failure is not
 * transient by `classify`, or `attempts` calls have failed; then rethrows the
 * last failure as is. Rejects with SADP_CANCELLED once `signal` aborts.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    throwIfCancelled(options.signal, options.what);
    try {
      return await fn(attempt);
    } catch (err) {
      if (options.signal?.aborted) throw cancelledError(options.signal, options.what);
      if (attempt >= options.attempts || !options.classify(err)) throw err;
      const delayMs = backoffDelayMs(attempt, options);
      options.onRetry?.(err, attempt, delayMs);
      await sleep(delayMs, options.signal, options.what);
    }
  }
}
