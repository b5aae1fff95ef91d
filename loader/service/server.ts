// The loader gRPC server: StreamEpoch and DescribeEpoch over one shared core,
// with health checking and reflection, and a graceful shutdown (health
// NOT_SERVING, refuse new streams, let streams finish their in-flight batches
// and commit their scores until the grace deadline, flush scores, then cut
// whatever is left with forceShutdown: tryShutdown alone never returns while
// a stream is open).
import { setMaxListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { bearerInterceptor } from '../../common/bearer.js';
import { SadpError, Status, errorMessage, toGrpcError } from '../../common/errors.js';
import { addStandardServices, LOADER_SERVICE_NAME, LoaderService, type sadp } from '../../proto/index.js';
import { createScorerClient } from '../../scorer/index.js';
import { createS3Client, type S3Client } from '../../storage/index.js';
import { createRangeReader, type IoStats } from '../fetch/index.js';
import { createByteBudget } from './byte-budget.js';
import { EpochBoundary } from './epoch-boundary.js';
import { createEpochIo, type EpochIo } from './epoch-io.js';
import { epochLayout } from './epoch-layout.js';
import { handleStreamEpoch, type StreamEpochCall } from './epoch-stream.js';
import { epochInfo } from './stream-messages.js';
import { raceSignal } from '../../common/signals.js';
import { serverTlsCredentials } from '../../common/tls.js';
import { JobRegistry } from './job-registry.js';
import { checkShape, openJob, prepareNextEpoch, type LoaderCore, type LoaderStats } from './loader-core.js';
import { loaderMetrics } from './metrics.js';
import { resolveLoaderOptions, type LoaderServerOptions, type ResolvedLoaderOptions } from './options.js';
import { ScoreForwarder } from './score-forwarder.js';

export interface LoaderServer {
  /** `host:port` to dial. */
  readonly address: string;
  readonly port: number;
  readonly options: ResolvedLoaderOptions;
  /**
   * Stops taking new streams (health NOT_SERVING, new calls UNAVAILABLE) and
   * resolves once every open stream has finished: streams stop sending new
   * batches, wait for the acks of what they sent, commit those scores and end
   * with UNAVAILABLE (clients reconnect elsewhere with their cursor).
   */
  drain(): Promise<void>;
  /**
   * drain() for at most `graceMs` (default 10,000), then flushes buffered
   * scores to the scorer (bounded by the same deadline, at least 1 s), then
   * cuts any remaining stream and releases everything.
   */
  close(graceMs?: number): Promise<void>;
  /** Counters of this loader (the Prometheus metrics sum over every loader of the process). */
  stats(): LoaderStats;
}

export async function createLoaderServer(options: LoaderServerOptions): Promise<LoaderServer> {
  const resolved = resolveLoaderOptions(options);
  const logger = resolved.logger.child({ component: 'loader' });
  const metrics = loaderMetrics();
  const lifetime = new AbortController();
  const drainController = new AbortController();
  // Every stream and storage read listens on these two: not a leak.
  setMaxListeners(0, lifetime.signal, drainController.signal);

  const scorer = createScorerClient({
    address: resolved.scorerAddress,
    credentials: resolved.scorerCredentials,
    keepaliveTimeMs: resolved.keepaliveTimeMs,
    callTimeoutMs: resolved.scorerCallTimeoutMs,
    ...(resolved.scorerToken ? { interceptors: [bearerInterceptor(resolved.scorerToken)] } : {}),
  });

  // The planner's sadp_read_* metrics (mode, mix, cost model) go to /metrics with the loader's.
  const reader = createRangeReader({ metrics: true, ...resolved.readerOptions });
  if (resolved.onStorageRequest) reader.onRequest = resolved.onStorageRequest;
  // On contention, prefetched batches beyond each stream's fair share (and
  // next-epoch warm batches) are given back, so a stalled trainer holding
  // prefetches cannot starve the others. They are refetched when needed.
  const budget = createByteBudget(
    resolved.inflightBytes,
    (delta) => metrics.inflightBytes.inc(delta),
    () => {
      boundary.dropAllWarm();
      const share = resolved.inflightBytes / Math.max(1, core.activeStreams);
      for (const s of core.streams) s.trim(share);
    },
  );

  let s3Client: S3Client | undefined;
  const forwarder = new ScoreForwarder({
    scorer,
    flushEntries: resolved.scoreFlushEntries,
    flushMs: resolved.scoreFlushMs,
    maxBufferedEntries: resolved.scoreBufferEntries,
    logger,
    metrics,
    signal: lifetime.signal,
  });

  const idleWaiters: Array<() => void> = [];
  let lastIo: IoStats = { ...reader.stats };

  // Forward declaration: the boundary calls back into the core.
  // eslint-disable-next-line prefer-const
  let core: LoaderCore;
  const boundary = new EpochBoundary(metrics, resolved.warmBatchTtlMs, (finished) => {
    prepareNextEpoch(core, finished).catch((err: unknown) => {
      if (lifetime.signal.aborted || drainController.signal.aborted) return;
      logger.warn(
        { job: finished.jobId, epoch: finished.epoch + 1, err: errorMessage(err) },
        'prefetch of the next epoch failed',
      );
    });
  });

  const epochIo = createEpochIo();
  const registry = new JobRegistry({
    scorer,
    // The range reader retries (with resume from the last byte) itself: one SDK attempt each.
    s3Client: () => (s3Client ??= createS3Client({ ...resolved.s3, maxAttempts: 1 })),
    datasetAccess: resolved.datasetAccess,
    shuffle: resolved.shuffle,
    shuffleBlockShards: resolved.shuffleBlockShards,
    logger,
    metrics,
    signal: lifetime.signal,
    beforePlan: async (jobId, epoch, signal) => {
      // Strict per loader: epoch k's streams here finish (bounded wait) and
      // every score this loader holds is at the scorer before plan k+1 is fixed.
      if (epoch > 0) await boundary.barrier(jobId, epoch - 1, resolved.epochBarrierMs, signal);
      await raceSignal(forwarder.flush(jobId), signal, `score flush of job ${jobId}`);
    },
  });

  core = {
    options: resolved,
    logger,
    metrics,
    budget,
    reader,
    registry,
    forwarder,
    boundary,
    drainSignal: drainController.signal,
    lifetime: lifetime.signal,
    counters: { batchesSent: 0, samplesSent: 0, warmBatchesStarted: 0 },
    activeStreams: 0,
    streams: new Set(),
    streamClosed() {
      if (core.activeStreams === 0) for (const w of idleWaiters.splice(0)) w();
    },
    syncIo() {
      const now = reader.stats;
      metrics.bytesFetched.inc(now.bytesReceived - lastIo.bytesReceived);
      metrics.storageRequests.inc(now.requests - lastIo.requests);
      metrics.storageRetries.inc(now.retries - lastIo.retries);
      lastIo = { ...now };
    },
    fetchDeps(ctx, epoch) {
      return {
        budget,
        reader,
        dataset: ctx.dataset,
        onReady: () => {
          boundary.batchReady(ctx.jobId, epoch);
          core.syncIo();
        },
        onReceived: (n) => epochIo.add(ctx.jobId, epoch, n),
      };
    },
  };

  const server = new grpc.Server({
    'grpc.keepalive_time_ms': resolved.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(LoaderService, {
    streamEpoch: (call: StreamEpochCall) => handleStreamEpoch(core, call),
    describeEpoch: (
      call: grpc.ServerUnaryCall<sadp.v1.DescribeEpochRequest, sadp.v1.EpochInfo>,
      callback: grpc.sendUnaryData<sadp.v1.EpochInfo>,
    ) => {
      describeEpoch(core, epochIo, call).then(
        (info) => callback(null, info),
        (err: unknown) => {
          const e = toGrpcError(err);
          callback({ code: e.code, details: e.details, message: e.details });
        },
      );
    },
  });
  const health = addStandardServices(server, [LOADER_SERVICE_NAME]);

  const credentials = serverTlsCredentials(resolved.tls);
  const bare = resolved.host.replace(/^\[(.*)\]$/, '$1');
  const bindHost = bare.includes(':') ? `[${bare}]` : bare;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:${resolved.port}`, credentials, (err, p) =>
      err
        ? reject(
            new SadpError(
              'SADP_BIND_FAILED',
              `loader cannot listen on ${bindHost}:${resolved.port}: ${err.message}`,
              {
                status: Status.UNAVAILABLE,
                cause: err,
              },
            ),
          )
        : resolve(p),
    ),
  );
  const address = `${bindHost}:${port}`;
  logger.info(
    {
      address,
      scorer: resolved.scorerAddress,
      inflightBytes: resolved.inflightBytes,
      prefetchBatches: resolved.prefetchBatches,
      shuffle: resolved.shuffle,
      auth: resolved.auth,
      tls: Boolean(resolved.tls),
    },
    'loader listening',
  );

  let closing: Promise<void> | undefined;

  function startDrain(): void {
    if (drainController.signal.aborted) return;
    health.setStatus('', 'NOT_SERVING');
    health.setStatus(LOADER_SERVICE_NAME, 'NOT_SERVING');
    drainController.abort();
    logger.info({ streams: core.activeStreams }, 'loader draining');
  }

  function idle(): Promise<void> {
    if (core.activeStreams === 0) return Promise.resolve();
    return new Promise((resolve) => idleWaiters.push(resolve));
  }

  async function close(graceMs = 10_000): Promise<void> {
    const deadline = Date.now() + graceMs;
    startDrain();
    let timer: NodeJS.Timeout | undefined;
    const timeout = (ms: number): Promise<void> =>
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.max(0, ms));
      });
    await Promise.race([idle(), timeout(deadline - Date.now())]);
    clearTimeout(timer);
    if (core.activeStreams > 0)
      logger.warn({ streams: core.activeStreams }, 'grace period over; cutting streams');
    await Promise.race([forwarder.flushAll(), timeout(Math.max(1_000, deadline - Date.now()))]);
    clearTimeout(timer);
    lifetime.abort();
    forwarder.close();
    boundary.close();
    // Statuses written by finished streams still have to reach their sockets:
    // tryShutdown closes each connection once its calls are done; whatever is
    // still open when the deadline passes is cut.
    await new Promise<void>((resolve) => {
      const force = setTimeout(resolve, Math.max(500, deadline - Date.now()));
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    server.forceShutdown();
    scorer.close();
    s3Client?.destroy();
    core.syncIo();
    logger.info(stats(), 'loader closed');
  }

  function stats(): LoaderStats {
    return {
      activeStreams: core.activeStreams,
      inflightBytes: budget.used,
      inflightHighWater: budget.highWater,
      inflightCapacity: budget.capacity,
      batchesSent: core.counters.batchesSent,
      samplesSent: core.counters.samplesSent,
      io: { ...reader.stats },
      planner: reader.planner,
      scoresForwarded: forwarder.stats.forwarded,
      scoresBuffered: forwarder.stats.buffered,
      scoreRetries: forwarder.stats.retries,
      scoresRejected: forwarder.stats.rejected,
      warmBatchesStarted: core.counters.warmBatchesStarted,
    };
  }

  return {
    address,
    port,
    options: resolved,
    drain: async () => {
      startDrain();
      await idle();
    },
    close: (graceMs?: number) => (closing ??= close(graceMs)),
    stats,
  };
}

async function describeEpoch(
  core: LoaderCore,
  epochIo: EpochIo,
  call: grpc.ServerUnaryCall<sadp.v1.DescribeEpochRequest, sadp.v1.EpochInfo>,
): Promise<sadp.v1.EpochInfo> {
  const req = call.request;
  const jobId = req.jobId ?? '';
  const world = req.worldSize ?? 0;
  const batchSize = req.batchSize ?? 0;
  const epoch = req.epoch ?? 0;
  checkShape(jobId, world, undefined, batchSize);
  const controller = new AbortController();
  const onCancel = (): void => controller.abort();
  call.once('cancelled', onCancel);
  try {
    const ctx = await openJob(core, jobId, epoch, call.metadata, controller.signal);
    const state = await core.registry.epoch(ctx, epoch, controller.signal);
    const info = epochInfo(ctx, state, epochLayout(state.plan.ids.length, world, batchSize));
    info.storageBytesReceived = epochIo.received(jobId, epoch);
    return info;
  } finally {
    call.removeListener('cancelled', onCancel);
  }
}
