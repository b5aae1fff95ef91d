// The I/O and cost of a training run before it is paid for: per epoch, the
// batches the loader would fetch (the same shuffle, rank split and read
// planner it uses), their GETs and bytes, what that costs in dollars and
// time on a link model, against reading every shard whole. Reads are
// planned by the loader's read planner (loader/fetch/read-planner.ts) in the
// loader's mode, with the link's cost model unless a fixed one is given.
import { SadpError, Status } from '../../common/errors.js';
import { defaultHyperparameters, pruneRatioAt } from '../../scorer/index.js';
import {
  breakEvenGapBytes,
  resolveRangeReaderOptions,
  IN_FLIGHT_FLOOR,
  type RangeReaderOptions,
  type ReadCostModel,
  type ReadPlannerMode,
  type SampleLayout,
} from '../fetch/index.js';
import { batchSpan, epochLayout, orderIndexAt, shufflePlan } from '../service/jobs/epoch-layout.js';
import { LOADER_DEFAULTS, type ShuffleMode } from '../service/options.js';
import { readFetchCost } from './fetch-cost.js';
import { linkReadCost, type LinkModel } from './link-model.js';

/** Policies whose subset size is known before training (infobatch depends on the losses). */
export const ESTIMATE_POLICIES = ['full', 'random', 'sadp', 'sadp-loss'] as const;
export type EstimatePolicy = (typeof ESTIMATE_POLICIES)[number];

export interface DatasetLayout extends SampleLayout {
  /** Samples N. */
  size: number;
  /** Size in bytes of each shard object (what whole-shard reading fetches). */
  shardBytes: ArrayLike<number>;
}

export interface EstimateOptions {
  dataset: DatasetLayout;
  policy: EstimatePolicy;
  /** Average pruning ratio r; ignored for `full`. */
  pruneRatio: number;
  /** r_max; default Table II's for r. */
  maxPruneRatio?: number;
  epochs: number;
  worldSize: number;
  batchSize: number;
  link: LinkModel;
  /** Loader replicas; default 1. */
  loaders?: number;
  /**
   * The loaders' range reader settings (`planner` mode, fixed `cost`,
   * `gapBytes`, `maxWasteRatio`, `maxRequestBytes`, `concurrency`), resolved
   * with the reader's own defaults: `sadp estimate` plans as the loader does.
   * `concurrency` here is the GETs in flight modelled, default IN_FLIGHT_FLOOR
   * (64): the reader's limit before it adapts (it rises only while latency,
   * not its CPU, binds; see loader/fetch/in-flight-limit.ts).
   * Without `cost`, the planner's cost model is the link's (linkReadCost),
   * what the reader's online estimate converges to on that link.
   */
  reader?: RangeReaderOptions;
  /**
   * Consecutive batches of one rank planned as one read: the loader's
   * prefetchBatches (it plans a prefetch window at a time); default the
   * loader's default.
   */
  windowBatches?: number;
  /** S3 prefixes the shards are spread over (the GET rate limit is per prefix); default 1. */
  prefixes?: number;
  shuffle?: ShuffleMode;
  shuffleBlockShards?: number;
  seed?: bigint;
  /**
   * The plan's ids (ascending) for an epoch; default a uniform subset of the
   * schedule's size (the first SADP epoch is uniform; later ones weight by
   * scores the estimate cannot know).
   */
  selectIds?: (epoch: number, size: number) => Uint32Array;
}

export interface EpochEstimate {
  epoch: number;
  pruneRatio: number;
  selected: number;
  gets: number;
  bytesFetched: number;
  bytesSelected: number;
  /** Estimated wall time of the epoch's reads, and what bounds it. */
  seconds: number;
  bound: 'bandwidth' | 'latency' | 'get-rate';
  /** GETs/s the epoch needs at the unthrottled time, against the prefixes' limit. */
  getRateNeeded: number;
  dollars: number;
  whole: { gets: number; bytes: number; seconds: number; bound: EpochEstimate['bound']; dollars: number };
}

