// The cost-aware read planner: for each shard, which of its selected samples
// to fetch with one GET. A plan (a prefetch window's reads) takes the longest
// of three times, each a resource the reads share:
//   CPU      requests x perRequestUs + bytes x perByteUs   (the loader's thread)
//   latency  requests x latencyUs / concurrency            (first bytes overlap
//                                                           across the GETs in flight)
//   link     bytes x linkPerByteUs                         (the link's aggregate rate)
// Merging two neighbouring selected samples across a gap of g pruned bytes
// saves one request and costs g bytes. Merging the k smallest gaps is the
// cheapest way to save k requests, so the planner sorts the window's gaps
// and takes the k that minimises the modelled time: gaps are merged only
// while the request-bound terms bind, and a link-bound window reads
// per-sample ranges. A dense shard ends up as one span (the whole object,
// minus unselected head and tail), a sparse one as per-sample ranges. With
// only perRequestUs and perByteUs the model is their sum, and a gap pays
// exactly when g < perRequestUs / perByteUs (the break-even gap).
//
// Modes:
//   auto        minimise modelled time (the best number of smallest gaps merged)
//   min-bytes   the same, but pruned bytes fetched stay within maxWasteRatio
//               of the selected bytes (smallest gaps merged first), for links
//               billed per byte
//   whole-shard one span per shard over all its selected samples
//   ranges      the fixed rule of planRanges (gapBytes + maxWasteRatio, in
//               plan order): the behaviour before this planner
// A merged GET never grows past maxRequestBytes (a longer span is split at
// sample boundaries; one larger sample still gets its own GET).
//
// Pure and allocation-light: `sadp estimate` and bench/io.ts plan with the
// same code the reader fetches with, without any storage.
import { SadpError, Status } from '../../common/errors.js';
import {
  mergeRanges,
  planRanges,
  type PlanOptions,
  type RangePlan,
  type SampleLayout,
} from './range-plan.js';

export const READ_PLANNER_MODES = ['auto', 'min-bytes', 'whole-shard', 'ranges'] as const;
export type ReadPlannerMode = (typeof READ_PLANNER_MODES)[number];

/** What GETs and bytes cost, in microseconds (see the model at the top). */
export interface ReadCostModel {
  /** Loader CPU per GET (serial: one thread runs every GET's callbacks). */
  perRequestUs: number;
  /** Loader CPU per byte. */
  perByteUs: number;
  /** First-byte latency of one GET; default 0. */
  latencyUs?: number;
  /** GETs in flight that share the latency; default 1. */
  concurrency?: number;
  /** Link time per byte at the aggregate rate of all GETs in flight; default 0. */
  linkPerByteUs?: number;
}

export interface ReadPlanOptions extends PlanOptions {
  mode: ReadPlannerMode;
  cost: ReadCostModel;
}

/** How the plan read each shard it touched. */
export interface ReadPlanMix {
  /** Shards read as one span over all their selected samples (maybe split by maxRequestBytes). */
  span: number;
  /** Shards read by per-sample ranges (only contiguous samples merged). */
  ranges: number;
  /** Shards with some gaps merged and some not. */
  mixed: number;
}

export interface ReadPlan extends RangePlan {
  mode: ReadPlannerMode;
  cost: ReadCostModel;
  /** Modelled time of the plan (estimateUs). */
  estimatedUs: number;
  mix: ReadPlanMix;
}

/**
 * Gaps (pruned bytes between two selected samples) below this are cheaper to
 * read than to skip while a request-bound term binds: the dearer of a GET's
 * CPU and its share of the latency, over every byte's cost. Exact for the
 * CPU-only model; with the other terms the planner decides per window.
 */
export function breakEvenGapBytes(cost: ReadCostModel): number {
  const perByte = cost.perByteUs + (cost.linkPerByteUs ?? 0);
  if (!(perByte > 0)) return Infinity;
  return Math.max(cost.perRequestUs, latencyPerRequestUs(cost)) / perByte;
}

/** A GET's first-byte latency over the GETs in flight it overlaps with. */
function latencyPerRequestUs(cost: ReadCostModel): number {
  return (cost.latencyUs ?? 0) / Math.max(1, cost.concurrency ?? 1);
}

