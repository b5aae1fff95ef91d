// One batch of one rank: which ids (with weights and padding flags) it
// holds, and the fetch of their bytes under the global in-flight budget.
import type { FetchedSample, RangeReader } from '../../fetch/index.js';
import type { Dataset } from '../../shards/index.js';
import type { ByteBudget } from './byte-budget.js';
import { batchSpan, orderIndexAt, type EpochLayout } from '../jobs/epoch-layout.js';
import type { EpochState } from '../jobs/job-registry.js';

export interface BatchSpec {
  index: number;
  ids: Uint32Array;
  weights: Float64Array;
  /** 1 for a padded repeat. */
  padded: Uint8Array;
  /** Sample bytes to fetch (each distinct id once), from the shard index. */
  bytes: number;
}

export function batchSpec(
  state: EpochState,
  layout: EpochLayout,
  dataset: Dataset,
  rank: number,
  index: number,
): BatchSpec {
  const { start, end } = batchSpan(layout, rank, index);
  const n = end - start;
  const ids = new Uint32Array(n);
  const weights = new Float64Array(n);
  const padded = new Uint8Array(n);
  let anyPadded = false;
  for (let k = 0; k < n; k++) {
    const p = start + k;
    const o = orderIndexAt(layout, p);
    ids[k] = state.order[o] as number;
    weights[k] = state.weights[o] as number;
    if (p >= layout.selected) {
      padded[k] = 1;
      anyPadded = true;
    }
  }
  const unique: ArrayLike<number> = anyPadded ? [...new Set(ids)] : ids;
  let bytes = 0;
  for (let k = 0; k < unique.length; k++) {
    const id = unique[k] as number;
    bytes += (dataset.ends[id] as number) - (dataset.offsets[id] as number);
  }
  return { index, ids, weights, padded, bytes };
}

export interface FetchDeps {
  budget: ByteBudget;
  reader: RangeReader;
  dataset: Dataset;
  /** Called once when the bytes are in memory (boundary-stall metric). */
  onReady?: (spec: BatchSpec) => void;
  /** Told the storage bytes received for this batch as they arrive (per-epoch accounting). */
  onReceived?: (bytes: number) => void;
}

/**
 * Reserves the batch's bytes from the budget, then fetches them. The owner
 * calls `release()` once the batch is written, or `dispose()` to abandon it;
 * either returns the bytes to the budget exactly once, after the read settled.
 */
export class BatchFetch {
  readonly ready: Promise<FetchedSample[]>;
  private readonly controller = new AbortController();
  private reserved = 0;
  private done = false;

  private constructor(
    readonly spec: BatchSpec,
    private readonly deps: FetchDeps,
    preReserved: boolean,
    /** The reader's GET queue priority: 0 for a batch a trainer waits on, 1 for a prefetch. */
    private readonly priority: number,
  ) {
    if (preReserved) this.reserved = spec.bytes;
    this.ready = this.run(preReserved);
    // The owner awaits `ready` when it needs the batch; a batch it abandons
    // must not surface as an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** Starts a fetch, waiting for budget in FIFO order. */
  static start(spec: BatchSpec, deps: FetchDeps, priority = 0): BatchFetch {
    return new BatchFetch(spec, deps, false, priority);
  }

  /** Starts a fetch only if the budget has room right now (opportunistic prefetch). */
  static tryStart(spec: BatchSpec, deps: FetchDeps, priority = 1): BatchFetch | undefined {
    if (!deps.budget.tryAcquire(spec.bytes)) return undefined;
    return new BatchFetch(spec, deps, true, priority);
  }

  /** Bytes this fetch holds (or will hold once admitted). */
  get bytes(): number {
    return this.spec.bytes;
  }

  private async run(preReserved: boolean): Promise<FetchedSample[]> {
    const signal = this.controller.signal;
    if (!preReserved) {
      await this.deps.budget.acquire(this.spec.bytes, signal);
      this.reserved = this.spec.bytes;
      if (this.done) {
        this.giveBack();
        throw new Error('batch disposed');
      }
    }
    const samples = await this.deps.reader.read(this.deps.dataset, this.spec.ids, signal, {
      priority: this.priority,
      onReceived: this.deps.onReceived,
    });
    this.deps.onReady?.(this.spec);
    return samples;
  }

  private giveBack(): void {
    const n = this.reserved;
    this.reserved = 0;
    this.deps.budget.release(n);
  }

  /** The batch was written: its bytes go back to the budget. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.giveBack();
  }

  /** Abandons the batch: aborts its fetch and returns its bytes once the read settled. */
  dispose(): void {
    if (this.done) return;
    this.done = true;
    this.controller.abort();
    this.ready.then(
      () => this.giveBack(),
      () => this.giveBack(),
    );
  }
}
