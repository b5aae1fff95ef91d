// Turns a set of selected sample ids into few byte-range GETs: samples of the
// same shard are merged into one range when the bytes between them (the
// pruned samples we would fetch for nothing) are fewer than `gapBytes` and
// the plan's wasted bytes stay within `maxWasteRatio` of its selected bytes,
// and a merged range never grows past `maxRequestBytes`. Pure and allocation-light
// (flat typed arrays), so the ImageNet-scale dry run in bench/io.ts plans with
// exactly the code the reader fetches with.
import { SadpError, Status } from '../../common/errors.js';

/** The per-sample layout the planner needs; a Dataset satisfies it. */
export interface SampleLayout {
  /** Sample id -> first byte of its first header within its shard. */
  readonly offsets: ArrayLike<number>;
  /** Sample id -> end of its last member's padding (exclusive). */
  readonly ends: ArrayLike<number>;
  /** Sample id -> shard number. */
  readonly shardIds: ArrayLike<number>;
}

export interface RangePlan {
  /** Number of ranges. */
  readonly count: number;
  readonly shard: Uint32Array;
  readonly start: Float64Array;
  readonly end: Float64Array;
  /** The selected ids, unique, sorted by (shard, offset). */
  readonly ids: Uint32Array;
  /** Range r holds ids[first[r]] .. ids[first[r + 1] - 1]; length count + 1. */
  readonly first: Uint32Array;
  /** Sum of range lengths. */
  readonly bytesRequested: number;
  /** Sum of the selected samples' lengths. */
  readonly bytesSelected: number;
}

export interface PlanOptions {
  gapBytes: number;
  maxRequestBytes: number;
  /**
   * Bound on (bytes requested - bytes selected) / bytes selected for one plan;
   * a gap is merged only while the waste it adds keeps the plan within it.
   * Default Infinity (gapBytes alone decides).
   */
  maxWasteRatio?: number;
}

/**
 * Sorts and de-duplicates ids. Ids are dense in shard order and, within a
 * shard, in tar order, so numeric order is (shard, offset) order.
 */
export function sortUniqueIds(ids: ArrayLike<number>, size: number): Uint32Array {
  const sorted = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] ?? -1;
    if (!Number.isInteger(id) || id < 0 || id >= size) {
      throw new SadpError(
        'SADP_SAMPLE_OUT_OF_RANGE',
        `sample id ${id} (position ${i}) is outside 0..${size - 1}`,
        {
          status: Status.OUT_OF_RANGE,
        },
      );
    }
    sorted[i] = id;
  }
  sorted.sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[i] as number;
    if (n === 0 || sorted[n - 1] !== id) sorted[n++] = id;
  }
  return sorted.subarray(0, n);
}

/**
 * Plans the GETs for `ids` (sorted, unique: see sortUniqueIds). Two samples
 * are merged when the gap between them is 0 (contiguous: merging costs no
 * byte) or below `gapBytes` with the plan's waste within `maxWasteRatio`, and
 * the merged range stays within `maxRequestBytes` (a single larger sample
 * still gets its own range).
 */
export function planRanges(layout: SampleLayout, ids: Uint32Array, options: PlanOptions): RangePlan {
  const { gapBytes } = options;
  const maxWasteRatio = options.maxWasteRatio ?? Infinity;
  // Bytes of pruned samples inside merged ranges so far. Checking the bound
  // greedily in plan order keeps every prefix of the plan within it, so small
  // samples (where a fixed gap would span dozens of pruned ones) merge rarely
  // and large ones merge as gapBytes allows.
  let wasted = 0;
  return mergeRanges(layout, ids, options.maxRequestBytes, (_i, gap, bytesSelected) => {
    if (gap !== 0 && !(gap < gapBytes && wasted + gap <= maxWasteRatio * bytesSelected)) return false;
    wasted += gap;
    return true;
  });
}

/**
 * The one gap-merging pass every planner mode ends in. Walks `ids` in
 * (shard, offset) order; sample i joins the open range when it lies in the
 * same shard, the range would stay within `maxRequestBytes`, and
 * `joins(i, gap, bytesSelected)` agrees (gap: bytes between the open range's
 * end and sample i; bytesSelected: selected bytes of ids[0..i]). Checks the
 * layout (no empty sample, no overlap) on the way.
 */
export function mergeRanges(
  layout: SampleLayout,
  ids: Uint32Array,
  maxRequestBytes: number,
  joins: (i: number, gap: number, bytesSelected: number) => boolean,
): RangePlan {
  const n = ids.length;
  const shard = new Uint32Array(n);
  const start = new Float64Array(n);
  const end = new Float64Array(n);
  const first = new Uint32Array(n + 1);
  const { offsets, ends, shardIds } = layout;
  let count = 0;
  let bytesSelected = 0;
  // The open range, kept in locals: this loop runs over a whole epoch's plan in the ImageNet dry run.
  let curShard = -1;
  let curStart = 0;
  let curEnd = 0;
  for (let i = 0; i < n; i++) {
    const id = ids[i] as number;
    const s = shardIds[id] as number;
    const a = offsets[id] as number;
    const b = ends[id] as number;
    if (!(b > a)) throw badLayout(`sample ${id} has an empty or inverted range [${a}, ${b})`);
    bytesSelected += b - a;
    if (s === curShard) {
      const gap = a - curEnd;
      if (gap < 0)
        throw badLayout(`sample ${id} at ${a} overlaps the previous selected sample ending at ${curEnd}`);
      if (b - curStart <= maxRequestBytes && joins(i, gap, bytesSelected)) {
        curEnd = b;
        end[count - 1] = b;
        continue;
      }
    }
    shard[count] = s;
    start[count] = a;
    end[count] = b;
    first[count] = i;
    count++;
    curShard = s;
    curStart = a;
    curEnd = b;
  }
  let bytesRequested = 0;
  first[count] = n;
  for (let r = 0; r < count; r++) bytesRequested += (end[r] as number) - (start[r] as number);
  return {
    count,
    shard: shard.subarray(0, count),
    start: start.subarray(0, count),
    end: end.subarray(0, count),
    ids,
    first: first.subarray(0, count + 1),
    bytesRequested,
    bytesSelected,
  };
}

function badLayout(message: string): SadpError {
  return new SadpError('SADP_INDEX_INVALID', message, { status: Status.FAILED_PRECONDITION });
}
