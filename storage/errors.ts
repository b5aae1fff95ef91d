// Maps every storage failure (AWS SDK v3 service errors, socket errors,
// aborts, local fs errors) onto a small closed set of SadpError codes, so
// callers decide what to retry from `code` alone. Messages name the object URL
// and never include credentials: they are built here from the URL and the
// SDK's error name/status only, and the endpoint is reduced to its origin.
import { SadpError, Status } from '../common/errors.js';

export const StorageErrorCode = {
  NOT_FOUND: 'SADP_OBJECT_NOT_FOUND',
  CHANGED: 'SADP_OBJECT_CHANGED',
  UNAVAILABLE: 'SADP_STORAGE_UNAVAILABLE',
  CANCELLED: 'SADP_CANCELLED',
  DENIED: 'SADP_STORAGE_DENIED',
  RANGE: 'SADP_RANGE_INVALID',
  INVALID_KEY: 'SADP_INVALID_KEY',
  INVALID_URL: 'SADP_INVALID_URL',
  FAILED: 'SADP_STORAGE_FAILED',
  NO_CREDENTIALS: 'SADP_STORAGE_NO_CREDENTIALS',
} as const;

/** What the mapped error says about where it happened. */
export interface ErrorContext {
  /** Full object URL, e.g. `s3://bucket/prefix/key`. */
  url: string;
  /** Operation, e.g. `GET`, `PUT`, `HEAD`. */
  op: string;
  /** The ETag the caller pinned, if any. */
  ifMatch?: string;
  signal?: AbortSignal;
  /** Where the request went (origin only, or a description of the default), for messages. */
  endpoint?: string;
}

export function notFoundError(url: string, cause?: unknown): SadpError {
  return new SadpError(StorageErrorCode.NOT_FOUND, `${url}: object not found`, {
    status: Status.NOT_FOUND,
    cause,
  });
}

export function changedError(url: string, expected: string, actual?: string, cause?: unknown): SadpError {
  const now = actual === undefined ? '' : ` (now "${actual}")`;
  return new SadpError(
    StorageErrorCode.CHANGED,
    `${url}: object changed since it was indexed: expected ETag "${expected}"${now}`,
    { status: Status.FAILED_PRECONDITION, cause },
  );
}

export function cancelledError(url: string, op: string, cause?: unknown): SadpError {
  return new SadpError(StorageErrorCode.CANCELLED, `${op} ${url}: cancelled`, {
    status: Status.CANCELLED,
    cause,
  });
}

export function unavailableError(url: string, op: string, why: string, cause?: unknown): SadpError {
  return new SadpError(StorageErrorCode.UNAVAILABLE, `${op} ${url}: storage unavailable: ${why}`, {
    status: Status.UNAVAILABLE,
    cause,
  });
}

export function rangeError(url: string, start: number, end: number | undefined, size?: number): SadpError {
  const sz = size === undefined ? '' : ` of a ${size}-byte object`;
  return new SadpError(
    StorageErrorCode.RANGE,
    `${url}: byte range [${start}, ${end ?? 'end'}) is not satisfiable${sz}`,
    { status: Status.OUT_OF_RANGE },
  );
}

const RETRYABLE_NET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const THROTTLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequests',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'NetworkingError',
]);

const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket', 'ENOENT']);

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown; extendedRequestId?: unknown };
  $fault?: unknown;
}

function shape(err: unknown): ErrorShape {
  return typeof err === 'object' && err !== null ? err : {};
}

function httpStatus(err: unknown): number | undefined {
  const code = shape(err).$metadata?.httpStatusCode;
  return typeof code === 'number' ? code : undefined;
}

function isAbort(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  const { name, code } = shape(err);
  return name === 'AbortError' || code === 'ABORT_ERR';
}

