// The Scorer gRPC service (proto/sadp/v1/scorer.proto) over a ScorerCore,
// with health checking and reflection. Epochs past the job's last one are
// OUT_OF_RANGE (the request is well formed, the epoch is past the run's end).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { SadpError, Status, invalidArgument, toGrpcError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/logger.js';
import { keepaliveOptions } from '../../common/keepalive.js';
import { serverTlsCredentials, type TlsOptions } from '../../common/tls.js';
import { addStandardServices, pb, ScorerService, SCORER_SERVICE_NAME, type sadp } from '../../proto/index.js';
import { openStore, type ObjectStore, type S3Options } from '../../storage/index.js';
import type { EpochPlan } from '../math/index.js';
import { waitForEvent } from '../../common/signals.js';
import { jobToWire, specFromWire, statsToWire } from '../wire.js';
import { openScorerCore, type ScorerCore, type ScorerCoreOptions } from './core.js';
import { createScorerAuth, type ScorerAuth, type ScorerAuthOptions } from './auth.js';

export interface ScorerServerOptions extends Omit<ScorerCoreOptions, 'store' | 'logger'> {
  /** Default 127.0.0.1 (with auth 'none', anyone who reaches the port may create jobs and report scores). */
  host?: string;
  /** Default 0 (a free port; see `port` on the result). */
  port?: number;
  /** State location: a directory, `file://` URL or `s3://bucket/prefix`. Ignored when `store` is given. */
  stateUrl?: string;
  /** An already-open state store (in-process setups share one). */
  store?: ObjectStore;
  /** S3 client options for an `s3://` state URL. */
  s3?: S3Options;
  logger?: Logger;
  /** Largest request accepted. Default 16 MiB: a 1M-entry report with scores and losses is ~20 MB, so big reporters must split; 65,536-entry reports are ~1.3 MB. */
  maxReceiveMessageBytes?: number;
  /** TLS (cert + key; mutual with ca + requireClientCert); default plaintext (loopback or a mesh-encrypted network). */
  tls?: TlsOptions;
  /** Server keepalive ping interval. Default 60 s, below the 350 s idle cutoff of cloud L4 load balancers. */
  keepaliveTimeMs?: number;
  /** Bearer-token roles (see auth.ts); default none. */
  auth?: ScorerAuthOptions;
}

export interface ScorerServer {
  /** `host:port` to dial. */
  readonly address: string;
  readonly port: number;
  readonly core: ScorerCore;
  /** Health NOT_SERVING, drain for up to `graceMs` (default 5,000), then cut streams and close the core. */
  close(graceMs?: number): Promise<void>;
}

/** Entries per PlanChunk when the request says 0; about 0.8 MB a message. */
const DEFAULT_PLAN_CHUNK = 65_536;
/** Largest chunk a client may ask for: ~3.1 MB, under gRPC's 4 MiB default receive limit. */
const MAX_PLAN_CHUNK = 262_144;

/** Aborted when the client cancels or the call ends. */
function callSignal(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
): AbortSignal {
  const ac = new AbortController();
  const abort = (): void =>
    ac.abort(new SadpError('SADP_CANCELLED', 'call cancelled', { status: Status.CANCELLED }));
  call.once('cancelled', abort);
  return ac.signal;
}

/** Writes a plan as chunks, honouring backpressure; stops quietly on cancel. */
async function streamPlan(
  call: grpc.ServerWritableStream<sadp.v1.GetPlanRequest, sadp.v1.PlanChunk>,
  plan: EpochPlan,
  datasetSize: number,
  chunkSize: number,
  signal: AbortSignal,
): Promise<void> {
  const total = plan.ids.length;
  for (let offset = 0; ; offset += chunkSize) {
    if (signal.aborted) return;
    const end = Math.min(total, offset + chunkSize);
    const last = end >= total;
    const chunk = pb.PlanChunk.create({
      epoch: plan.epoch,
      datasetSize,
      pruneRatio: plan.pruneRatio,
      expectedSize: plan.expectedSize,
      selectedCount: total,
      digest: plan.digest,
      offset,
      // Typed subarrays: the encoder only indexes them, no per-id objects.
      ids: plan.ids.subarray(offset, end) as unknown as number[],
      weights: plan.weights.subarray(offset, end) as unknown as number[],
      last,
    });
    const ok = call.write(chunk);
    if (last) break;
    if (!ok && !(await waitForEvent(call, 'drain', { signal, stopEvents: ['cancelled', 'close', 'error'] })))
      return;
  }
  call.end();
}

