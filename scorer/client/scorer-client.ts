// The scorer's own client, used by every caller (the loader, the CLI, tests
// and benchmarks): one channel, a deadline per call, cancellation by
// AbortSignal, the read calls retried under one policy, plans reassembled
// and checked against their digest, failures as SadpErrors naming the job.
import * as grpc from '@grpc/grpc-js';
import { retry, type RetryPolicy } from '../../common/retry.js';
import { cancelledError, onAbort } from '../../common/signals.js';
import { keepaliveOptions } from '../../common/keepalive.js';
import { clientTlsCredentials, type TlsOptions } from '../../common/tls.js';
import { pb, ScorerClient as GrpcScorerClient, type sadp } from '../../proto/index.js';
import type { JobSpecInput } from '../service/spec.js';
import { specToWire } from '../wire.js';
import { isRetryableScorerError, scorerError } from './errors.js';
import { readPlanStream, type Plan } from './plan-stream.js';

export /** @public part of the client's API */
interface ScorerClientOptions {
  /** `host:port` of the scorer. */
  address: string;
  /**
   * TLS to the scorer: verified with `ca` (unset: the system roots), with
   * `cert` + `key` for mutual TLS. Default plaintext (loopback or a
   * mesh-encrypted network).
   */
  tls?: TlsOptions;
  /** Keepalive ping interval; unset: gRPC's default (none). */
  keepaliveTimeMs?: number;
  /** More channel options (e.g. message size limits). */
  channelOptions?: grpc.ChannelOptions;
  /** Call interceptors, e.g. the bearer token of an authenticated scorer (common/bearer.ts). */
  interceptors?: grpc.Interceptor[];
  /** Deadline of each call. Default 30,000 ms: a plan of ImageNet-1k is ~10 MB of chunks. */
  callTimeoutMs?: number;
  /**
   * Retries of reads (DescribeJob, GetPlan, GetStats) and CreateJob (idempotent
   * for an identical spec). Default 4 attempts, 100 ms base, 2 s cap, full
   * jitter. ReportScores is sent once: its caller owns ordering and retries.
   */
  retry?: Partial<RetryPolicy>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ScoreReport {
  jobId: string;
  epoch: number;
  ids: number[];
  scores: number[];
  losses: number[];
}

export interface ScorerClient {
  readonly address: string;
  createJob(spec: JobSpecInput, options?: CallOptions): Promise<sadp.v1.Job>;
  describeJob(jobId: string, options?: CallOptions): Promise<sadp.v1.Job>;
  /** The epoch's plan, reassembled from its chunks and checked against its digest. */
  getPlan(jobId: string, epoch: number, options?: CallOptions & { chunkSize?: number }): Promise<Plan>;
  /** One ReportScores call; resolves to the entries the scorer accepted. */
  reportScores(report: ScoreReport, options?: CallOptions): Promise<number>;
  getStats(jobId: string, epoch: number, options?: CallOptions): Promise<sadp.v1.JobStats>;
  close(): void;
}

/** The client's defaults, stated once (the loader's scorer channel and the CLI take them from here). */
export const SCORER_CLIENT_DEFAULTS = {
  callTimeoutMs: 30_000,
  retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 2_000, jitter: 'full' },
} as const satisfies { callTimeoutMs: number; retry: RetryPolicy };

interface ResolvedScorerClientOptions {
  callTimeoutMs: number;
  policy: RetryPolicy;
  channelOptions: grpc.ChannelOptions;
}

function resolveScorerClientOptions(options: ScorerClientOptions): ResolvedScorerClientOptions {
  const channelOptions: grpc.ChannelOptions = {
    ...options.channelOptions,
    ...(options.keepaliveTimeMs !== undefined ? keepaliveOptions(options.keepaliveTimeMs) : {}),
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  };
  return {
    callTimeoutMs: options.callTimeoutMs ?? SCORER_CLIENT_DEFAULTS.callTimeoutMs,
    policy: { ...SCORER_CLIENT_DEFAULTS.retry, ...options.retry },
    channelOptions,
  };
}

