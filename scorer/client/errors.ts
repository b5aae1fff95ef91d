// The scorer client's error domain: which gRPC statuses a retry can fix, and
// scorer failures mapped onto SadpErrors that say what was asked.
import * as grpc from '@grpc/grpc-js';
import { SadpError, Status, type StatusCode } from '../../common/errors.js';
import type { RetryClassifier } from '../../common/retry.js';

const RETRYABLE = new Set<number>([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.ABORTED,
  grpc.status.INTERNAL,
  grpc.status.UNKNOWN,
]);

/** Transient scorer failures: a raw retryable status, or one already mapped to SADP_SCORER_UNAVAILABLE. */
export const isRetryableScorerError: RetryClassifier = (err) => {
  if (err instanceof SadpError) return err.code === 'SADP_SCORER_UNAVAILABLE';
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' && RETRYABLE.has(code);
};

const PASSTHROUGH: readonly number[] = [
  Status.INVALID_ARGUMENT,
  Status.FAILED_PRECONDITION,
  Status.OUT_OF_RANGE,
  Status.PERMISSION_DENIED,
  Status.UNAUTHENTICATED,
  Status.ALREADY_EXISTS,
  Status.DATA_LOSS,
];

/** Maps a scorer ServiceError onto a SadpError saying what was asked. */
export function scorerError(err: unknown, what: string): SadpError {
  if (err instanceof SadpError) return err;
  const e = err as Partial<grpc.ServiceError>;
  const details = e.details ?? (err instanceof Error ? err.message : String(err));
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
  const status = code !== undefined && PASSTHROUGH.includes(code) ? (code as StatusCode) : Status.INTERNAL;
  return new SadpError('SADP_SCORER_ERROR', `${what}: ${details}`, { status, cause: err });
}
