// The trainer's handle on a loader service: one gRPC channel, epochs as
// reconnecting async iterables, and DescribeEpoch with retries.
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import { retry } from '../../common/retry.js';
import { onAbort } from '../../common/signals.js';
import { LoaderClient as GrpcLoaderClient } from '../../proto/index.js';
import { toEpochInfo, type EpochInfo } from './batch.js';
import { openEpochStream, type EpochRequest, type EpochStream } from './epoch-stream.js';
import { isSadpError } from '../../common/errors.js';
import { LoaderCallError, grpcStatusOf, isRetryableStatus, statusName } from './errors.js';
import { resolveClientOptions, type LoaderClientOptions } from './options.js';

interface EpochInfoRequest {
  job: string;
  epoch: number;
  worldSize: number;
  batchSize: number;
  signal?: AbortSignal;
}

export interface LoaderClient {
  /** Opens one rank's epoch; iterate it once. See EpochStream for cursor and scores. */
  epoch(request: EpochRequest): EpochStream;
  /** The shape of an epoch (DescribeEpoch), retried like a stream open. */
  epochInfo(request: EpochInfoRequest): Promise<EpochInfo>;
  /** Closes the channel; open streams fail with CANCELLED. */
  close(): void;
  readonly address: string;
}

export function createLoaderClient(options: LoaderClientOptions): LoaderClient {
  const resolved = resolveClientOptions(options);
  const grpcClient = new GrpcLoaderClient(resolved.address, resolved.credentials, resolved.channelOptions);

  const describeOnce = (req: EpochInfoRequest): Promise<EpochInfo> =>
    new Promise((resolve, reject) => {
      const metadata = new Metadata();
      if (resolved.token) metadata.set('authorization', `Bearer ${resolved.token}`);
      const call = grpcClient.describeEpoch(
        { jobId: req.job, epoch: req.epoch, worldSize: req.worldSize, batchSize: req.batchSize },
        metadata,
        { deadline: Date.now() + resolved.deadlineMs },
        (err, res) => {
          stop();
          if (err) reject(err);
          else if (!res) reject(new Error('DescribeEpoch returned no message'));
          else resolve(toEpochInfo(res));
        },
      );
      const stop = onAbort(req.signal, () => call.cancel());
    });

  return {
    address: resolved.address,
    epoch: (request) => openEpochStream(grpcClient, resolved, request),
    async epochInfo(req) {
      const what = `DescribeEpoch ${req.epoch} of job ${req.job}`;
      let attempt = 0;
      try {
        return await retry(
          (n) => {
            attempt = n;
            return describeOnce(req);
          },
          {
            attempts: resolved.maxAttempts,
            baseDelayMs: resolved.baseDelayMs,
            maxDelayMs: resolved.maxDelayMs,
            jitter: 'equal',
            classify: (err) => isRetryableStatus(grpcStatusOf(err).code),
            signal: req.signal,
            what,
          },
        );
      } catch (err) {
        if (isSadpError(err, 'SADP_CANCELLED') && req.signal?.aborted) throw err;
        const { code, details } = grpcStatusOf(err);
        const exhausted = isRetryableStatus(code);
        throw new LoaderCallError(
          exhausted ? 'SADP_LOADER_RETRIES_EXHAUSTED' : `SADP_LOADER_${statusName(code)}`,
          `${what}: loader at ${resolved.address} answered ${statusName(code)} (attempt ${attempt}): ${details}`,
          exhausted ? GrpcStatus.UNAVAILABLE : code,
          details,
          err,
        );
      }
    },
    close: () => grpcClient.close(),
  };
}
