// A counting semaphore that bounds in-flight GETs across every read() of one
// reader. Waiters queue by priority (lower first), FIFO within a priority, so
// the batch a trainer waits on is not stuck behind every other stream's
// prefetches; the queue holds one entry per range the callers asked for, so
// its bound is the callers' own window.
import { cancelledError } from '../../common/abort.js';
import { SadpError, Status } from '../../common/errors.js';

export interface Limiter {
  /**
   * Runs `task` once a slot is free, after every waiter of a lower
   * `priority` (default 0); rejects with SADP_CANCELLED if `signal` aborts
   * while waiting.
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal, priority?: number): Promise<T>;
  readonly active: number;
  readonly waiting: number;
}

interface Waiter {
  grant: () => void;
  priority: number;
}

export function createLimiter(concurrency: number): Limiter {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new SadpError('SADP_INVALID_OPTION', `concurrency must be a positive integer, got ${concurrency}`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
  let active = 0;
  const queue: Waiter[] = [];

  const release = (): void => {
    const next = queue.shift();
    if (next) next.grant();
    else active--;
  };

  const acquire = (signal: AbortSignal | undefined, priority: number): Promise<void> => {
    if (signal?.aborted) return Promise.reject(cancelledError(signal, 'read'));
    if (active < concurrency) {
      active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(); // the slot passes from the releaser to this waiter; `active` is unchanged
        },
      };
      const onAbort = (): void => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(cancelledError(signal, 'read'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
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
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
  };
}
