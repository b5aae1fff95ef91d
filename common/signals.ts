// Cancellation helpers built on Node's own primitives (`events.once` with a
// signal, `timers/promises`): one SADP_CANCELLED error, a sleep whose timer
// is always cleared, a race against a signal and the drain-or-stop wait of a
// writable call. Every listener they add is removed when they settle, so a
// long-lived signal (a loader's lifetime) never accumulates listeners.
import { addAbortListener, once, type EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
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

/** Throws the SADP_CANCELLED error for `what` when `signal` has aborted: the check at the top of a loop step. */
export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw cancelledError(signal, what);
}

/** Resolves after `ms`, or rejects with SADP_CANCELLED naming `what` when `signal` aborts; the timer is always cleared. */
export async function sleep(ms: number, signal?: AbortSignal, what = 'sleep'): Promise<void> {
  throwIfCancelled(signal, what);
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (signal?.aborted) throw cancelledError(signal, what);
    throw err;
  }
}

/**
 * Resolves like `promise`, or rejects with SADP_CANCELLED naming `what` when
 * `signal` aborts first. The work behind `promise` goes on (it may be shared
 * by other callers); only this caller stops waiting.
 */
export async function raceSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  what: string,
): Promise<T> {
  if (!signal) return promise;
  throwIfCancelled(signal, what);
  // A plain listener, removed when the race settles: no AbortController (and
  // its DOMException) per call, as this runs once per batch on the loader.
  let listener: Disposable | undefined;
  const aborted = new Promise<never>((_, reject) => {
    listener = addAbortListener(signal, () => reject(cancelledError(signal, what)));
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    listener?.[Symbol.dispose]();
  }
}

/**
 * Resolves true when `emitter` emits `event`, false when one of `stopEvents`
 * fires (or `event` is preceded by an 'error') or `signal` aborts first: the
 * wait for 'drain' of a gRPC call, whose write callback never fires once the
 * call is cancelled.
 */
export async function waitForEvent(
  emitter: EventEmitter,
  event: string,
  options: { signal?: AbortSignal; stopEvents?: readonly string[] } = {},
): Promise<boolean> {
  const { signal, stopEvents = [] } = options;
  if (signal?.aborted) return false;
  const stop = new AbortController();
  const waits: Promise<boolean>[] = [
    once(emitter, event, { signal: stop.signal }).then(() => true),
    ...stopEvents.map((name) => once(emitter, name, { signal: stop.signal }).then(() => false)),
  ];
  if (signal) waits.push(once(signal, 'abort', { signal: stop.signal }).then(() => false));
  try {
    return await Promise.race(waits);
  } catch {
    // once() rejects on an 'error' emitted while waiting for another event.
    return false;
  } finally {
    stop.abort();
  }
}

/** Stops an abort listener: call it, or let a `using` declaration dispose of it. */
export type AbortListener = (() => void) & Disposable;

const noListener: AbortListener = Object.assign(() => undefined, { [Symbol.dispose]: () => undefined });

/**
 * Calls `fn` once when `signal` aborts (Node's `events.addAbortListener`; on
 * an already aborted signal, in a microtask). Returns what stops listening:
 * `using stop = onAbort(...)` for a scope, or call it when the guarded work
 * settles, or a long-lived signal keeps every finished call's listener.
 */
export function onAbort(signal: AbortSignal | undefined, fn: () => void): AbortListener {
  if (!signal) return noListener;
  const listener = addAbortListener(signal, fn);
  const stop = (): void => listener[Symbol.dispose]();
  return Object.assign(stop, { [Symbol.dispose]: stop });
}

/**
 * Aborts `controller` with `signal`'s reason when `signal` aborts (at once
 * if it already has): a child controller that the caller may also abort on
 * its own, e.g. the first failure of several sibling requests. Dispose of
 * the result when the child's work is over.
 */
export function abortWith(controller: AbortController, signal: AbortSignal | undefined): AbortListener {
  if (signal?.aborted) {
    controller.abort(signal.reason);
    return noListener;
  }
  return onAbort(signal, () => controller.abort(signal?.reason));
}

/**
 * Waits for `promise` to settle, at most `ms`; resolves true when it settled
 * (either way), false when the time ran out. The timer is always cleared and
 * the work behind `promise` goes on: for bounded waits during shutdown.
 */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const stop = new AbortController();
  const settled = promise.then(
    () => true,
    () => true,
  );
  const timedOut = delay(Math.max(0, ms), false, { signal: stop.signal }).catch(() => false);
  try {
    return await Promise.race([settled, timedOut]);
  } finally {
    stop.abort();
  }
}