/** Modelled time of `requests` GETs of `bytes` in all: the longest of the CPU, latency and link times. */
export function estimateUs(requests: number, bytes: number, cost: ReadCostModel): number {
  const cpu = requests * cost.perRequestUs + bytes * cost.perByteUs;
  const latency = requests * latencyPerRequestUs(cost);
  const link = bytes * (cost.linkPerByteUs ?? 0);
  return Math.max(cpu, latency, link);
}

/** Whether every field of `cost` is in range (the reader's option check uses it too). */
export function validCost(cost: ReadCostModel): boolean {
  const nonNegative = (x: number | undefined): boolean => x === undefined || x >= 0;
  return (
    cost.perRequestUs >= 0 &&
    cost.perByteUs >= 0 &&
    nonNegative(cost.latencyUs) &&
    nonNegative(cost.linkPerByteUs) &&
    (cost.concurrency === undefined || cost.concurrency >= 1)
  );
}

function checkCost(cost: ReadCostModel): void {
  if (!validCost(cost)) {
    throw new SadpError(
      'SADP_INVALID_OPTION',
      `read cost model needs perRequestUs, perByteUs, latencyUs, linkPerByteUs >= 0 and concurrency >= 1, got ${JSON.stringify(cost)}`,
      { status: Status.INVALID_ARGUMENT },
    );
  }
}

/**
 * Plans the GETs for `ids` (sorted, unique: see sortUniqueIds) of `layout`
 * in the given mode. Every selected sample lies in exactly one range.
 */
export function planReads(layout: SampleLayout, ids: Uint32Array, options: ReadPlanOptions): ReadPlan {
  checkCost(options.cost);
  if (options.mode === 'ranges') return finish(planRanges(layout, ids, options), layout, options);
  const n = ids.length;
  const { offsets, ends, shardIds } = layout;
  // merge[i] = 1: sample i joins the range of sample i - 1 (same shard).
  const merge = new Uint8Array(n);
  // Gaps worth considering (auto, min-bytes) and the sample each one precedes.
  const gaps: number[] = [];
  const gapAt: number[] = [];
  let bytesSelected = 0;
  let requests = 0;
  for (let i = 0; i < n; i++) {
    const id = ids[i] as number;
    const a = offsets[id] as number;
    const b = ends[id] as number;
    if (!(b > a)) throw badLayout(`sample ${id} has an empty or inverted range [${a}, ${b})`);
    bytesSelected += b - a;
    const prev = i === 0 ? -1 : (ids[i - 1] as number);
    if (i === 0 || shardIds[prev] !== shardIds[id]) {
      requests++;
      continue;
    }
    const gap = a - (ends[prev] as number);
    if (gap < 0)
      throw badLayout(`sample ${id} at ${a} overlaps the previous selected sample ending at ${ends[prev]}`);
    if (gap === 0 || options.mode === 'whole-shard') {
      merge[i] = 1;
    } else {
      requests++;
      // A gap past maxRequestBytes could never join one GET.
      if (gap < options.maxRequestBytes) {
        gaps.push(gap);
        gapAt.push(i);
      }
    }
  }
  if (gaps.length > 0 && options.mode !== 'whole-shard') {
    // Merging the k smallest gaps saves k requests for the fewest bytes: take
    // the k with the least modelled time (the first one on ties: fewer bytes),
    // in min-bytes no more than the waste budget allows.
    const order = Array.from(gaps.keys()).sort((x, y) => (gaps[x] as number) - (gaps[y] as number));
    const budget =
      options.mode === 'min-bytes' ? (options.maxWasteRatio ?? Infinity) * bytesSelected : Infinity;
    let best = estimateUs(requests, bytesSelected, options.cost);
    let bestK = 0;
    let wasted = 0;
    for (let k = 1; k <= order.length; k++) {
      wasted += gaps[order[k - 1] as number] as number;
      if (wasted > budget) break;
      const t = estimateUs(requests - k, bytesSelected + wasted, options.cost);
      if (t < best) {
        best = t;
        bestK = k;
      }
    }
    for (let k = 0; k < bestK; k++) merge[gapAt[order[k] as number] as number] = 1;
  }
  // Ranges from the merge flags, split where a span would pass maxRequestBytes.
  const plan = mergeRanges(layout, ids, options.maxRequestBytes, (i) => merge[i] === 1);
  return finish(plan, layout, options);
}

