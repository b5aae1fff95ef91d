// Timers that always clear themselves, for backoff sleeps under an AbortSignal.
import { cancelledError } from './errors.js';

/** Resolves after `ms`, or rejects with SADP_CANCELLED when `signal` aborts; the timer is always cleared. */
export function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  if (signal?.aborted) return Promise.reject(cancelledError(signal, what));
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelledError(signal, what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
