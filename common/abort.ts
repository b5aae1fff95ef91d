// Cancellation under an AbortSignal, shared by the loader, its scorer client
// and the trainer SDK: one SADP_CANCELLED error and a sleep whose timer is
// always cleared (a pending timer would keep the process alive and a
// forgotten listener would leak on a long-lived signal).
import { SadpError, Status } from './errors.js';

/**
 * The SADP_CANCELLED error (status CANCELLED) for `what` stopped by `signal`.
 * A reason that already is a SADP_CANCELLED SadpError (e.g. "training stopped
 * by SIGTERM") passes through so the first, most specific message survives;
 * any other reason becomes the `cause`.
 */
export function cancelledError(signal: AbortSignal | undefined, what: string): SadpError {
  const reason: unknown = signal?.reason;
  if (reason instanceof SadpError && reason.code === 'SADP_CANCELLED') return reason;
  return new SadpError('SADP_CANCELLED', `${what} cancelled`, { status: Status.CANCELLED, cause: reason });
}

/** Resolves after `ms`, or rejects with SADP_CANCELLED naming `what` when `signal` aborts; the timer is always cleared. */
export function sleep(ms: number, signal?: AbortSignal, what = 'sleep'): Promise<void> {
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

/** Throws the SADP_CANCELLED error for `what` when `signal` has aborted: the check at the top of a loop step. */
export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw cancelledError(signal, what);
}
