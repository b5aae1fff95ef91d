// A stream's credit: the writer may send batch b once b <= last ack +
// max_unacked_batches (acks are cumulative). Remembers when credit grew, so
// the batch-latency metric measures from the moment the trainer made a batch
// sendable, not from when the writer got to it.
import { cancelledError, onAbort } from '../../../common/signals.js';

export class CreditWindow {
  /** Highest batch index acknowledged. */
  private last: number;
  /** Times credit grew: batches <= limit became sendable at `at` (ms). */
  private readonly grants: Array<{ limit: number; at: number }> = [];
  private waiter: (() => void) | undefined;

  constructor(
    cursor: number,
    private readonly maxUnacked: number,
  ) {
    this.last = cursor - 1;
    this.grants.push({ limit: this.last + maxUnacked, at: performance.now() });
  }

  get lastAck(): number {
    return this.last;
  }

  /** An ack of `index`: grows the credit (and wakes the writer) when it is the highest so far. */
  ack(index: number): void {
    if (index <= this.last) return;
    this.last = index;
    this.grants.push({ limit: index + this.maxUnacked, at: performance.now() });
    this.wake();
  }

  /**
   * Resolves once `batch` has credit or `stopping()` holds (checked now and
   * at each wake), rejects with SADP_CANCELLED when `signal` aborts.
   */
  wait(batch: number, signal: AbortSignal, stopping: () => boolean): Promise<void> {
    if (batch <= this.last + this.maxUnacked || stopping()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const stop = onAbort(signal, () => {
        this.waiter = undefined;
        reject(cancelledError(signal, 'wait for credit'));
      });
      this.waiter = () => {
        stop();
        resolve();
      };
    });
  }

  /** Lets a waiting writer re-check (credit grew, or the stream is stopping). */
  wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** When `batch` became sendable (the trainer's view of "requested"). */
  grantTime(batch: number): number {
    while (this.grants.length > 1 && (this.grants[0] as { limit: number }).limit < batch) this.grants.shift();
    return (this.grants[0] as { at: number }).at;
  }
}
