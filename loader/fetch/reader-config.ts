// The range reader's knobs that deployments set (config file, SADP_LOADER_*
// variables, `sadp loader` flags): their defaults and bounds, stated here once.
// resolveRangeReaderOptions applies the same defaults and bounds to
// programmatic options; common/config composes the schema into `loader`.
import { z } from 'zod';
import { SadpError, Status } from '../../common/errors.js';
import type { S3Options } from '../../storage/index.js';
import { READ_PLANNER_MODES, validCost, type ReadCostModel, type ReadPlannerMode } from './read-planner.js';
import { DEFAULT_SLAB_POOL_BYTES } from './slab-pool.js';

/** Defaults of every range reader option; range-reader.ts documents why each is what it is. */
export const RANGE_READER_DEFAULTS = {
  gapBytes: 64 * 1024,
  maxWasteRatio: 0.05,
  maxRequestBytes: 8 * 1024 * 1024,
  concurrency: 256,
  slabPoolBytes: DEFAULT_SLAB_POOL_BYTES,
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  idleTimeoutMs: 15_000,
  // Minimises the modelled time (read-planner.ts). In bench:loader's full run
  // (BENCHMARKS.md) its epoch time was 0.89-1.00x ranges' on loopback and
  // 0.97-1.21x on the shaped link (it merges less than ranges' 64 KiB rule
  // there), at 1.000-1.006x the selected bytes with the global shuffle.
  planner: 'auto',
  threads: 0,
} as const;

/** Upper bounds: past them a value is a typo, not a setting (1024 GETs or 20 attempts per range). */
export const RANGE_READER_LIMITS = { concurrency: 1024, maxAttempts: 20, threads: 64 } as const;

const d = RANGE_READER_DEFAULTS;

/** The configurable knobs as zod fields (keys are the `loader` config section's). */
export const rangeReaderConfigShape = {
  /** Merge byte ranges of one shard whose gap is below this. */
  gapBytes: z.number().int().min(0).default(d.gapBytes),
  /** Bound on pruned bytes fetched through merged gaps, as a fraction of the selected bytes. */
  maxWasteRatio: z.number().min(0).default(d.maxWasteRatio),
  /** How GETs are planned: auto (minimise modelled time), min-bytes, whole-shard or ranges. */
  readPlanner: z.enum(READ_PLANNER_MODES).default(d.planner),
  /** Ceiling on concurrent GETs per loader; within it the reader keeps what the link needs (Little's law). */
  concurrency: z.number().int().min(1).max(RANGE_READER_LIMITS.concurrency).default(d.concurrency),
  /** Bytes of recycled range memory kept free for later reads (slab-pool.ts). */
  slabPoolBytes: z.number().int().min(0).default(d.slabPoolBytes),
  /** Worker threads for GET + cut (0: on the server's thread); see loader/fetch/read-threads.ts. */
  readThreads: z.number().int().min(0).max(RANGE_READER_LIMITS.threads).default(d.threads),
  /** Attempts per range, the first included. */
  maxAttempts: z.number().int().min(1).max(RANGE_READER_LIMITS.maxAttempts).default(d.maxAttempts),
};

export interface RangeReaderOptions {
  /**
   * Merge two byte ranges of the same shard when the gap between them (the
   * pruned samples in between) is below this; contiguous samples are always
   * merged. Default 64 KiB, chosen by bench/io.ts: on ImageNet-shaped samples
   * (lognormal, mean 110 KB) it is the largest swept gap that keeps bytes
   * fetched within 5 % of the selected bytes at every r (measured 1.014-1.023;
   * 128 KiB gives 1.11-1.14), and it saves 8-13 % of the GETs that gap 0
   * needs. For datasets of much smaller samples lower it: a gap spans about
   * gapBytes / (mean sample size) pruned samples.
   */
  gapBytes?: number;
  /**
   * Bound on the bytes of pruned samples a read may fetch, as a fraction of
   * the selected bytes it delivers; default 0.05 (the I/O target: at most 5 %
   * over the selected bytes). It keeps a fixed gapBytes from pulling in dozens
   * of small pruned samples (a 64 KiB gap spans ~25 Fashion-MNIST samples)
   * while leaving ImageNet-sized merges as they are.
   */
  maxWasteRatio?: number;
  /** Cap on one merged GET's length; default 8 MiB (S3's recommended part size). A larger sample gets its own GET. */
  maxRequestBytes?: number;
  /**
   * Ceiling on in-flight GETs across all shards and read() calls; default
   * 256. Within it the reader keeps what the link needs (in-flight-limit.ts):
   * it starts at 64 and follows twice its achieved GET rate x the least
   * recent time to first byte (Little's law), never under 64 (or this
   * ceiling, when lower: 1 keeps one GET at a time). A fixed 64 bounded a far
   * store: 64 GETs of ~110 KB at 50 ms carry at most ~140 MB/s (~1,280
   * samples/s); a fixed 256 made a near, bandwidth-bound link slower (more
   * GETs share the link with the awaited batch's). Memory is not bounded by
   * this: the loader's byte budget (inflightBytes) reserves each prefetch
   * window's bytes before its GETs start, and the slab pool's free memory
   * is bounded by slabPoolBytes. The S3 client keeps as many sockets
   * (storage's maxSockets default is 256 too).
   */
  concurrency?: number;
  /**
   * Bytes of recycled range memory (1 MiB slabs and the whole-slab buffers of
   * larger ranges) the reader keeps free for later reads; default 64 MiB.
   * More is kept by nobody: a read past it allocates and the GC frees. One
   * prefetch window's ranges are recycled together, so about one window's
   * bytes (at most inflightBytes) serve the next window without allocating.
   */
  slabPoolBytes?: number;
  /** Attempts per range, first one included; default 5. */
  maxAttempts?: number;
  /** Backoff ceiling of the first retry; default 100 ms, doubling per attempt (full jitter). */
  baseDelayMs?: number;
  /** Upper bound on one backoff; default 5,000 ms. */
  maxDelayMs?: number;
  /** Abort a GET whose headers or body make no progress for this long, and resume it; default 15,000 ms. */
  idleTimeoutMs?: number;
  /**
   * How each read() turns selected samples into GETs (see read-planner.ts):
   * `auto` (default) minimises the modelled time (the longest of the CPU,
   * latency and link times) with costs measured from this reader's own
   * GETs; `min-bytes` does the same within maxWasteRatio; `ranges` is the
   * fixed gapBytes + maxWasteRatio rule; `whole-shard` reads one span per
   * shard.
   */
  planner?: ReadPlannerMode;
  /** A fixed cost model instead of the online estimate (tests, benchmarks, dry runs). */
  cost?: ReadCostModel;
  /** Export Prometheus counters (sadp_fetch_*) from common/metrics; default false. */
  metrics?: boolean;
  /**
   * Worker threads that run each range's GET + cut (read-threads.ts), for a
   * loader whose one core saturates; 0 (default) reads on the calling thread.
   * Default 0 by measurement: on a 2-core machine shared with its trainers a
   * thread raised the loader's CPU per sample and did not raise throughput
   * (BENCHMARKS.md). Only s3:// and file:// stores are read in threads.
   */
  threads?: number;
  /** How read threads open s3:// stores (their own client); the loader passes its S3 options. */
  threadS3?: S3Options;
}

