// One stream's batches fetched or in flight: up to `prefetchBatches` from the
// batch being written (started a window at a time, see topUp), the batch to
// send next always, prefetches beyond it only within the stream's fair share of the byte budget (so one stalled
// trainer cannot hold the whole budget), and given back latest-first when
// the budget is contended.
import { BatchFetch, batchSpec, type BatchSpec, type FetchDeps } from './batch-fetch.js';
import type { EpochLayout } from '../jobs/epoch-layout.js';
import type { EpochState, JobContext } from '../jobs/job-registry.js';

export interface PrefetchWindowOptions {
  ctx: JobContext;
  state: EpochState;
  layout: EpochLayout;
  rank: number;
  prefetchBatches: number;
  /** This stream's fair share of the budget now. */
  fairShare: () => number;
  deps: FetchDeps;
}

export class PrefetchWindow {
  private readonly fetches = new Map<number, BatchFetch>();

  constructor(private readonly o: PrefetchWindowOptions) {}

  /** Adopts batches prefetched before the stream opened (warm batches); disposes those it cannot use. */
  adopt(batches: Map<number, BatchFetch>, cursor: number): void {
    for (const [i, f] of batches) {
      if (i >= cursor && i < this.o.layout.steps && !this.fetches.has(i)) this.fetches.set(i, f);
      else f.dispose();
    }
  }

  /**
   * Keeps up to prefetchBatches batches from `batch` on fetched or in
   * flight, within the fair share. The first batch missing from that window
   * starts a window read of itself and the next prefetchBatches - 1 missing
   * ones, planned together (window-read.ts): each shard is read once for all
   * of them, so the window holds between prefetchBatches - 1 and
   * 2 x prefetchBatches - 1 batches.
   */
  topUp(batch: number): void {
    const { ctx, state, layout, rank, deps, prefetchBatches } = this.o;
    const end = Math.min(layout.steps, batch + prefetchBatches);
    let held = this.held();
    const share = this.o.fairShare();
    for (let i = batch; i < end; i++) {
      if (this.fetches.has(i)) continue;
      const specs: BatchSpec[] = [];
      for (let j = i; j < Math.min(layout.steps, i + prefetchBatches); j++) {
        if (this.fetches.has(j)) continue;
        const spec = batchSpec(state, layout, ctx.dataset, rank, j);
        if (j > batch && held + spec.bytes > share) break;
        specs.push(spec);
        held += spec.bytes;
      }
      if (specs.length === 0) return;
      for (const f of BatchFetch.startWindow(specs, deps, batch)) this.fetches.set(f.spec.index, f);
    }
  }

  /** The fetch of `batch`, started now when a trim dropped it. */
  take(batch: number): BatchFetch {
    if (!this.fetches.has(batch)) this.topUp(batch);
    return this.fetches.get(batch) as BatchFetch;
  }

  /** `batch` was written: its fetch leaves the window. */
  sent(batch: number): void {
    this.fetches.delete(batch);
  }

  /** Gives back prefetched batches after `writing` (latest first) until the window holds at most `share`. */
  trim(share: number, writing: number): void {
    let held = this.held();
    if (held <= share) return;
    const evictable = [...this.fetches.keys()].filter((i) => i > writing).sort((a, b) => b - a);
    for (const i of evictable) {
      if (held <= share) break;
      const f = this.fetches.get(i) as BatchFetch;
      f.dispose();
      this.fetches.delete(i);
      held -= f.bytes;
    }
  }

  disposeAll(): void {
    for (const f of this.fetches.values()) f.dispose();
    this.fetches.clear();
  }

  private held(): number {
    let held = 0;
    for (const f of this.fetches.values()) held += f.bytes;
    return held;
  }
}