/** How the estimate planned its reads: the loader's planner, mode and cost model. */
export interface PlannerEstimate {
  mode: ReadPlannerMode;
  cost: ReadCostModel;
  /** Gaps of pruned bytes below this are read rather than skipped (auto, min-bytes). */
  breakEvenGapBytes: number;
  windowBatches: number;
}

export interface RunEstimate {
  planner: PlannerEstimate;
  epochs: EpochEstimate[];
  total: {
    gets: number;
    bytesFetched: number;
    seconds: number;
    dollars: number;
    whole: { gets: number; bytes: number; seconds: number; dollars: number };
  };
  datasetBytes: number;
  getRateLimit: number;
}

function hashUniform(seed: number, stream: number, i: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35) ^ seed;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}

/** A uniform subset of exactly `count` of 0..n-1, ascending (selection sampling). */
export function uniformSubset(n: number, count: number, seed: number, stream: number): Uint32Array {
  const out = new Uint32Array(count);
  let chosen = 0;
  for (let i = 0; i < n && chosen < count; i++) {
    if (hashUniform(seed, stream, i) * (n - i) < count - chosen) out[chosen++] = i;
  }
  return out;
}

function readTime(
  gets: number,
  bytes: number,
  link: LinkModel,
  inFlight: number,
  getRateLimit: number,
): { seconds: number; bound: EpochEstimate['bound']; getRateNeeded: number } {
  const bandwidth = bytes / link.bandwidthBytesPerSecond;
  const latency = (gets * link.latencyMs) / 1000 / inFlight;
  const unthrottled = Math.max(bandwidth, latency);
  const getRateNeeded = unthrottled > 0 ? gets / unthrottled : 0;
  const rate = gets / getRateLimit;
  if (rate > unthrottled) return { seconds: rate, bound: 'get-rate', getRateNeeded };
  return { seconds: unthrottled, bound: latency > bandwidth ? 'latency' : 'bandwidth', getRateNeeded };
}

function dollars(gets: number, bytes: number, link: LinkModel): number {
  return (
    (gets / 1000) * link.getPricePer1000 + (bytes / 1e9) * (link.egressPricePerGB + link.retrievalPricePerGB)
  );
}

