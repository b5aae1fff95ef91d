// The loader gRPC server: StreamEpoch and DescribeEpoch served by the
// loader's stages (stages.ts), with health checking and reflection, and a
// graceful shutdown (health NOT_SERVING, refuse new streams, let streams
// finish their in-flight batches and commit their scores until the grace
// deadline, flush scores, then cut whatever is left with forceShutdown:
// tryShutdown alone never returns while a stream is open).
import { setMaxListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { SadpError, Status, toGrpcError } from '../../common/errors.js';
import { settleWithin } from '../../common/signals.js';
import { addStandardServices, LOADER_SERVICE_NAME, LoaderService, type sadp } from '../../proto/index.js';
import { keepaliveOptions } from '../../common/keepalive.js';
import { serverTlsCredentials } from '../../common/tls.js';
import { applyBufferGc } from './buffer-gc.js';
import { resolveLoaderOptions, type LoaderServerOptions, type ResolvedLoaderOptions } from './options.js';
import type { StreamEpochCall } from './session/epoch-stream.js';
import { createLoaderStages, type LoaderStats } from './stages.js';

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
  if (!applyBufferGc(resolved.bufferGc))
    logger.warn(
      { bufferGc: resolved.bufferGc, v8: process.versions.v8 },
      'bufferGc heap-limit needs V8 13 (Node 24); this V8 keeps its default GC for Buffers',
    );
  const lifetime = new AbortController();
  const drainController = new AbortController();
  // Every stream and storage read listens on these two: not a leak.
  setMaxListeners(0, lifetime.signal, drainController.signal);
  const stages = createLoaderStages({
    resolved,
    logger,
    drainSignal: drainController.signal,
    lifetime: lifetime.signal,
  });

  const server = new grpc.Server({
    ...keepaliveOptions(resolved.keepaliveTimeMs),
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(LoaderService, {
    streamEpoch: (call: StreamEpochCall) => stages.sessions.handle(call),
    describeEpoch: (
      call: grpc.ServerUnaryCall<sadp.v1.DescribeEpochRequest, sadp.v1.EpochInfo>,
      callback: grpc.sendUnaryData<sadp.v1.EpochInfo>,
    ) => {
      stages.describeEpoch(call).then(
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
    logger.info({ streams: stages.sessions.stats().activeStreams }, 'loader draining');
  }

  async function close(graceMs = 10_000): Promise<void> {
    const deadline = Date.now() + graceMs;
    startDrain();
    await settleWithin(stages.sessions.idle(), deadline - Date.now());
    const open = stages.sessions.stats().activeStreams;
    if (open > 0) logger.warn({ streams: open }, 'grace period over; cutting streams');
    await settleWithin(stages.flushScores(), Math.max(1_000, deadline - Date.now()));
    lifetime.abort();
    stages.stop();
    // Statuses written by finished streams still have to reach their sockets:
    // tryShutdown closes each connection once its calls are done; whatever is
    // still open when the deadline passes is cut.
    await settleWithin(
      new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
      Math.max(500, deadline - Date.now()),
    );
    server.forceShutdown();
    await stages.close();
    logger.info(stages.stats(), 'loader closed');
  }

  return {
    address,
    port,
    options: resolved,
    drain: async () => {
      startDrain();
      await stages.sessions.idle();
    },
    close: (graceMs?: number) => (closing ??= close(graceMs)),
    stats: () => stages.stats(),
  };
}
