// Batches of a rank's next epoch prefetched at an epoch boundary ("warm"),
// held until that rank's stream opens the epoch and adopts them, or dropped
// after a TTL or when the byte budget is contended (they were opportunistic).
import type { LoaderMetrics } from '../metrics.js';
import { rankId, type RankId, type RankKey } from '../jobs/rank-key.js';
import type { BatchFetch } from './batch-fetch.js';

interface WarmEntry {
  batches: Map<number, BatchFetch>;
  timer: NodeJS.Timeout;
}

export class WarmBatches {
  private readonly warm = new Map<RankId, WarmEntry>();

  constructor(
    private readonly metrics: LoaderMetrics,
    private readonly ttlMs: number,
  ) {}

  /** Holds prefetched first batches of a rank's next epoch until it opens it (or the TTL passes). */
  put(rank: RankKey, batches: Map<number, BatchFetch>): void {
    const key = rankId(rank);
    this.drop(key);
    const timer = setTimeout(() => this.drop(key), this.ttlMs);
    timer.unref();
    this.warm.set(key, { batches, timer });
  }

  /** Hands the warm batches of this rank to its stream (the caller owns them from now on). */
  take(rank: RankKey): Map<number, BatchFetch> | undefined {
    const key = rankId(rank);
    const entry = this.warm.get(key);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.warm.delete(key);
    this.metrics.warmBatches.inc({ fate: 'used' }, entry.batches.size);
    return entry.batches;
  }

  /** Gives every warm batch's bytes back. */
  dropAll(): void {
    for (const key of [...this.warm.keys()]) this.drop(key);
  }

  private drop(key: RankId): void {
    const entry = this.warm.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.warm.delete(key);
    this.metrics.warmBatches.inc({ fate: 'expired' }, entry.batches.size);
    for (const b of entry.batches.values()) b.dispose();
  }
}