/** Adds the estimate and the per-shard mix to a plan. */
function finish(plan: RangePlan, layout: SampleLayout, options: ReadPlanOptions): ReadPlan {
  const mix: ReadPlanMix = { span: 0, ranges: 0, mixed: 0 };
  const { ids, first } = plan;
  let r = 0;
  while (r < plan.count) {
    // Ranges r..q-1 belong to one shard (ids are in shard order).
    const s = plan.shard[r] as number;
    let q = r;
    let gapsMerged = 0;
    let gapsSkipped = 0;
    while (q < plan.count && plan.shard[q] === s) {
      for (let i = (first[q] as number) + 1; i < (first[q + 1] as number); i++) {
        const gap =
          (layout.offsets[ids[i] as number] as number) - (layout.ends[ids[i - 1] as number] as number);
        if (gap > 0) gapsMerged++;
      }
      if (q > r) {
        const gap = (plan.start[q] as number) - (plan.end[q - 1] as number);
        if (gap > 0) gapsSkipped++;
      }
      q++;
    }
    if (gapsSkipped === 0 && gapsMerged > 0) mix.span++;
    else if (gapsMerged === 0) mix.ranges++;
    else mix.mixed++;
    r = q;
  }
  return {
    ...plan,
    mode: options.mode,
    cost: { ...options.cost },
    estimatedUs: estimateUs(plan.count, plan.bytesRequested, options.cost),
    mix,
  };
}

/** One shard's selected samples, for planning without a dataset. */
export interface ShardSelection {
  /** Byte offset of each selected sample in the shard, ascending. */
  offsets: ArrayLike<number>;
  /** Length of each selected sample (headers and padding included). */
  lengths: ArrayLike<number>;
  /** The shard's size: every sample must end within it. */
  shardBytes: number;
}

export interface ReadEstimate {
  mode: ReadPlannerMode;
  requests: number;
  bytesRequested: number;
  bytesSelected: number;
  estimatedUs: number;
  mix: ReadPlanMix;
}

/**
 * The planner over plain numbers (no dataset, no storage): what reading
 * these selections would cost in `options.mode`. For `sadp estimate` and
 * dry runs; the reader plans with planReads on the same code.
 */
export function estimateReads(shards: ShardSelection[], options: ReadPlanOptions): ReadEstimate {
  let n = 0;
  for (const s of shards) n += s.offsets.length;
  const offsets = new Float64Array(n);
  const ends = new Float64Array(n);
  const shardIds = new Uint32Array(n);
  let i = 0;
  shards.forEach((s, shard) => {
    if (s.lengths.length !== s.offsets.length) {
      throw badLayout(`shard ${shard}: ${s.offsets.length} offsets but ${s.lengths.length} lengths`);
    }
    for (let k = 0; k < s.offsets.length; k++, i++) {
      const a = s.offsets[k] as number;
      const b = a + (s.lengths[k] as number);
      if (b > s.shardBytes)
        throw badLayout(`shard ${shard}: sample at ${a} ends at ${b}, past ${s.shardBytes} bytes`);
      offsets[i] = a;
      ends[i] = b;
      shardIds[i] = shard;
    }
  });
  const ids = new Uint32Array(n);
  for (let k = 0; k < n; k++) ids[k] = k;
  const plan = planReads({ offsets, ends, shardIds }, ids, options);
  return {
    mode: plan.mode,
    requests: plan.count,
    bytesRequested: plan.bytesRequested,
    bytesSelected: plan.bytesSelected,
    estimatedUs: plan.estimatedUs,
    mix: plan.mix,
  };
}

function badLayout(message: string): SadpError {
  return new SadpError('SADP_INDEX_INVALID', message, { status: Status.FAILED_PRECONDITION });
}
