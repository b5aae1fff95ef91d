// A counting semaphore that bounds in-flight GETs across every read() of one
// reader. Waiters queue FIFO; the queue holds one entry per range the callers
// asked for, so its bound is the callers' own window.
import { cancelledError } from '../../common/abort.js';
import { SadpError, Status } from '../../common/errors.js';

export interface Limiter {
  /** Runs `task` once a slot is free; rejects with SADP_CANCELLED if `signal` aborts while waiting. */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  readonly active: number;
  readonly waiting: number;
}

interface Waiter {
  grant: () => void;
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

  const acquire = (signal?: AbortSignal): Promise<void> => {
    if (signal?.aborted) return Promise.reject(cancelledError(signal, 'read'));
    if (active < concurrency) {
      active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
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
      queue.push(waiter);
    });
  };

  return {
    async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      await acquire(signal);
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
