// Pure arithmetic of an epoch: the deterministic shuffle of the selected ids
// and their split into equal-length per-rank streams of batches. Everything
// here is a function of (seed, epoch, plan, shard layout, world size, batch
// size), so every loader replica and every restart computes the same batches.
//
// Split (like MosaicML Streaming): M selected ids in shuffled order are padded
// to T = W * ceil(M / W) positions by repeating the shuffled order from its
// start (position p >= M holds order[(p - M) mod M], marked `padded`). Rank r
// takes the contiguous positions [r * P, (r + 1) * P) with P = ceil(M / W), so
// padding only ever lands at the tail of the last ranks, and with
// `shard-block` each rank reads its own run of shard blocks. A rank's P
// samples are cut into steps = ceil(P / B) batches of B (the last one may be
// shorter); every rank has the same number of steps.
import { uniform } from '../../scorer/index.js';
import type { ShuffleMode } from './options.js';

/** Independent PRNG streams for the shuffle: never the plan's own key (seed). */
const SHUFFLE_KEY_XOR = 0x5348_5546_464c_4531n; // "SHUFFLE1"
const SHARD_ORDER_KEY_XOR = 0x5348_5546_464c_4532n; // "SHUFFLE2"
const U64 = (1n << 64n) - 1n;

export interface ShuffleInput {
  /** Selected ids, ascending (as the plan lists them). */
  ids: Uint32Array;
  seed: bigint;
  epoch: number;
  mode: ShuffleMode;
  /** Shards per block (`shard-block`). */
  blockShards: number;
  /** Shard of each dataset id (`shard-block`). */
  shardOf: (id: number) => number;
}

/**
 * The shuffled order as a permutation of plan positions: order[i] is the
 * index into `ids` (and the plan's weights) of the i-th sample of the epoch.
 */
export function shufflePlan(input: ShuffleInput): Uint32Array {
  const m = input.ids.length;
  const perm = new Uint32Array(m);
  const key = (input.seed ^ SHUFFLE_KEY_XOR) & U64;
  if (input.mode === 'global') {
    for (let i = 0; i < m; i++) perm[i] = i;
    fisherYates(perm, 0, m, key, input.epoch);
    return perm;
  }
  // shard-block: runs of equal shard in the ascending id list.
  const runStart: number[] = [];
  for (let i = 0; i < m; i++) {
    if (i === 0 || input.shardOf(input.ids[i] as number) !== input.shardOf(input.ids[i - 1] as number)) {
      runStart.push(i);
    }
  }
  const runs = runStart.length;
  const shardOrder = new Uint32Array(runs);
  for (let i = 0; i < runs; i++) shardOrder[i] = i;
  fisherYates(shardOrder, 0, runs, (input.seed ^ SHARD_ORDER_KEY_XOR) & U64, input.epoch);
  let out = 0;
  for (let b = 0; b < runs; b += input.blockShards) {
    const blockStart = out;
    for (let s = b; s < Math.min(runs, b + input.blockShards); s++) {
      const run = shardOrder[s] as number;
      const from = runStart[run] as number;
      const to = run + 1 < runs ? (runStart[run + 1] as number) : m;
      for (let i = from; i < to; i++) perm[out++] = i;
    }
    // Counters are global positions, so no two blocks reuse a draw.
    fisherYates(perm, blockStart, out, key, input.epoch);
  }
  return perm;
}

/** In-place Fisher-Yates of a[from, to), draw for slot t = uniform(key, epoch, from + t). */
function fisherYates(a: Uint32Array, from: number, to: number, key: bigint, epoch: number): void {
  for (let t = to - from - 1; t > 0; t--) {
    const j = Math.floor(uniform(key, epoch, from + t) * (t + 1));
    const x = a[from + t] as number;
    a[from + t] = a[from + j] as number;
    a[from + j] = x;
  }
}

export interface EpochLayout {
  /** M: ids selected by the plan. */
  selected: number;
  world: number;
  batchSize: number;
  /** P = ceil(M / W). */
  samplesPerRank: number;
  /** ceil(P / B); 0 when nothing was selected. */
  steps: number;
  /** W * P - M repeats. */
  padded: number;
}

export function epochLayout(selected: number, world: number, batchSize: number): EpochLayout {
  const samplesPerRank = Math.ceil(selected / world);
  return {
    selected,
    world,
    batchSize,
    samplesPerRank,
    steps: Math.ceil(samplesPerRank / batchSize),
    padded: samplesPerRank * world - selected,
  };
}

/** Padded-order positions [start, end) of batch `batch` of rank `rank`. */
export function batchSpan(layout: EpochLayout, rank: number, batch: number): { start: number; end: number } {
  const base = rank * layout.samplesPerRank;
  const start = base + batch * layout.batchSize;
  const end = base + Math.min((batch + 1) * layout.batchSize, layout.samplesPerRank);
  return { start, end };
}

/** Shuffled-order index held at padded position p (p >= M repeats from the start). */
export function orderIndexAt(layout: EpochLayout, p: number): number {
  return p < layout.selected ? p : (p - layout.selected) % layout.selected;
}

/**
 * Whether the id at shuffled index `orderIndex` is delivered to `rank` in one
 * of its batches 0..maxBatch, at its own position or as a padded repeat.
 */
export function deliveredTo(
  layout: EpochLayout,
  orderIndex: number,
  rank: number,
  maxBatch: number,
): boolean {
  const { selected: m, samplesPerRank: p, batchSize: b } = layout;
  const hit = (pos: number): boolean => Math.floor(pos / p) === rank && Math.floor((pos % p) / b) <= maxBatch;
  if (hit(orderIndex)) return true;
  for (let x = orderIndex; x < layout.padded; x += m) if (hit(m + x)) return true;
  return false;
}