export function createScorerClient(options: ScorerClientOptions): ScorerClient {
  const { callTimeoutMs, policy, channelOptions } = resolveScorerClientOptions(options);
  const client = new GrpcScorerClient(options.address, clientTlsCredentials(options.tls), channelOptions);
  const deadline = (): Date => new Date(Date.now() + callTimeoutMs);

  function unary<Res>(
    start: (opts: Partial<grpc.CallOptions>, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (signal?.aborted) {
        reject(cancelledError(signal, what));
        return;
      }
      let stop = (): void => undefined;
      const call = start({ deadline: deadline() }, (err, res) => {
        stop();
        if (signal?.aborted) reject(cancelledError(signal, what));
        else if (err || res === undefined) reject(err ?? new Error('empty response'));
        else resolve(res);
      });
      stop = onAbort(signal, () => call.cancel());
    });
  }

  /** `attempt` retried under the policy; the final failure mapped onto a SadpError naming `what`. */
  const retried = <T>(what: string, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> =>
    retry(attempt, { ...policy, classify: isRetryableScorerError, signal, what }).catch((err: unknown) => {
      throw scorerError(err, what);
    });

  async function fetchPlan(
    jobId: string,
    epoch: number,
    chunkSize: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<Plan> {
    if (signal?.aborted) throw cancelledError(signal, what);
    const call = client.getPlan(pb.GetPlanRequest.create({ jobId, epoch, chunkSize }), new grpc.Metadata(), {
      deadline: deadline(),
    });
    const stop = onAbort(signal, () => call.cancel());
    try {
      const plan = await readPlanStream(call, epoch, what);
      if (signal?.aborted) throw cancelledError(signal, what);
      return plan;
    } catch (err) {
      if (signal?.aborted) throw cancelledError(signal, what);
      throw err;
    } finally {
      stop();
      call.cancel(); // a no-op once the stream ended; stops a stream abandoned on a corrupt chunk
    }
  }

  return {
    address: options.address,
    createJob(spec, { signal } = {}) {
      const request = pb.CreateJobRequest.create({ spec: specToWire(spec) });
      const what = `create job ${spec.jobId}`;
      return retried(what, signal, () =>
        unary<sadp.v1.Job>(
          (opts, cb) => client.createJob(request, new grpc.Metadata(), opts, cb),
          signal,
          what,
        ),
      );
    },
    describeJob(jobId, { signal } = {}) {
      const what = `describe job ${jobId}`;
      return retried(what, signal, () =>
        unary<sadp.v1.Job>(
          (opts, cb) =>
            client.describeJob(pb.DescribeJobRequest.create({ jobId }), new grpc.Metadata(), opts, cb),
          signal,
          what,
        ),
      );
    },
    getPlan(jobId, epoch, { signal, chunkSize = 0 } = {}) {
      const what = `plan of job ${jobId} epoch ${epoch}`;
      return retried(what, signal, () => fetchPlan(jobId, epoch, chunkSize, signal, what));
    },
    async reportScores(report, { signal } = {}) {
      const res = await unary<sadp.v1.ReportScoresResponse>(
        (opts, cb) =>
          client.reportScores(pb.ReportScoresRequest.create(report), new grpc.Metadata(), opts, cb),
        signal,
        `score report of job ${report.jobId}`,
      );
      return res.accepted;
    },
    getStats(jobId, epoch, { signal } = {}) {
      const what = `stats of job ${jobId} epoch ${epoch}`;
      return retried(what, signal, () =>
        unary<sadp.v1.JobStats>(
          (opts, cb) =>
            client.getStats(pb.GetStatsRequest.create({ jobId, epoch }), new grpc.Metadata(), opts, cb),
          signal,
          what,
        ),
      );
    },
    close: () => client.close(),
  };
}
