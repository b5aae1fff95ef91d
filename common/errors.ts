// One error type for the whole project. Every failure that can reach a user
// carries a stable string `code` (for logs, metrics and tests), the gRPC status
// it maps to on the wire, a message that says what and where (object key, byte
// offset, example id), and its `cause`.
import { status } from '@grpc/grpc-js';
import { isSadpErrorCode, type SadpErrorCode } from './error-codes.js';

export type { SadpErrorCode } from './error-codes.js';

/** The closed set of gRPC status codes this project returns. */
export const Status = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  OUT_OF_RANGE: status.OUT_OF_RANGE,
  UNAVAILABLE: status.UNAVAILABLE,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  DATA_LOSS: status.DATA_LOSS,
  INTERNAL: status.INTERNAL,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

export interface SadpErrorOptions {
  cause?: unknown;
  /** gRPC status on the wire; INTERNAL when omitted. */
  status?: StatusCode;
}

export class SadpError extends Error {
  override readonly name = 'SadpError';
  /** Stable machine-readable code, e.g. `SADP_TAR_CORRUPT`; common/error-codes.ts has the closed set. */
  readonly code: SadpErrorCode;
  readonly status: StatusCode;

  constructor(code: SadpErrorCode, message: string, options: SadpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? Status.INTERNAL;
  }
}

export function isSadpError(err: unknown, code?: SadpErrorCode): err is SadpError {
  return err instanceof SadpError && (code === undefined || err.code === code);
}

/** Shorthand for the most common case: a bad field in a request. */
export function invalidArgument(code: SadpErrorCode, message: string, cause?: unknown): SadpError {
  return new SadpError(code, message, { status: Status.INVALID_ARGUMENT, cause });
}

/**
 * What a gRPC handler passes to its callback or `emit('error')`: the status
 * and a message prefixed with the stable code so clients in any language can
 * match on it.
 */
export function toGrpcError(err: unknown): { code: StatusCode; details: string; message: string } {
  if (err instanceof SadpError) {
    const details = `${err.code}: ${err.message}`;
    return { code: err.status, details, message: details };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Status.INTERNAL, details: `SADP_INTERNAL: ${message}`, message };
}

/**
 * Splits the details of a gRPC status from a sadp service, `CODE: message` as
 * toGrpcError writes them, back into the stable code and the message, so a
 * caller that wraps it does not repeat the code.
 */
export function splitGrpcDetails(details: string): { code: string | undefined; message: string } {
  const m = /^(SADP_[A-Z0-9_]+): ([\s\S]*)$/.exec(details);
  return m ? { code: m[1], message: m[2]! } : { code: undefined, message: details };
}

/**
 * A failed call to a sadp service as a SadpError: the server's code and status
 * when it sent one (else `fallbackCode`), `what` (the call and the peer) in
 * front of the server's message, and the original as `cause`.
 */
export function fromGrpcError(
  err: unknown,
  what: string,
  fallbackCode: SadpErrorCode = 'SADP_RPC_FAILED',
): SadpError {
  if (err instanceof SadpError) return err;
  const e = err as { code?: unknown; details?: unknown };
  const details = typeof e.details === 'string' ? e.details : errorMessage(err);
  const split = splitGrpcDetails(details);
  // A code this version does not know (a newer peer) stays in the message.
  const code = split.code !== undefined && isSadpErrorCode(split.code) ? split.code : undefined;
  const message = code === undefined ? details : split.message;
  const status = Object.values(Status).includes(e.code as StatusCode)
    ? (e.code as StatusCode)
    : Status.INTERNAL;
  return new SadpError(code ?? fallbackCode, `${what}: ${message}`, { status, cause: err });
}

/** Node's message for a thrown value of unknown type. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