/** Replaces the state location (as a URL and as a local path) in a message with `<state>`. */
export function stateLocationHider(stateUrl: string): (text: string) => string {
  const forms = [stateUrl];
  if (stateUrl.startsWith('file://')) {
    try {
      forms.push(fileURLToPath(stateUrl));
    } catch {
      // Not a valid file URL: only the URL form can appear.
    }
  }
  // Longest first, so a path inside the URL form is not replaced half-way.
  forms.sort((a, b) => b.length - a.length);
  return (text) => forms.reduce((t, form) => (form.length > 1 ? t.replaceAll(form, '<state>') : t), text);
}

/** Plan streams in progress; close() waits for them after cutting connections. */
type StreamSet = Set<Promise<void>>;

function handlers(
  core: ScorerCore,
  auth: ScorerAuth,
  logger: Logger,
  streams: StreamSet,
): grpc.UntypedServiceImplementation {
  const hide = stateLocationHider(core.stateUrl);
  const fail = (method: string, err: unknown): grpc.ServiceError => {
    const e = toGrpcError(err);
    if (e.code === Status.INTERNAL || e.code === Status.DATA_LOSS || e.code === Status.UNAVAILABLE) {
      logger.error({ method, err }, 'request failed');
    } else {
      logger.debug({ method, code: e.code, details: e.details }, 'request rejected');
    }
    // Callers (trainers, through the loader) learn what failed, never where
    // the scorer keeps its state: the full text is in the log above.
    const details = hide(e.details);
    return Object.assign(new Error(details), {
      code: e.code,
      details,
      metadata: new grpc.Metadata(),
    });
  };
  // The job's token digest, undefined for an unknown or invalid id (auth
  // decides before the call says NOT_FOUND, so ids cannot be probed).
  const jobTokenSha = (jobId: string): string | undefined => {
    try {
      return core.describeJob(jobId).record.tokenSha256;
    } catch {
      return undefined;
    }
  };
  const checkJob = (metadata: grpc.Metadata, jobId: string): void => {
    auth.job(metadata, jobId, jobTokenSha(jobId));
  };
  const unary =
    <Req, Res>(
      method: string,
      authorize: (metadata: grpc.Metadata, req: Req) => void,
      fn: (req: Req, signal: AbortSignal) => Promise<Res> | Res,
    ) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
      const signal = callSignal(call);
      Promise.resolve()
        .then(() => authorize(call.metadata, call.request))
        .then(() => fn(call.request, signal))
        .then(
          (res) => callback(null, res),
          (err: unknown) => callback(fail(method, err)),
        );
    };

  return {
    createJob: unary<sadp.v1.CreateJobRequest, sadp.v1.Job>(
      'CreateJob',
      (md) => auth.admin(md, 'CreateJob'),
      async (req, signal) => jobToWire(await core.createJob(specFromWire(req.spec), signal)),
    ),
    describeJob: unary<sadp.v1.DescribeJobRequest, sadp.v1.Job>(
      'DescribeJob',
      (md, req) => checkJob(md, req.jobId),
      (req) => jobToWire(core.describeJob(req.jobId)),
    ),
    reportScores: unary<sadp.v1.ReportScoresRequest, sadp.v1.ReportScoresResponse>(
      'ReportScores',
      (md, req) => checkJob(md, req.jobId),
      async (req, signal) =>
        pb.ReportScoresResponse.create({
          accepted: await core.reportScores(
            req.jobId,
            { epoch: req.epoch, ids: req.ids, scores: req.scores, losses: req.losses },
            signal,
          ),
        }),
    ),
    getStats: unary<sadp.v1.GetStatsRequest, sadp.v1.JobStats>(
      'GetStats',
      (md, req) => checkJob(md, req.jobId),
      async (req) => statsToWire(await core.getStats(req.jobId, req.epoch)),
    ),
    getPlan: (call: grpc.ServerWritableStream<sadp.v1.GetPlanRequest, sadp.v1.PlanChunk>): void => {
      const signal = callSignal(call);
      const { jobId, epoch } = call.request;
      const run = async (): Promise<void> => {
        checkJob(call.metadata, jobId);
        const requested = call.request.chunkSize;
        if (requested > MAX_PLAN_CHUNK) {
          throw invalidArgument(
            'SADP_INVALID_CHUNK_SIZE',
            `chunk_size ${requested} exceeds the maximum of ${MAX_PLAN_CHUNK} entries`,
          );
        }
        const plan = await core.getPlan(jobId, epoch);
        const size = core.describeJob(jobId).record.datasetSize;
        await streamPlan(call, plan, size, requested === 0 ? DEFAULT_PLAN_CHUNK : requested, signal);
      };
      const done = run().catch((err: unknown) => {
        if (!signal.aborted) call.emit('error', fail('GetPlan', err));
      });
      streams.add(done);
      void done.then(() => streams.delete(done));
    },
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The server's own defaults (the core's are in core.ts, the service's address in config.ts). */
const SCORER_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  maxReceiveMessageBytes: 16 * 1024 * 1024,
  keepaliveTimeMs: 60_000,
} as const;