export function estimateRun(options: EstimateOptions): RunEstimate {
  const { dataset, link, epochs: K, worldSize: W, batchSize: B } = options;
  const n = dataset.size;
  const bad = (what: string): never => {
    throw new SadpError('SADP_CONFIG_INVALID', `estimate: ${what}`, { status: Status.INVALID_ARGUMENT });
  };
  if (!(ESTIMATE_POLICIES as readonly string[]).includes(options.policy))
    bad(
      `policy ${options.policy} has no subset size known before training; use one of ${ESTIMATE_POLICIES.join(', ')}`,
    );
  if (!Number.isInteger(K) || K < 1) bad(`epochs must be >= 1, got ${K}`);
  if (!Number.isInteger(W) || W < 1) bad(`world size must be >= 1, got ${W}`);
  if (!Number.isInteger(B) || B < 1) bad(`batch size must be >= 1, got ${B}`);
  const full = options.policy === 'full';
  const r = full ? 0 : options.pruneRatio;
  if (!(r >= 0 && r < 1)) bad(`prune ratio must be in [0, 1), got ${r}`);
  const rMax = options.maxPruneRatio ?? defaultHyperparameters(r).maxPruneRatio;
  const loaders = options.loaders ?? 1;
  if (!Number.isInteger(loaders) || loaders < 1) bad(`loaders must be >= 1, got ${loaders}`);
  const windowBatches = options.windowBatches ?? LOADER_DEFAULTS.prefetchBatches;
  if (!Number.isInteger(windowBatches) || windowBatches < 1)
    bad(`window must be >= 1 batches, got ${windowBatches}`);
  const reader = resolveRangeReaderOptions({
    ...options.reader,
    concurrency: options.reader?.concurrency ?? IN_FLIGHT_FLOOR,
  });
  const planOptions = {
    ...reader,
    mode: reader.planner,
    cost: reader.cost ?? linkReadCost(link, loaders, reader.concurrency),
  };
  const planner: PlannerEstimate = {
    mode: planOptions.mode,
    cost: planOptions.cost,
    breakEvenGapBytes: breakEvenGapBytes(planOptions.cost),
    windowBatches,
  };
  const inFlight = loaders * reader.concurrency;
  const getRateLimit = link.getRatePerPrefix * (options.prefixes ?? 1);
  const seed = options.seed ?? 0n;
  let shardTotal = 0;
  for (let s = 0; s < dataset.shardBytes.length; s++) shardTotal += dataset.shardBytes[s] as number;
  let datasetBytes = 0;
  for (let i = 0; i < n; i++) datasetBytes += (dataset.ends[i] as number) - (dataset.offsets[i] as number);
  const wholeGets = dataset.shardBytes.length;
  const wholeTime = readTime(wholeGets, shardTotal, link, inFlight, getRateLimit);
  const whole = {
    gets: wholeGets,
    bytes: shardTotal,
    seconds: wholeTime.seconds,
    bound: wholeTime.bound,
    dollars: dollars(wholeGets, shardTotal, link),
  };

  const epochs: EpochEstimate[] = [];
  const batchIds: number[] = [];
  for (let epoch = 0; epoch < K; epoch++) {
    const rk = full ? 0 : options.policy === 'random' ? r : pruneRatioAt(epoch, r, rMax, K, n);
    const count = Math.round((1 - rk) * n);
    const ids = options.selectIds?.(epoch, count) ?? uniformSubset(n, count, 0x5ad9, epoch);
    const perm = shufflePlan({
      ids,
      seed,
      epoch,
      mode: options.shuffle ?? LOADER_DEFAULTS.shuffle,
      blockShards: options.shuffleBlockShards ?? LOADER_DEFAULTS.shuffleBlockShards,
      shardOf: (id) => dataset.shardIds[id] as number,
    });
    const layout = epochLayout(ids.length, W, B);
    let gets = 0;
    let bytesFetched = 0;
    let bytesSelected = 0;
    for (let rank = 0; rank < W; rank++) {
      for (let b = 0; b < layout.steps; b += windowBatches) {
        // One plan per prefetch window of the rank's batches, as the loader starts them.
        const start = batchSpan(layout, rank, b).start;
        const end = batchSpan(layout, rank, Math.min(b + windowBatches, layout.steps) - 1).end;
        batchIds.length = 0;
        for (let p = start; p < end; p++)
          batchIds.push(ids[perm[orderIndexAt(layout, p)] as number] as number);
        const cost = readFetchCost(dataset, n, batchIds, planOptions);
        gets += cost.gets;
        bytesFetched += cost.bytesRequested;
        bytesSelected += cost.bytesSelected;
      }
    }
    const time = readTime(gets, bytesFetched, link, inFlight, getRateLimit);
    epochs.push({
      epoch,
      pruneRatio: 1 - ids.length / n,
      selected: ids.length,
      gets,
      bytesFetched,
      bytesSelected,
      seconds: time.seconds,
      bound: time.bound,
      getRateNeeded: time.getRateNeeded,
      dollars: dollars(gets, bytesFetched, link),
      whole,
    });
  }
  const sum = (f: (e: EpochEstimate) => number): number => epochs.reduce((s, e) => s + f(e), 0);
  return {
    planner,
    epochs,
    total: {
      gets: sum((e) => e.gets),
      bytesFetched: sum((e) => e.bytesFetched),
      seconds: sum((e) => e.seconds),
      dollars: sum((e) => e.dollars),
      whole: {
        gets: whole.gets * K,
        bytes: whole.bytes * K,
        seconds: whole.seconds * K,
        dollars: whole.dollars * K,
      },
    },
    datasetBytes,
    getRateLimit,
  };
}
