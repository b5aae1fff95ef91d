// The loader's stages, built once per server and wired through their
// interfaces: jobs (registry + access checks), feedback (score forwarder,
// epoch boundary, the plan gate between them), supply (budget, reader,
// prefetch policy, warm batches of the next epoch) and the session stage
// (one EpochStream per call). server.ts only puts them behind gRPC.
import { bearerInterceptor } from '../../common/bearer.js';
import type { Logger } from '../../common/logger.js';
import type { sadp } from '../../proto/index.js';
import { createScorerClient } from '../../scorer/index.js';
import { createS3Client, type S3Client } from '../../storage/index.js';
import type { IoStats, PlannerStats } from '../fetch/index.js';
import type * as grpc from '@grpc/grpc-js';
import { EpochBoundary } from './feedback/epoch-boundary.js';
import { createPlanGate } from './feedback/plan-gate.js';
import { ScoreForwarder } from './feedback/score-forwarder.js';
import { createJobAccess } from './jobs/job-access.js';
import { JobRegistry } from './jobs/job-registry.js';
import { loaderMetrics } from './metrics.js';
import type { ResolvedLoaderOptions } from './options.js';
import { describeEpoch } from './session/describe-epoch.js';
import { createSessions, type Sessions } from './session/sessions.js';
import { nextEpochPrefetcher } from './supply/next-epoch.js';
import { createSupply } from './supply/supply.js';

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
  /** Score entries given up after scoreDurableTimeoutMs of scorer failures (trainers resend them). */
  scoresNotDurable: number;
  /** Next-epoch batches prefetched at an epoch boundary. */
  warmBatchesStarted: number;
}

export interface LoaderStages {
  readonly sessions: Sessions;
  describeEpoch(
    call: grpc.ServerUnaryCall<sadp.v1.DescribeEpochRequest, sadp.v1.EpochInfo>,
  ): Promise<sadp.v1.EpochInfo>;
  /** Sends every job's buffered scores to the scorer; resolves when they are durable (or rejected). */
  flushScores(): Promise<void>;
  stats(): LoaderStats;
  /** After `lifetime` aborted: stops score timers, barriers and warm batches. */
  stop(): void;
  /** Once the gRPC server is shut down: closes the scorer and S3 clients and the read threads. */
  close(): Promise<void>;
}

export interface LoaderStagesOptions {
  resolved: ResolvedLoaderOptions;
  logger: Logger;
  /** Aborted when draining starts. */
  drainSignal: AbortSignal;
  /** Aborted when the loader closes for good. */
  lifetime: AbortSignal;
}

export function createLoaderStages(options: LoaderStagesOptions): LoaderStages {
  const { resolved, logger, drainSignal, lifetime } = options;
  const metrics = loaderMetrics();
  const scorer = createScorerClient({
    address: resolved.scorerAddress,
    tls: resolved.scorerTls,
    keepaliveTimeMs: resolved.keepaliveTimeMs,
    callTimeoutMs: resolved.scorerCallTimeoutMs,
    ...(resolved.scorerToken ? { interceptors: [bearerInterceptor(resolved.scorerToken)] } : {}),
  });

  // Feedback.
  const forwarder = new ScoreForwarder({
    scorer,
    flushEntries: resolved.scoreFlushEntries,
    flushMs: resolved.scoreFlushMs,
    maxBufferedEntries: resolved.scoreBufferEntries,
    durableTimeoutMs: resolved.scoreDurableTimeoutMs,
    logger,
    metrics,
    signal: lifetime,
  });
  const boundary = new EpochBoundary(metrics);

  // Jobs.
  let s3Client: S3Client | undefined;
  const registry = new JobRegistry({
    scorer,
    // The range reader retries (with resume from the last byte) itself: one SDK attempt each.
    s3Client: () => (s3Client ??= createS3Client({ ...resolved.s3, maxAttempts: 1 })),
    datasetAccess: resolved.datasetAccess,
    shuffle: resolved.shuffle,
    shuffleBlockShards: resolved.shuffleBlockShards,
    logger,
    metrics,
    signal: lifetime,
    beforePlan: createPlanGate({ boundary, forwarder, barrierMs: resolved.epochBarrierMs }),
  });
  const jobs = createJobAccess(registry, resolved.auth);

  // Supply.
  const supply = createSupply({
    inflightBytes: resolved.inflightBytes,
    prefetchBatches: resolved.prefetchBatches,
    warmBatchTtlMs: resolved.warmBatchTtlMs,
    readerOptions: resolved.readerOptions,
    // Read threads open their own S3 client: one SDK attempt, the reader retries.
    threadS3: { ...resolved.s3, maxAttempts: 1 },
    onStorageRequest: resolved.onStorageRequest,
    metrics,
    onBatchReady: (jobId, epoch) => boundary.batchReady(jobId, epoch),
  });
  boundary.onEpochComplete(
    nextEpochPrefetcher({
      jobs: registry,
      supply,
      opened: (key) => boundary.rankOpened(key),
      drainSignal,
      lifetime,
      logger,
    }),
  );

  // Sessions.
  const sessions = createSessions({
    openTimeoutMs: resolved.openTimeoutMs,
    maxMessageBytes: resolved.maxMessageBytes,
    logger,
    metrics,
    drainSignal,
    jobs,
    supply,
    scores: forwarder,
    boundary,
  });

  return {
    sessions,
    describeEpoch: (call) =>
      describeEpoch({ jobs, bytesReceived: (jobId, epoch) => supply.bytesReceived(jobId, epoch) }, call),
    flushScores: () => forwarder.flushAll(),
    stats() {
      const { warmBatchesStarted, ...io } = supply.stats();
      return {
        ...sessions.stats(),
        ...io,
        scoresForwarded: forwarder.stats.forwarded,
        scoresBuffered: forwarder.stats.buffered,
        scoreRetries: forwarder.stats.retries,
        scoresRejected: forwarder.stats.rejected,
        scoresNotDurable: forwarder.stats.notDurable,
        warmBatchesStarted,
      };
    },
    stop() {
      forwarder.close();
      boundary.close();
      supply.close();
    },
    async close() {
      scorer.close();
      s3Client?.destroy();
      supply.close();
      await supply.stopReads();
    },
  };
}
