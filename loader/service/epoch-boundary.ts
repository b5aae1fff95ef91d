// What the loader knows about epoch boundaries of each job: which ranks of an
// epoch have streams open here and which have acknowledged their last batch,
// the barrier that holds the plan request of epoch k+1 until epoch k's open
// streams finished (so their scores count), the batches of epoch k+1
// prefetched once every rank finished epoch k ("warm" batches), and the
// boundary-stall metric.
//
// Strict per loader: every score this loader received for epoch k is at the
// scorer before this loader asks for plan k+1. Across loader replicas, scores
// still in flight at another replica when the first replica asks for plan
// k+1 apply one epoch later (the plan is fixed at its first request).
import type { BatchFetch } from './batch-fetch.js';
import type { LoaderMetrics } from './metrics.js';

interface EpochProgress {
  /** Streams of this epoch open here that have not acked their last batch. */
  incomplete: number;
  barrierWaiters: Array<() => void>;
  /** `world/batchSize/rank` of every stream opened here for this epoch. */
  opened: Set<string>;
  /** Per (world, batch size): ranks that acked their last batch. */
  done: Map<string, Set<number>>;
  lastAckAt: number;
  stallRecorded: boolean;
}

interface WarmEntry {
  batches: Map<number, BatchFetch>;
  timer: NodeJS.Timeout;
}

export interface StreamProgress {
  /** The stream acknowledged its last batch. */
  finished(): void;
  /** The stream ended (any way). */
  closed(): void;
}

/** Epochs of progress kept per job. */
const KEEP_EPOCHS = 4;

export class EpochBoundary {
  private readonly progress = new Map<string, Map<number, EpochProgress>>();
  private readonly warm = new Map<string, WarmEntry>();

  constructor(
    private readonly metrics: LoaderMetrics,
    private readonly warmTtlMs: number,
    /** Every rank 0..world-1 of (job, epoch) acked its last batch. */
    private readonly onEpochComplete: (
      jobId: string,
      epoch: number,
      world: number,
      batchSize: number,
    ) => void,
  ) {}

  private entry(jobId: string, epoch: number): EpochProgress {
    let perJob = this.progress.get(jobId);
    if (!perJob) {
      perJob = new Map();
      this.progress.set(jobId, perJob);
    }
    let p = perJob.get(epoch);
    if (!p) {
      p = {
        incomplete: 0,
        barrierWaiters: [],
        opened: new Set(),
        done: new Map(),
        lastAckAt: 0,
        stallRecorded: false,
      };
      perJob.set(epoch, p);
      for (const e of [...perJob.keys()]) {
        if (perJob.size <= KEEP_EPOCHS) break;
        const old = perJob.get(e) as EpochProgress;
        if (old.incomplete === 0 && e !== epoch) perJob.delete(e);
      }
    }
    return p;
  }

  streamOpened(jobId: string, epoch: number, rank: number, world: number, batchSize: number): StreamProgress {
    const p = this.entry(jobId, epoch);
    p.opened.add(`${world}/${batchSize}/${rank}`);
    p.incomplete++;
    let open = true;
    const leave = (): void => {
      if (!open) return;
      open = false;
      p.incomplete--;
      if (p.incomplete === 0) for (const w of p.barrierWaiters.splice(0)) w();
    };
    return {
      finished: () => {
        p.lastAckAt = performance.now();
        leave();
        const key = `${world}/${batchSize}`;
        let ranks = p.done.get(key);
        if (!ranks) {
          ranks = new Set();
          p.done.set(key, ranks);
        }
        const before = ranks.size;
        ranks.add(rank);
        if (ranks.size > before && ranks.size === world) this.onEpochComplete(jobId, epoch, world, batchSize);
      },
      closed: leave,
    };
  }

  /** Whether a stream of this rank (and shape) was opened here for the epoch. */
  rankOpened(jobId: string, epoch: number, world: number, batchSize: number, rank: number): boolean {
    return this.progress.get(jobId)?.get(epoch)?.opened.has(`${world}/${batchSize}/${rank}`) ?? false;
  }

  /**
   * Resolves once no stream of (job, epoch) open here is still short of its
   * last ack, or after `timeoutMs`, or when `signal` aborts.
   */
  barrier(jobId: string, epoch: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
    const p = this.progress.get(jobId)?.get(epoch);
    if (!p || p.incomplete === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', finish);
        const i = p.barrierWaiters.indexOf(finish);
        if (i >= 0) p.barrierWaiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      signal.addEventListener('abort', finish, { once: true });
      p.barrierWaiters.push(finish);
    });
  }

  /** A batch of (job, epoch) is in memory: records the stall after epoch-1's last ack, once per epoch. */
  batchReady(jobId: string, epoch: number): void {
    if (epoch === 0) return;
    const current = this.entry(jobId, epoch);
    if (current.stallRecorded) return;
    const previous = this.progress.get(jobId)?.get(epoch - 1);
    if (!previous || previous.lastAckAt === 0) return;
    current.stallRecorded = true;
    this.metrics.boundaryStall.observe(Math.max(0, performance.now() - previous.lastAckAt) / 1000);
  }

  private warmKey(jobId: string, epoch: number, world: number, batchSize: number, rank: number): string {
    return `${jobId}\u0000${epoch}\u0000${world}\u0000${batchSize}\u0000${rank}`;
  }

  /** Holds prefetched first batches of a rank's next epoch until it opens it (or the TTL passes). */
  putWarm(
    jobId: string,
    epoch: number,
    world: number,
    batchSize: number,
    rank: number,
    batches: Map<number, BatchFetch>,
  ): void {
    const key = this.warmKey(jobId, epoch, world, batchSize, rank);
    this.dropWarm(key);
    const timer = setTimeout(() => this.dropWarm(key), this.warmTtlMs);
    timer.unref();
    this.warm.set(key, { batches, timer });
  }

  /** Hands the warm batches of this rank to its stream (the caller owns them from now on). */
  takeWarm(
    jobId: string,
    epoch: number,
    world: number,
    batchSize: number,
    rank: number,
  ): Map<number, BatchFetch> | undefined {
    const key = this.warmKey(jobId, epoch, world, batchSize, rank);
    const entry = this.warm.get(key);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.warm.delete(key);
    this.metrics.warmBatches.inc({ fate: 'used' }, entry.batches.size);
    return entry.batches;
  }

  private dropWarm(key: string): void {
    const entry = this.warm.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.warm.delete(key);
    this.metrics.warmBatches.inc({ fate: 'expired' }, entry.batches.size);
    for (const b of entry.batches.values()) b.dispose();
  }

  /** Gives every warm batch's bytes back (the budget is contended: they were opportunistic). */
  dropAllWarm(): void {
    for (const key of [...this.warm.keys()]) this.dropWarm(key);
  }

  close(): void {
    this.dropAllWarm();
    for (const perJob of this.progress.values()) {
      for (const p of perJob.values()) for (const w of p.barrierWaiters.splice(0)) w();
    }
  }
}
