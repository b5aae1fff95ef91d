// One batch of one rank: which ids (with weights and padding flags) it
// holds, and its fetch: a share of a window read under the global in-flight
// budget.
import type { FetchedSample } from '../../fetch/index.js';
import type { Dataset } from '../../shards/index.js';
import { batchSpan, orderIndexAt, type EpochLayout } from '../jobs/epoch-layout.js';
import type { EpochState } from '../jobs/job-registry.js';
import { startWindowRead, type WindowRead, type WindowReadDeps } from './window-read.js';

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

export interface FetchDeps extends WindowReadDeps {
  /** Called once when the bytes are in memory (boundary-stall metric). */
  onReady?: (spec: BatchSpec) => void;
}

/**
 * One batch's share of a window read (window-read.ts). The owner calls
 * `release()` once the batch is written, or `dispose()` to abandon it; the
 * window returns its bytes to the budget once all its batches did, after
 * its reads settled.
 */
export class BatchFetch {
  readonly ready: Promise<FetchedSample[]>;
  private done = false;

  private constructor(
    readonly spec: BatchSpec,
    private readonly window: WindowRead,
    private readonly member: number,
    /** This batch's part of the window's reservation (for the window's fair-share accounting). */
    readonly bytes: number,
    deps: FetchDeps,
  ) {
    this.ready = window.ready(member).then((samples) => {
      deps.onReady?.(spec);
      return samples;
    });
    // The owner awaits `ready` when it needs the batch; a batch it abandons
    // must not surface as an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /**
   * Starts the batches `specs` as one window read: one plan over all their
   * ids, each shard read once, waiting for budget in FIFO order. `awaited`
   * is the index of the batch a trainer waits on, if it is among them.
   */
  static startWindow(specs: readonly BatchSpec[], deps: FetchDeps, awaited?: number): BatchFetch[] {
    // Without tryOnly a window read always starts (it waits for its budget).
    return BatchFetch.window(specs, deps, awaited, false) as BatchFetch[];
  }

  /** startWindow only if the budget has room for the whole window right now (opportunistic prefetch). */
  static tryStartWindow(
    specs: readonly BatchSpec[],
    deps: FetchDeps,
    awaited?: number,
  ): BatchFetch[] | undefined {
    return BatchFetch.window(specs, deps, awaited, true);
  }

  private static window(
    specs: readonly BatchSpec[],
    deps: FetchDeps,
    awaited: number | undefined,
    tryOnly: boolean,
  ): BatchFetch[] | undefined {
    const urgent = specs.findIndex((s) => s.index === awaited);
    const window = startWindowRead(specs, deps, { urgent: urgent < 0 ? undefined : urgent, tryOnly });
    if (!window) return undefined;
    let selected = 0;
    for (const s of specs) selected += s.bytes;
    const scale = selected > 0 ? window.reserved / selected : 1;
    return specs.map((spec, k) => new BatchFetch(spec, window, k, spec.bytes * scale, deps));
  }

  /** The batch was written: its part of the window is done. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.window.done(this.member, false);
  }

  /** Abandons the batch; its window's reads stop once no batch of it is left. */
  dispose(): void {
    if (this.done) return;
    this.done = true;
    this.window.done(this.member, true);
  }
}
