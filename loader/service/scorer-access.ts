// The loader's calls to the scorer service (gRPC only): job descriptions,
// plans (reassembled from chunks and checked against their digest) and score
// reports, with deadlines, retries of transient failures, and scorer errors
// mapped onto SadpErrors that name the job and epoch.
import * as grpc from '@grpc/grpc-js';
import { cancelledError, sleep } from '../../common/abort.js';
import { SadpError, Status, splitGrpcDetails, type StatusCode } from '../../common/errors.js';
import { pb, type ScorerClient, type sadp } from '../../proto/index.js';
import { planDigest } from '../../scorer/index.js';
import { backoffDelayMs } from '../fetch/backoff.js';

export interface Plan {
  epoch: number;
  datasetSize: number;
  pruneRatio: number;
  expectedSize: number;
  digest: string;
  /** Selected ids, ascending. */
  ids: Uint32Array;
  /** weights[i] belongs to ids[i]. */
  weights: Float64Array;
}

const RETRYABLE = new Set<number>([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.ABORTED,
  grpc.status.INTERNAL,
  grpc.status.UNKNOWN,
]);

export function isRetryableScorerError(err: unknown): boolean {
  if (err instanceof SadpError) return err.code === 'SADP_SCORER_UNAVAILABLE';
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' && RETRYABLE.has(code);
}

/** Maps a scorer ServiceError onto a SadpError saying what was asked. */
export function scorerError(err: unknown, what: string): SadpError {
  if (err instanceof SadpError) return err;
  const e = err as Partial<grpc.ServiceError>;
  // The scorer's details start with its code; drop it so it is not repeated.
  const details = splitGrpcDetails(e.details ?? (err instanceof Error ? err.message : String(err))).message;
  const code = e.code;
  if (code === grpc.status.NOT_FOUND) {
    return new SadpError('SADP_JOB_NOT_FOUND', `${what}: ${details}`, {
      status: Status.NOT_FOUND,
      cause: err,
    });
  }
  if (code !== undefined && RETRYABLE.has(code)) {
    return new SadpError('SADP_SCORER_UNAVAILABLE', `${what}: scorer unavailable (${details})`, {
      status: Status.UNAVAILABLE,
      cause: err,
    });
  }
  const passthrough: readonly number[] = [
    Status.INVALID_ARGUMENT,
    Status.FAILED_PRECONDITION,
    Status.OUT_OF_RANGE,
    Status.PERMISSION_DENIED,
    Status.UNAUTHENTICATED,
    Status.ALREADY_EXISTS,
    Status.DATA_LOSS,
  ];
  const status = code !== undefined && passthrough.includes(code) ? (code as StatusCode) : Status.INTERNAL;
  return new SadpError('SADP_SCORER_ERROR', `${what}: ${details}`, { status, cause: err });
}

export interface RetryOptions {
  attempts: number;
  baseMs: number;
  maxMs: number;
  signal?: AbortSignal;
  /** What is being asked, for the SADP_CANCELLED message. */
  what: string;
}

export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (options.signal?.aborted) throw cancelledError(options.signal, options.what);
      if (attempt + 1 >= options.attempts || !isRetryableScorerError(err)) throw err;
      await sleep(backoffDelayMs(attempt + 1, options.baseMs, options.maxMs), options.signal, options.what);
    }
  }
}

export interface ScorerAccess {
  describeJob(jobId: string, signal?: AbortSignal): Promise<sadp.v1.Job>;
  getPlan(jobId: string, epoch: number, signal?: AbortSignal): Promise<Plan>;
  /** One ReportScores call (no retry: the forwarder owns retries and ordering). */
  reportScores(request: sadp.v1.IReportScoresRequest, signal?: AbortSignal): Promise<number>;
}

const READ_RETRY = { attempts: 4, baseMs: 100, maxMs: 2_000 };

