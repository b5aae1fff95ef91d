// Errors of the loader client: which gRPC statuses a reconnect can fix, and
// the typed error a trainer gets for the ones it cannot.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { SadpError, Status, type SadpErrorCode, type StatusCode } from '../../common/errors.js';

/**
 * Statuses that a reconnect with the same cursor can never fix: the request,
 * the credentials or the job itself is wrong. Everything else (UNAVAILABLE,
 * a reset stream surfacing as INTERNAL, CANCELLED by a draining server, an
 * idle or open timeout) is retried with backoff.
 */
const FATAL = new Set<number>([
  GrpcStatus.INVALID_ARGUMENT,
  GrpcStatus.NOT_FOUND,
  GrpcStatus.ALREADY_EXISTS,
  GrpcStatus.UNAUTHENTICATED,
  GrpcStatus.PERMISSION_DENIED,
  GrpcStatus.OUT_OF_RANGE,
  GrpcStatus.FAILED_PRECONDITION,
  GrpcStatus.UNIMPLEMENTED,
  GrpcStatus.DATA_LOSS,
]);

export function isRetryableStatus(code: number): boolean {
  return !FATAL.has(code);
}

const KNOWN = new Set<number>(Object.values(Status));

/**
 * A call to the loader failed with a status a retry cannot fix (or every
 * retry failed). `grpcCode` is the raw status (any of gRPC's 17), `status`
 * the nearest in the project's closed set, `remoteCode` the server's stable
 * `SADP_...` code when its message carried one.
 */
export class LoaderCallError extends SadpError {
  readonly grpcCode: number;
  readonly remoteCode: string | undefined;
  readonly details: string;

  constructor(code: SadpErrorCode, message: string, grpcCode: number, details: string, cause?: unknown) {
    super(code, message, {
      status: (KNOWN.has(grpcCode) ? grpcCode : Status.INTERNAL) as StatusCode,
      cause,
    });
    this.grpcCode = grpcCode;
    this.details = details;
    this.remoteCode = /^(SADP_[A-Z0-9_]+):/.exec(details)?.[1];
  }
}

/** The status code and details of anything a gRPC call rejected with. */
export function grpcStatusOf(err: unknown): { code: number; details: string } {
  if (err instanceof LoaderCallError) return { code: err.grpcCode, details: err.details };
  if (err instanceof SadpError) return { code: err.status, details: `${err.code}: ${err.message}` };
  if (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number') {
    const e = err as { code: number; details?: unknown; message?: unknown };
    const details = typeof e.details === 'string' ? e.details : String(e.message);
    return { code: e.code, details };
  }
  return { code: GrpcStatus.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

export function statusName(code: number): keyof typeof GrpcStatus | `STATUS_${number}` {
  return (GrpcStatus as unknown as Record<number, keyof typeof GrpcStatus>)[code] ?? `STATUS_${code}`;
}

export function protocolError(message: string): LoaderCallError {
  return new LoaderCallError('SADP_LOADER_PROTOCOL', message, GrpcStatus.INTERNAL, message);
}
