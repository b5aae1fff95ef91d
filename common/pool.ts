// Bounded concurrency, once: a priority pool (a counting semaphore whose
// waiters queue by priority, FIFO within one) and the two loops built on the
// same idea - run a function over a list with at most N calls in flight, and
// the same with results consumed in order behind a bounded window.
import { SadpError, Status } from './errors.js';
import { cancelledError, onAbort, throwIfCancelled } from './signals.js';

export interface Pool {
  /**
   * Runs `task` once a slot is free, after every waiter of a lower
   * `priority` (default 0); rejects with SADP_CANCELLED if `signal` aborts
   * while waiting.
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal, priority?: number): Promise<T>;
  /**
   * The number of slots (a positive integer). Raising it starts waiters at
   * once; lowering it lets running tasks finish and starts no waiter until
   * fewer than the new number run.
   */
  concurrency: number;
  readonly active: number;
  readonly waiting: number;
}

interface Waiter {
  grant: () => void;
  priority: number;
}

function checkConcurrency(concurrency: number): void {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new SadpError('SADP_INVALID_OPTION', `concurrency must be a positive integer, got ${concurrency}`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
}

/** A pool of `concurrency` slots; its queue holds one entry per waiting caller, so its bound is the callers' own. */
export function createPool(concurrency: number): Pool {
  checkConcurrency(concurrency);
  let limit = concurrency;
  let active = 0;
  const queue: Waiter[] = [];

  const release = (): void => {
    // Over a lowered limit the slot is dropped rather than passed on.
    const next = active > limit ? undefined : queue.shift();
    if (next) next.grant();
    else active--;
  };

  const acquire = (signal: AbortSignal | undefined, priority: number): Promise<void> => {
    if (signal?.aborted) return Promise.reject(cancelledError(signal, 'read'));
    if (active < limit) {
      active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        grant: () => {
          stopListening();
          resolve(); // the slot passes from the releaser to this waiter; `active` is unchanged
        },
      };
      const stopListening = onAbort(signal, () => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(cancelledError(signal, 'read'));
      });
      // After the last waiter of the same or a lower priority (FIFO within one).
      let at = queue.length;
      while (at > 0 && (queue[at - 1] as Waiter).priority > priority) at--;
      queue.splice(at, 0, waiter);
    });
  };

  return {
    async run<T>(task: () => Promise<T>, signal?: AbortSignal, priority = 0): Promise<T> {
      await acquire(signal, priority);
      try {
        return await task();
      } finally {
        release();
      }
    },
    get concurrency() {
      return limit;
    },
    set concurrency(n: number) {
      checkConcurrency(n);
      limit = n;
      while (active < limit && queue.length > 0) {
        active++;
        (queue.shift() as Waiter).grant();
      }
    },
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
  };
}

export interface ForEachOptions {
  concurrency: number;
  signal?: AbortSignal;
  /** What the loop does, for the SADP_CANCELLED message. */
  what?: string;
}

/**
 * Calls `fn(items[i], i)` for every item, in item order, with at most
 * `concurrency` calls in flight (a slow call never holds the others back).
 * After the first failure no new call starts; the calls in flight finish,
 * then the first failure is thrown (no work is left running).
 */
export async function forEachLimited<T>(
  items: ArrayLike<T>,
  options: ForEachOptions,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  checkConcurrency(options.concurrency);
  const what = options.what ?? 'bounded loop';
  let next = 0;
  let failed = false;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        throwIfCancelled(options.signal, what);
        await fn(items[i] as T, i);
      } catch (err) {
        if (!failed) {
          failed = true;
          failure = err;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, items.length) }, worker));
  if (failed) throw failure as Error;
}

export interface ForEachOrderedOptions extends ForEachOptions {
  /** Results finished but not yet consumed, at most; default 2 x concurrency. */
  window?: number;
}

/**
 * Like forEachLimited, with each result handed to `consume` in item order
 * (one consume at a time): `work` runs ahead of `consume` by at most
 * `window` items, so finished results wait in a bounded buffer.
 */
export async function forEachOrdered<T, R>(
  items: readonly T[],
  options: ForEachOrderedOptions,
  work: (item: T, index: number) => Promise<R>,
  consume: (result: R, index: number) => Promise<void>,
): Promise<void> {
  checkConcurrency(options.concurrency);
  const window = options.window ?? options.concurrency * 2;
  const what = options.what ?? 'bounded loop';
  const done = new Map<number, R>();
  const parked: Array<() => void> = [];
  const wakeAll = (): void => {
    for (const resolve of parked.splice(0)) resolve();
  };
  let started = 0;
  let consumed = 0;
  let consuming = false;
  let failed = false;
  let failure: unknown;
  const fail = (err: unknown): void => {
    if (!failed) {
      failed = true;
      failure = err;
    }
    wakeAll();
  };

  const drainDone = async (): Promise<void> => {
    if (consuming) return;
    consuming = true;
    try {
      while (!failed && done.has(consumed)) {
        const result = done.get(consumed) as R;
        done.delete(consumed);
        await consume(result, consumed);
        consumed++;
        wakeAll();
      }
    } finally {
      consuming = false;
    }
  };

  const worker = async (): Promise<void> => {
    while (!failed && started < items.length) {
      if (started >= consumed + window) {
        await new Promise<void>((resolve) => parked.push(resolve));
        continue;
      }
      const i = started++;
      try {
        throwIfCancelled(options.signal, what);
        done.set(i, await work(items[i] as T, i));
        await drainDone();
      } catch (err) {
        fail(err);
      }
    }
  };
  // Parked workers are released by a consume or by a failure.
  await Promise.all(Array.from({ length: Math.min(options.concurrency, items.length) }, worker));
  if (failed) throw failure as Error;
  await drainDone();
}
