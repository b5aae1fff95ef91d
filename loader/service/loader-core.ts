// What every stream of one loader shares: options, the in-flight byte budget,
// the range reader, the job registry, the score forwarder and the epoch
// boundary tracker, plus the loader's lifecycle signals and counters.
import type { Metadata } from '@grpc/grpc-js';
import { SadpError, Status } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { IoStats, PlannerStats, RangeReader } from '../fetch/index.js';
import { checkJobToken } from './auth.js';
import { BatchFetch, batchSpec, type FetchDeps } from './batch-fetch.js';
import type { ByteBudget } from './byte-budget.js';
import type { EpochBoundary, EpochShape } from './epoch-boundary.js';
import { epochLayout } from './epoch-layout.js';
import type { EpochState, JobContext, JobRegistry } from './job-registry.js';
import type { LoaderMetrics } from './metrics.js';
import type { ResolvedLoaderOptions } from './options.js';
import type { ScoreForwarder } from './score-forwarder.js';

/** Largest batch a trainer may ask for (65,536 samples). */
const MAX_BATCH_SIZE = 65_536;

/** A snapshot of one loader's counters (tests and `sadp loader` status). */
export interface LoaderStats {
  activeStreams: number;
  /** Bytes reserved from the in-flight budget now, and the most ever. */
  inflightBytes: number;
  inflightHighWater: number;
  inflightCapacity: number;
  batchesSent: number;
  samplesSent: number;
  /** Storage I/O of this loader's range reader. */
  io: IoStats;
  /** The read planner's mode, cost model and choices (readerOptions.planner). */
  planner: PlannerStats;
  scoresForwarded: number;
  scoresBuffered: number;
  scoreRetries: number;
  scoresRejected: number;
  /** Next-epoch batches prefetched at an epoch boundary. */
  warmBatchesStarted: number;
}

export interface LoaderCore {
  readonly options: ResolvedLoaderOptions;
  readonly logger: Logger;
  readonly metrics: LoaderMetrics;
  readonly budget: ByteBudget;
  readonly reader: RangeReader;
  readonly registry: JobRegistry;
  readonly forwarder: ScoreForwarder;
  readonly boundary: EpochBoundary;
  /** Aborted when draining starts: streams stop sending new batches. */
  readonly drainSignal: AbortSignal;
  /** Aborted when the loader is closed for good. */
  readonly lifetime: AbortSignal;
  readonly counters: { batchesSent: number; samplesSent: number; warmBatchesStarted: number };
  activeStreams: number;
  /** Open streams that hold prefetched batches. */
  readonly streams: Set<{ trim(share: number): void }>;
  /** A stream ended (drain waits for the count to reach zero). */
  streamClosed(): void;
  /** Pushes the reader's cumulative I/O counters into the Prometheus counters. */
  syncIo(): void;
  fetchDeps(ctx: JobContext, epoch: number): FetchDeps;
}

/** Looks the job up (NOT_FOUND), checks the caller's token, and the epoch's range (OUT_OF_RANGE). */
export async function openJob(
  core: LoaderCore,
  jobId: string,
  epoch: number,
  metadata: Metadata,
  signal: AbortSignal,
): Promise<JobContext> {
  const ctx = await core.registry.job(jobId, signal);
  checkJobToken(core.options.auth, metadata, jobId, ctx.tokenSha256);
  if (epoch >= ctx.epochs) {
    throw new SadpError(
      'SADP_EPOCH_OUT_OF_RANGE',
      `job ${jobId} has ${ctx.epochs} epochs (0..${ctx.epochs - 1}); epoch ${epoch} does not exist`,
      {
        status: Status.OUT_OF_RANGE,
      },
    );
  }
  return ctx;
}

export function checkShape(jobId: string, world: number, rank: number | undefined, batchSize: number): void {
  const bad = (msg: string): SadpError =>
    new SadpError('SADP_BAD_REQUEST', msg, { status: Status.INVALID_ARGUMENT });
  if (!jobId) throw bad('job_id is required');
  if (world === 0) throw bad('world_size must be >= 1');
  if (rank !== undefined && rank >= world)
    throw bad(`rank ${rank} is out of range for world_size ${world} (0..${world - 1})`);
  if (batchSize === 0 || batchSize > MAX_BATCH_SIZE) {
    throw bad(`batch_size must be in [1, ${MAX_BATCH_SIZE}], got ${batchSize}`);
  }
}

/**
 * Epoch boundary, early path: every rank of epoch k acked its last batch here
 * and (via the registry's beforePlan hook) all its scores are at the scorer,
 * so fetch plan k+1 now and prefetch each rank's first batches with whatever
 * budget is free, for the ranks' streams to adopt when they open k+1.
 */
export async function prepareNextEpoch(core: LoaderCore, finished: EpochShape): Promise<void> {
  const { jobId, epoch, world, batchSize } = finished;
  const next = epoch + 1;
  if (core.drainSignal.aborted) return;
  const ctx = await core.registry.job(jobId, core.lifetime);
  if (next >= ctx.epochs) return;
  const state: EpochState = await core.registry.epoch(ctx, next, core.lifetime);
  if (core.drainSignal.aborted) return;
  const layout = epochLayout(state.plan.ids.length, world, batchSize);
  const first = Math.min(core.options.prefetchBatches, layout.steps);
  const deps = core.fetchDeps(ctx, next);
  // Each rank's first batches as one window read (as its stream would start
  // them), its first batch's ranges at the reader's top priority.
  const perRank = new Map<number, Map<number, BatchFetch>>();
  let started = 0;
  for (let rank = 0; rank < world && first > 0; rank++) {
    if (core.boundary.rankOpened({ jobId, epoch: next, world, batchSize, rank })) continue;
    const specs = Array.from({ length: first }, (_, i) => batchSpec(state, layout, ctx.dataset, rank, i));
    const fetches = BatchFetch.tryStartWindow(specs, deps, 0);
    if (!fetches) break;
    perRank.set(rank, new Map(fetches.map((f) => [f.spec.index, f])));
    started += fetches.length;
  }
  for (const [rank, batches] of perRank) {
    core.boundary.putWarm({ jobId, epoch: next, world, batchSize, rank }, batches);
  }
  core.counters.warmBatchesStarted += started;
  core.logger.info(
    { job: jobId, epoch: next, world, batchSize, batches: started },
    'next epoch prefetched at boundary',
  );
}
