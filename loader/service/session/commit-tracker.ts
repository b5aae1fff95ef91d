// Which acks of a stream have their scores durable at the scorer, and the
// ScoresCommitted{through_index} messages that say so: `through` is the
// highest index such that every ack up to it is durable. A commit never goes
// out between the parts of one batch; it waits for the batch's end.

interface PendingAck {
  index: number;
  durable: boolean;
}

export class CommitTracker {
  private pendingAcks: PendingAck[] = [];
  private maxCommitted = -1;
  private queued = -1;
  private sentThrough = -1;
  private inBatch = false;

  /** `send(through)` writes a ScoresCommitted message. */
  constructor(private readonly send: (through: number) => void) {}

  /** Acks whose scores are not durable yet. */
  get pending(): number {
    return this.pendingAcks.length;
  }

  /** The highest through_index sent. */
  get committed(): number {
    return this.sentThrough;
  }

  /** Tracks an ack; call the returned function once its scores are durable. */
  track(index: number): () => void {
    const entry: PendingAck = { index, durable: false };
    this.pendingAcks.push(entry);
    return () => this.durable(entry);
  }

  private durable(entry: PendingAck): void {
    entry.durable = true;
    let minPending = Infinity;
    const still: PendingAck[] = [];
    for (const a of this.pendingAcks) {
      if (a.durable) this.maxCommitted = Math.max(this.maxCommitted, a.index);
      else {
        still.push(a);
        minPending = Math.min(minPending, a.index);
      }
    }
    this.pendingAcks = still;
    const through = Math.min(this.maxCommitted, minPending - 1);
    if (through > this.sentThrough && through > this.queued) {
      if (this.inBatch) this.queued = through;
      else this.commit(through);
    }
  }

  /** The parts of a batch start going out: commits wait. */
  batchStarted(): void {
    this.inBatch = true;
  }

  /** The batch ended (written or failed): a waiting commit goes out. */
  batchEnded(): void {
    this.inBatch = false;
    this.flushQueued();
  }

  /** The batch failed mid-way: no commit goes out (the stream is failing). */
  batchAborted(): void {
    this.inBatch = false;
  }

  /** Whether parts of a batch are being written. */
  get writing(): boolean {
    return this.inBatch;
  }

  /** Sends the commit that waited for the end of a batch, if any. */
  flushQueued(): void {
    if (this.queued > this.sentThrough) this.commit(this.queued);
  }

  private commit(through: number): void {
    this.sentThrough = through;
    this.send(through);
  }
}