/** A short, credential-free description of a low-level error. */
function describe(err: unknown): string {
  const { name, code } = shape(err);
  const status = httpStatus(err);
  const parts: string[] = [];
  if (typeof name === 'string' && name !== 'Error') parts.push(name);
  if (typeof code === 'string' && code !== name) parts.push(code);
  if (status !== undefined) parts.push(`HTTP ${status}`);
  if (parts.length === 0) {
    // Socket errors carry useful messages ("socket hang up", "aborted"); SDK
    // service errors were handled above by name, so this never echoes a
    // server-supplied body.
    const message = shape(err).message;
    parts.push(typeof message === 'string' ? message.slice(0, 200) : String(err).slice(0, 200));
  }
  return parts.join(' ');
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN']);

/** `cannot resolve host h` for a DNS failure, else undefined. */
function dnsFailure(err: unknown): string | undefined {
  const { code } = shape(err);
  if (typeof code !== 'string' || !DNS_CODES.has(code)) return undefined;
  const hostname = (err as { hostname?: unknown }).hostname;
  return `${code}: cannot resolve host${typeof hostname === 'string' ? ` ${hostname}` : ''}`;
}

function looksLikeSocketFailure(err: unknown): boolean {
  const { code, message } = shape(err);
  if (typeof code === 'string' && RETRYABLE_NET_CODES.has(code)) return true;
  if (typeof message !== 'string') return false;
  return /socket hang up|aborted|premature close|ECONNRESET|EPIPE|other side closed|timed? ?out/i.test(
    message,
  );
}

/**
 * An SDK service error reduced to name, code, HTTP status and request ids.
 * The original carries every field of the server's XML error body (s3rver,
 * for one, echoes the access key id and the string it signed) and the raw
 * response; none of that may reach a log through `cause`.
 */
function safeCause(err: unknown): unknown {
  const meta = shape(err).$metadata;
  // Socket-level errors also get $metadata, but no HTTP status: keep those.
  if (typeof meta?.httpStatusCode !== 'number') return err;
  const { name, message, code } = shape(err);
  const clean = new Error(typeof message === 'string' ? message.slice(0, 300) : String(name));
  clean.name = typeof name === 'string' ? name : 'S3ServiceError';
  Object.assign(clean, {
    ...(typeof code === 'string' ? { code } : {}),
    $metadata: {
      httpStatusCode: meta.httpStatusCode,
      requestId: meta.requestId,
      extendedRequestId: meta.extendedRequestId,
    },
  });
  return clean;
}

/** Maps any error raised by a storage call onto a SadpError with a stable code. */
export function mapStorageError(err: unknown, ctx: ErrorContext): SadpError {
  if (err instanceof SadpError) return err;
  return classify(err, ctx);
}

function classify(original: unknown, ctx: ErrorContext): SadpError {
  const err = safeCause(original);
  if (isAbort(err, ctx.signal)) return cancelledError(ctx.url, ctx.op, err);
  const { name, code } = shape(err);
  const status = httpStatus(err);
  const at = ctx.endpoint === undefined ? '' : ` (S3 endpoint ${ctx.endpoint})`;
  if (name === 'CredentialsProviderError') {
    // Not a storage fault: nothing was sent. Say what was looked for.
    return new SadpError(
      StorageErrorCode.NO_CREDENTIALS,
      `${ctx.op} ${ctx.url}: no S3 credentials${at}: none configured and the AWS default chain ` +
        '(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, instance metadata) found none',
      { status: Status.UNAUTHENTICATED, cause: err },
    );
  }
  const dns = dnsFailure(err);
  if (dns !== undefined) return unavailableError(ctx.url, ctx.op, `${dns}${at}`, err);
  if (
    status === 404 ||
    (typeof name === 'string' && NOT_FOUND_NAMES.has(name)) ||
    (typeof code === 'string' && NOT_FOUND_NAMES.has(code))
  ) {
    return notFoundError(ctx.url, err);
  }
  if (status === 412 || name === 'PreconditionFailed') {
    return changedError(ctx.url, ctx.ifMatch ?? '?', undefined, err);
  }
  if (status === 416 || name === 'InvalidRange') {
    return new SadpError(StorageErrorCode.RANGE, `${ctx.op} ${ctx.url}: byte range not satisfiable`, {
      status: Status.OUT_OF_RANGE,
      cause: err,
    });
  }
  if (
    status === 429 ||
    (status !== undefined && status >= 500) ||
    (typeof name === 'string' && THROTTLE_NAMES.has(name)) ||
    looksLikeSocketFailure(err)
  ) {
    return unavailableError(ctx.url, ctx.op, describe(err), err);
  }
  if (
    status === 403 ||
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch'
  ) {
    return new SadpError(
      StorageErrorCode.DENIED,
      `${ctx.op} ${ctx.url}: access denied (${describe(err)})${at}`,
      {
        status: Status.PERMISSION_DENIED,
        cause: err,
      },
    );
  }
  return new SadpError(StorageErrorCode.FAILED, `${ctx.op} ${ctx.url}: ${describe(err)}`, {
    status: Status.INTERNAL,
    cause: err,
  });
}

/**
 * True for failures worth retrying (throttling, 5xx, resets, timeouts): the
 * SADP_STORAGE_UNAVAILABLE code, or a raw socket error not yet mapped.
 */
export function isRetryableStorageError(err: unknown): boolean {
  if (err instanceof SadpError) return err.code === StorageErrorCode.UNAVAILABLE;
  if (isAbort(err)) return false;
  const status = httpStatus(err);
  if (status === 429 || (status !== undefined && status >= 500)) return true;
  const { name } = shape(err);
  return (typeof name === 'string' && THROTTLE_NAMES.has(name)) || looksLikeSocketFailure(err);
}
