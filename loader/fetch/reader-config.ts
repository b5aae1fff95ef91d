// The range reader's knobs that deployments set (config file, SADP_LOADER_*
// variables, `sadp loader` flags): their defaults and bounds, stated here once.
// resolveRangeReaderOptions applies the same defaults and bounds to
// programmatic options; common/config composes the schema into `loader`.
import { z } from 'zod';
import { READ_PLANNER_MODES } from './read-planner.js';

/** Defaults of every range reader option; range-reader.ts documents why each is what it is. */
export const RANGE_READER_DEFAULTS = {
  gapBytes: 64 * 1024,
  maxWasteRatio: 0.05,
  maxRequestBytes: 8 * 1024 * 1024,
  concurrency: 64,
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  idleTimeoutMs: 15_000,
  // Measured fastest in every bench:loader case, on loopback and the shaped
  // link (BENCHMARKS.md); auto's online cost model still over-merges.
  planner: 'ranges',
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
  /** Concurrent GETs per loader. */
  concurrency: z.number().int().min(1).max(RANGE_READER_LIMITS.concurrency).default(d.concurrency),
  /** Worker threads for GET + cut (0: on the server's thread); see loader/fetch/read-threads.ts. */
  readThreads: z.number().int().min(0).max(RANGE_READER_LIMITS.threads).default(d.threads),
  /** Attempts per range, the first included. */
  maxAttempts: z.number().int().min(1).max(RANGE_READER_LIMITS.maxAttempts).default(d.maxAttempts),
};
