// What the loader knows about epoch boundaries of each job: which ranks of an
// epoch have streams open here and which have acknowledged their last batch,
// the barrier that holds the plan request of epoch k+1 until epoch k's open
// streams finished (so their scores count), the moment an epoch shape is
// complete (every rank acked its last batch here: the next epoch may be
// prefetched), and the boundary-stall metric.
//
// Strict per loader: every score this loader received for epoch k is at the
// scorer before this loader asks for plan k+1. Across loader replicas, scores
// still in flight at another replica when the first replica asks for plan
// k+1 apply one epoch later (the plan is fixed at its first request).
import { onAbort } from '../../../common/signals.js';
import type { LoaderMetrics } from '../metrics.js';
import { shapeId, type EpochShape, type RankKey, type ShapeId } from '../jobs/rank-key.js';

interface EpochProgress {
  /** Streams of this epoch open here that have not acked their last batch. */
  incomplete: number;
  barrierWaiters: Array<() => void>;
  /** Per shape: ranks with a stream opened here for this epoch. */
  opened: Map<ShapeId, Set<number>>;
  /** Per shape: ranks that acked their last batch. */
  done: Map<ShapeId, Set<number>>;
  lastAckAt: number;
  stallRecorded: boolean;
}

export interface StreamProgress {
  /** The stream acknowledged its last batch. */
  finished(): void;
  /** The stream ended (any way). */
  closed(): void;
}

/** Epochs of progress kept per job. */
const KEEP_EPOCHS = 4;

function addTo(map: Map<ShapeId, Set<number>>, key: ShapeId, rank: number): Set<number> {
  let ranks = map.get(key);
  if (!ranks) map.set(key, (ranks = new Set()));
  ranks.add(rank);
  return ranks;
}

export class EpochBoundary {
  private readonly progress = new Map<string, Map<number, EpochProgress>>();
  private readonly completeListeners = new Set<(shape: EpochShape) => void>();

  constructor(private readonly metrics: LoaderMetrics) {}

  /** Calls `listener` each time every rank 0..world-1 of an epoch shape acked its last batch here. */
  onEpochComplete(listener: (shape: EpochShape) => void): () => void {
    this.completeListeners.add(listener);
    return () => this.completeListeners.delete(listener);
  }

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
        opened: new Map(),
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
    const p = this.entry(key.jobId, key.epoch);
    const shape = shapeId(key);
    addTo(p.opened, shape, key.rank);
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
        const before = p.done.get(shape)?.size ?? 0;
        const ranks = addTo(p.done, shape, key.rank);
        if (ranks.size > before && ranks.size === key.world) {
          const { jobId, epoch, world, batchSize } = key;
          for (const listener of this.completeListeners) listener({ jobId, epoch, world, batchSize });
        }
      },
      closed: leave,
    };
  }

  /** Whether a stream of this rank (and shape) was opened here for the epoch. */
  rankOpened(key: RankKey): boolean {
    return this.progress.get(key.jobId)?.get(key.epoch)?.opened.get(shapeId(key))?.has(key.rank) ?? false;
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

  close(): void {
    this.completeListeners.clear();
    for (const perJob of this.progress.values()) {
      for (const p of perJob.values()) for (const w of p.barrierWaiters.splice(0)) w();
    }
  }
}
