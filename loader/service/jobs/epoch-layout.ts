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
import { uniform } from '../../../scorer/index.js';
import { throwIfCancelled } from '../../../common/signals.js';
import type { ShuffleMode } from '../options.js';

/** Independent PRNG streams for the shuffle: never the plan's own key (seed). */
const SHUFFLE_KEY_XOR = 0x5348_5546_464c_4531n; // "SHUFFLE1"
const SHARD_ORDER_KEY_XOR = 0x5348_5546_464c_4532n; // "SHUFFLE2"
const BUFFER_KEY_XOR = 0x5348_5546_464c_4533n; // "SHUFFLE3"
const U64 = (1n << 64n) - 1n;
/** PRNG draws between two yields of the async shuffle (~3-20 ms of work on this machine). */
const DRAWS_PER_SLICE = 8_192;

export interface ShuffleInput {
  /** Selected ids, ascending (as the plan lists them). */
  ids: Uint32Array;
  seed: bigint;
  epoch: number;
  mode: ShuffleMode;
  /** Shards per block (`shard-block`), or shards' worth of samples in the buffer (`shard-buffer`). */
  blockShards: number;
  /** Shard of each dataset id (`shard-block`, `shard-buffer`). */
  shardOf: (id: number) => number;
}

/**
 * The shuffled order as a permutation of plan positions: order[i] is the
 * index into `ids` (and the plan's weights) of the i-th sample of the epoch.
 */
export function shufflePlan(input: ShuffleInput): Uint32Array {
  const steps = shuffleSteps(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * shufflePlan in slices, yielding the event loop between them: at N = 10M
 * the shuffle is seconds of PRNG draws, which must not stall the streams.
 */
export async function shufflePlanAsync(input: ShuffleInput, signal?: AbortSignal): Promise<Uint32Array> {
  const steps = shuffleSteps(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await yieldLoop();
    throwIfCancelled(signal, 'epoch shuffle');
  }
}

/** Lets pending I/O callbacks and timers run. */
export function yieldLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function* shuffleSteps(input: ShuffleInput): Generator<void, Uint32Array> {
  const m = input.ids.length;
  const perm = new Uint32Array(m);
  const key = (input.seed ^ SHUFFLE_KEY_XOR) & U64;
  if (input.mode === 'global') {
    for (let i = 0; i < m; i++) perm[i] = i;
    yield* fisherYates(perm, 0, m, key, input.epoch);
    return perm;
  }
  // Runs of equal shard in the ascending id list, in a shuffled order.
  const runStart: number[] = [];
  for (let i = 0; i < m; i++) {
    if (i === 0 || input.shardOf(input.ids[i] as number) !== input.shardOf(input.ids[i - 1] as number)) {
      runStart.push(i);
    }
  }
  const runs = runStart.length;
  const shardOrder = new Uint32Array(runs);
  for (let i = 0; i < runs; i++) shardOrder[i] = i;
  yield* fisherYates(shardOrder, 0, runs, (input.seed ^ SHARD_ORDER_KEY_XOR) & U64, input.epoch);
  const runEnd = (run: number): number => (run + 1 < runs ? (runStart[run + 1] as number) : m);
  if (input.mode === 'shard-buffer') {
    yield* bufferShuffle(input, perm, runStart, runEnd, shardOrder);
    return perm;
  }
  let out = 0;
  for (let b = 0; b < runs; b += input.blockShards) {
    const blockStart = out;
    for (let s = b; s < Math.min(runs, b + input.blockShards); s++) {
      const run = shardOrder[s] as number;
      for (let i = runStart[run] as number; i < runEnd(run); i++) perm[out++] = i;
    }
    // Counters are global positions, so no two blocks reuse a draw.
    yield* fisherYates(perm, blockStart, out, key, input.epoch);
  }
  return perm;
}

/**
 * WebDataset's shard shuffle + sample buffer: the shards' samples stream in
 * (shards in shuffled order) through a buffer of ~`blockShards` shards'
 * worth of samples; each incoming sample takes the place of a uniformly
 * drawn one, which is emitted; the buffer's remainder ends the epoch in
 * random order. A window of positions draws from the few shards streaming
 * through the buffer, with no block boundary where the mix resets.
 */
function* bufferShuffle(
  input: ShuffleInput,
  perm: Uint32Array,
  runStart: readonly number[],
  runEnd: (run: number) => number,
  shardOrder: Uint32Array,
): Generator<void, void> {
  const m = perm.length;
  const runs = runStart.length;
  const size = Math.max(1, Math.min(m, Math.ceil((m / Math.max(1, runs)) * input.blockShards)));
  const buffer = new Uint32Array(size);
  const key = (input.seed ^ BUFFER_KEY_XOR) & U64;
  let filled = 0;
  let out = 0;
  let draws = 0;
  for (let s = 0; s < runs; s++) {
    const run = shardOrder[s] as number;
    for (let i = runStart[run] as number; i < runEnd(run); i++) {
      if (filled < size) {
        buffer[filled++] = i;
        continue;
      }
      const j = Math.floor(uniform(key, input.epoch, out) * size);
      perm[out++] = buffer[j] as number;
      buffer[j] = i;
      if (++draws % DRAWS_PER_SLICE === 0) yield;
    }
  }
  yield* fisherYates(buffer, 0, filled, key, input.epoch, out);
  perm.set(buffer.subarray(0, filled), out);
}

/**
 * In-place Fisher-Yates of a[from, to), draw for slot t = uniform(key, epoch,
 * counterBase + from + t); yields every DRAWS_PER_SLICE draws.
 */
function* fisherYates(
  a: Uint32Array,
  from: number,
  to: number,
  key: bigint,
  epoch: number,
  counterBase = 0,
): Generator<void, void> {
  for (let t = to - from - 1; t > 0; t--) {
    const j = Math.floor(uniform(key, epoch, counterBase + from + t) * (t + 1));
    const x = a[from + t] as number;
    a[from + t] = a[from + j] as number;
    a[from + j] = x;
    if (t % DRAWS_PER_SLICE === 0) yield;
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
