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
import { onAbort } from '../../common/signals.js';
import type { BatchFetch } from './batch-fetch.js';
import type { LoaderMetrics } from './metrics.js';

/** One epoch of a job as a set of trainers sees it: the world size and batch size fix its layout. */
export interface EpochShape {
  jobId: string;
  epoch: number;
  world: number;
  batchSize: number;
}

/** One rank's stream of an epoch shape. */
export interface RankKey extends EpochShape {
  rank: number;
}

/** The key of a rank within its (job, epoch) entry. */
const rankInEpoch = (k: RankKey): string => `${k.world}/${k.batchSize}/${k.rank}`;
/** The key of a rank across jobs and epochs (warm batches). */
const rankKey = (k: RankKey): string =>
  `${k.jobId}\u0000${k.epoch}\u0000${k.world}\u0000${k.batchSize}\u0000${k.rank}`;

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
    private readonly onEpochComplete: (shape: EpochShape) => void,
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

  streamOpened(key: RankKey): StreamProgress {
    const { jobId, epoch, world, batchSize, rank } = key;
    const p = this.entry(jobId, epoch);
    p.opened.add(rankInEpoch(key));
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
        const shapeKey = `${world}/${batchSize}`;
        let ranks = p.done.get(shapeKey);
        if (!ranks) {
          ranks = new Set();
          p.done.set(shapeKey, ranks);
        }
        const before = ranks.size;
        ranks.add(rank);
        if (ranks.size > before && ranks.size === world)
          this.onEpochComplete({ jobId, epoch, world, batchSize });
      },
      closed: leave,
    };
  }

  /** Whether a stream of this rank (and shape) was opened here for the epoch. */
  rankOpened(key: RankKey): boolean {
    return this.progress.get(key.jobId)?.get(key.epoch)?.opened.has(rankInEpoch(key)) ?? false;
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
        stop();
        const i = p.barrierWaiters.indexOf(finish);
        if (i >= 0) p.barrierWaiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      const stop = onAbort(signal, finish);
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

  /** Holds prefetched first batches of a rank's next epoch until it opens it (or the TTL passes). */
  putWarm(rank: RankKey, batches: Map<number, BatchFetch>): void {
    const key = rankKey(rank);
    this.dropWarm(key);
    const timer = setTimeout(() => this.dropWarm(key), this.warmTtlMs);
    timer.unref();
    this.warm.set(key, { batches, timer });
  }

  /** Hands the warm batches of this rank to its stream (the caller owns them from now on). */
  takeWarm(rank: RankKey): Map<number, BatchFetch> | undefined {
    const key = rankKey(rank);
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
