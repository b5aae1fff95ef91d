// The loader's global in-flight byte budget: a byte-counting semaphore with a
// FIFO wait queue. Sample sizes are known from the shard index before any GET,
// so bytes are reserved before a fetch starts and released once the batch is
// written to the trainer's socket.
import { cancelledError, onAbort } from '../../../common/signals.js';

interface Waiter {
  bytes: number;
  resolve: () => void;
  /** Stops listening to the waiter's signal. */
  stopListening: () => void;
}

export interface ByteBudget {
  readonly capacity: number;
  /** Bytes currently reserved. */
  readonly used: number;
  /** Highest `used` ever reached. */
  readonly highWater: number;
  /**
   * Reserves `bytes`, waiting in FIFO order for room. A request larger than
   * the whole capacity is admitted when nothing else is reserved, so a huge
   * batch is slow but never deadlocks. Rejects with SADP_CANCELLED on abort.
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<void>;
  /** Reserves `bytes` only if that fits right now and nobody is waiting. */
  tryAcquire(bytes: number): boolean;
  release(bytes: number): void;
}

/**
 * `onChange` sees every change of `used`; `onContention` is called when a
 * request has to wait, so holders of optional reservations (prefetches) can
 * give them back.
 */
export function createByteBudget(
  capacity: number,
  onChange?: (delta: number) => void,
  onContention?: () => void,
): ByteBudget {
  return new ByteBudgetImpl(capacity, onChange, onContention);
}

class ByteBudgetImpl implements ByteBudget {
  used = 0;
  highWater = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    readonly capacity: number,
    private readonly onChange: ((delta: number) => void) | undefined,
    private readonly onContention: (() => void) | undefined,
  ) {}

  private fits(bytes: number): boolean {
    return this.used + bytes <= this.capacity || this.used === 0;
  }

  private take(bytes: number): void {
    this.used += bytes;
    if (this.used > this.highWater) this.highWater = this.used;
    this.onChange?.(bytes);
  }

  tryAcquire(bytes: number): boolean {
    if (this.queue.length > 0 || this.used + bytes > this.capacity) return false;
    this.take(bytes);
    return true;
  }

  acquire(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(cancelledError(signal, 'wait for in-flight byte budget'));
    if (this.queue.length === 0 && this.fits(bytes)) {
      this.take(bytes);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, stopListening: () => undefined };
      waiter.stopListening = onAbort(signal, () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(cancelledError(signal, 'wait for in-flight byte budget'));
        // The head may have been the one blocking smaller requests behind it.
        this.pump();
      });
      this.queue.push(waiter);
      this.onContention?.();
    });
  }

  release(bytes: number): void {
    if (bytes <= 0) return;
    this.used -= bytes;
    if (this.used < 0) this.used = 0;
    this.onChange?.(-bytes);
    this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0] as Waiter;
      if (!this.fits(head.bytes)) return;
      this.queue.shift();
      head.stopListening();
      this.take(head.bytes);
      head.resolve();
    }
  }
}