export function createScorerAccess(client: ScorerClient, callTimeoutMs: number): ScorerAccess {
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
      const onAbort = (): void => call.cancel();
      const call = start({ deadline: deadline() }, (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) reject(cancelledError(signal, what));
        else if (err || res === undefined) reject(err ?? new Error('empty response'));
        else resolve(res);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  return {
    describeJob(jobId, signal) {
      const what = `describe job ${jobId}`;
      return withRetry(
        () =>
          unary<sadp.v1.Job>(
            (opts, cb) =>
              client.describeJob(pb.DescribeJobRequest.create({ jobId }), new grpc.Metadata(), opts, cb),
            signal,
            what,
          ),
        { ...READ_RETRY, signal, what },
      ).catch((err: unknown) => {
        throw scorerError(err, what);
      });
    },

    getPlan(jobId, epoch, signal) {
      const what = `plan of job ${jobId} epoch ${epoch}`;
      return withRetry(() => fetchPlan(client, jobId, epoch, deadline(), signal), {
        ...READ_RETRY,
        signal,
        what,
      }).catch((err: unknown) => {
        throw scorerError(err, what);
      });
    },

    async reportScores(request, signal) {
      const res = await unary<sadp.v1.ReportScoresResponse>(
        (opts, cb) =>
          client.reportScores(pb.ReportScoresRequest.create(request), new grpc.Metadata(), opts, cb),
        signal,
        `score report of job ${String(request.jobId)}`,
      );
      return res.accepted;
    },
  };
}

async function fetchPlan(
  client: ScorerClient,
  jobId: string,
  epoch: number,
  deadline: Date,
  signal: AbortSignal | undefined,
): Promise<Plan> {
  const what = `plan of job ${jobId} epoch ${epoch}`;
  if (signal?.aborted) throw cancelledError(signal, what);
  const call = client.getPlan(pb.GetPlanRequest.create({ jobId, epoch }), new grpc.Metadata(), { deadline });
  const onAbort = (): void => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  const corrupt = (msg: string): SadpError =>
    new SadpError('SADP_PLAN_CORRUPT', `${what}: ${msg}`, { status: Status.DATA_LOSS });
  let plan: Plan | undefined;
  let filled = 0;
  let sawLast = false;
  try {
    for await (const raw of call) {
      const chunk = raw as sadp.v1.PlanChunk;
      if (sawLast) throw corrupt('chunk after the last one');
      if (!plan) {
        plan = {
          epoch: chunk.epoch,
          datasetSize: chunk.datasetSize,
          pruneRatio: chunk.pruneRatio,
          expectedSize: chunk.expectedSize,
          digest: chunk.digest,
          ids: new Uint32Array(chunk.selectedCount),
          weights: new Float64Array(chunk.selectedCount),
        };
        if (chunk.epoch !== epoch) throw corrupt(`scorer answered with epoch ${chunk.epoch}`);
      }
      if (chunk.digest !== plan.digest || chunk.selectedCount !== plan.ids.length) {
        throw corrupt(`chunk at offset ${chunk.offset} disagrees with the first chunk's summary`);
      }
      if (chunk.offset !== filled) throw corrupt(`chunk offset ${chunk.offset}, expected ${filled}`);
      if (chunk.ids.length !== chunk.weights.length || filled + chunk.ids.length > plan.ids.length) {
        throw corrupt(
          `chunk at offset ${chunk.offset} has ${chunk.ids.length} ids and ${chunk.weights.length} weights`,
        );
      }
      for (let i = 0; i < chunk.ids.length; i++) {
        const id = chunk.ids[i] as number;
        if (id >= plan.datasetSize || (filled > 0 && id <= (plan.ids[filled - 1] as number))) {
          throw corrupt(`id ${id} at position ${filled} is out of order or out of range`);
        }
        plan.ids[filled] = id;
        plan.weights[filled] = chunk.weights[i] as number;
        filled++;
      }
      sawLast = chunk.last;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) throw cancelledError(signal, what);
  if (!plan || !sawLast) throw corrupt('stream ended before the last chunk');
  if (filled !== plan.ids.length) throw corrupt(`got ${filled} of ${plan.ids.length} ids`);
  const digest = planDigest(plan.ids, plan.weights);
  if (digest !== plan.digest)
    throw corrupt(`digest ${digest} of the reassembled plan != announced ${plan.digest}`);
  return plan;
}