export async function createScorerServer(options: ScorerServerOptions): Promise<ScorerServer> {
  const d = SCORER_SERVER_DEFAULTS;
  const logger = options.logger ?? silentLogger;
  const auth = createScorerAuth(options.auth);
  const host = options.host ?? d.host;
  const bindPort = options.port ?? d.port;
  let store = options.store;
  if (!store) {
    if (!options.stateUrl) {
      throw invalidArgument('SADP_SCORER_NO_STATE', 'the scorer needs a state location (stateUrl or store)');
    }
    store = openStore(options.stateUrl, { s3: options.s3 });
  }
  const coreOptions: ScorerCoreOptions = {
    store,
    logger,
    maxDatasetSize: options.maxDatasetSize,
    maxQueuedReportBytes: options.maxQueuedReportBytes,
    maxGroupBytes: options.maxGroupBytes,
    planCacheSize: options.planCacheSize,
    planOnLoopMaxExamples: options.planOnLoopMaxExamples,
    compactionConcurrency: options.compactionConcurrency,
  };
  const core = await openScorerCore(coreOptions);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? d.maxReceiveMessageBytes,
    ...keepaliveOptions(options.keepaliveTimeMs ?? d.keepaliveTimeMs),
  });
  const streams: StreamSet = new Set();
  server.addService(ScorerService, handlers(core, auth, logger, streams));
  const health = addStandardServices(server, [SCORER_SERVICE_NAME]);
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(formatHostPort(host, bindPort), serverTlsCredentials(options.tls), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  } catch (err) {
    await core.close();
    throw new SadpError('SADP_BIND_FAILED', `scorer could not listen on ${formatHostPort(host, bindPort)}`, {
      status: Status.UNAVAILABLE,
      cause: err,
    });
  }
  const address = formatHostPort(host, port);
  logger.info(
    { address, state: core.stateUrl, jobs: core.jobIds().length, auth: auth.mode },
    'scorer listening',
  );
  if (auth.mode === 'none' && !isLoopback(host)) {
    logger.warn(
      { address },
      "scorer auth is 'none' on a non-loopback address: anyone who reaches it can create jobs and report scores",
    );
  }

  let closing: Promise<void> | undefined;
  return {
    address,
    port,
    core,
    close(graceMs = 5_000) {
      closing ??= (async () => {
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(SCORER_SERVICE_NAME, 'NOT_SERVING');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            logger.warn({ graceMs }, 'streams still open after the grace period: cancelling them');
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        // Every stream loop ends once its call is done or cancelled.
        await Promise.all([...streams]);
        await core.close();
        logger.info({ address }, 'scorer stopped');
      })();
      return closing;
    },
  };
}