export interface ResolvedRangeReaderOptions {
  gapBytes: number;
  maxWasteRatio: number;
  maxRequestBytes: number;
  concurrency: number;
  slabPoolBytes: number;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  idleTimeoutMs: number;
  planner: ReadPlannerMode;
  cost: ReadCostModel | undefined;
  metrics: boolean;
  threads: number;
  threadS3: S3Options | undefined;
}

export const DEFAULT_GAP_BYTES = RANGE_READER_DEFAULTS.gapBytes;
export const DEFAULT_MAX_WASTE_RATIO = RANGE_READER_DEFAULTS.maxWasteRatio;

export function resolveRangeReaderOptions(options: RangeReaderOptions = {}): ResolvedRangeReaderOptions {
  const d = RANGE_READER_DEFAULTS;
  const resolved: ResolvedRangeReaderOptions = {
    gapBytes: options.gapBytes ?? d.gapBytes,
    maxWasteRatio: options.maxWasteRatio ?? d.maxWasteRatio,
    maxRequestBytes: options.maxRequestBytes ?? d.maxRequestBytes,
    concurrency: options.concurrency ?? d.concurrency,
    slabPoolBytes: options.slabPoolBytes ?? d.slabPoolBytes,
    maxAttempts: options.maxAttempts ?? d.maxAttempts,
    baseDelayMs: options.baseDelayMs ?? d.baseDelayMs,
    maxDelayMs: options.maxDelayMs ?? d.maxDelayMs,
    idleTimeoutMs: options.idleTimeoutMs ?? d.idleTimeoutMs,
    planner: options.planner ?? d.planner,
    cost: options.cost,
    metrics: options.metrics ?? false,
    threads: options.threads ?? d.threads,
    threadS3: options.threadS3,
  };
  const check = (name: keyof ResolvedRangeReaderOptions, ok: boolean): void => {
    if (!ok) {
      throw new SadpError(
        'SADP_INVALID_OPTION',
        `range reader option ${name} = ${JSON.stringify(resolved[name])} is invalid`,
        {
          status: Status.INVALID_ARGUMENT,
        },
      );
    }
  };
  check('gapBytes', Number.isFinite(resolved.gapBytes) && resolved.gapBytes >= 0);
  check('maxWasteRatio', resolved.maxWasteRatio >= 0);
  check('maxRequestBytes', Number.isSafeInteger(resolved.maxRequestBytes) && resolved.maxRequestBytes > 0);
  const limits = RANGE_READER_LIMITS;
  check(
    'concurrency',
    Number.isInteger(resolved.concurrency) &&
      resolved.concurrency >= 1 &&
      resolved.concurrency <= limits.concurrency,
  );
  check('slabPoolBytes', Number.isSafeInteger(resolved.slabPoolBytes) && resolved.slabPoolBytes >= 0);
  check(
    'maxAttempts',
    Number.isInteger(resolved.maxAttempts) &&
      resolved.maxAttempts >= 1 &&
      resolved.maxAttempts <= limits.maxAttempts,
  );
  check('baseDelayMs', resolved.baseDelayMs >= 0);
  check('maxDelayMs', resolved.maxDelayMs >= resolved.baseDelayMs);
  check('idleTimeoutMs', resolved.idleTimeoutMs > 0);
  check(
    'threads',
    Number.isInteger(resolved.threads) && resolved.threads >= 0 && resolved.threads <= limits.threads,
  );
  check('planner', (READ_PLANNER_MODES as readonly string[]).includes(resolved.planner));
  check('cost', resolved.cost === undefined || validCost(resolved.cost));
  return resolved;
}
