// One byte range of one object into one buffer, with retries. Every attempt
// runs under the caller's AbortSignal and an idle timeout on headers and
// every gap between body chunks (storage's readInto: undici's timers on the
// lean S3 path, a timer around the stream otherwise), and a retry after a
// partial body asks only for the bytes still missing, written in place.
// Backoff and the retry loop are the shared ones (common/retry).
import { retry } from '../../common/retry.js';
import { SadpError, Status, errorMessage, isSadpError } from '../../common/errors.js';
import { isRetryableStorageError, readInto, STORAGE_TIMEOUT, type ObjectStore } from '../../storage/index.js';

export interface RetryConfig {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  idleTimeoutMs: number;
  /** Jitter source; Math.random unless a test pins it. */
  random: () => number;
}

export interface RangeRequest {
  key: string;
  /** First byte (inclusive). */
  start: number;
  /** Last byte (exclusive). */
  end: number;
  attempt: number;
}

export type RetryReason = 'unavailable' | 'idle-timeout' | 'body-error' | 'truncated';

export interface FetchObserver {
  /** Before every GET. */
  request(r: RangeRequest): void;
  /** Bytes of body one GET attempt received, once it ended (also partial bodies that are retried). */
  received(bytes: number): void;
  /** A failed attempt that will be retried. */
  retry(reason: RetryReason, err: unknown): void;
  /** The first bytes of the range arrived (once per range: the planner's latency estimate). */
  firstByte?(): void;
}

export interface RangeTarget {
  store: ObjectStore;
  key: string;
  /** The object as messages name it, e.g. `s3://bucket/ds/train-000003.tar`. */
  label: string;
  start: number;
  end: number;
  /** The ETag the shard had when it was indexed; every GET is pinned to it. */
  etag: string;
}

/** Fetches [start, end) of `key` into a buffer of exactly that length (from `alloc` when given). */
export async function fetchRange(
  target: RangeTarget,
  config: RetryConfig,
  observer: FetchObserver,
  signal: AbortSignal,
  alloc?: (n: number) => Buffer,
): Promise<Buffer> {
  const length = target.end - target.start;
  const buf = alloc ? alloc(length) : Buffer.allocUnsafe(length);
  const progress = { filled: 0 };
  let attempts = 0;
  try {
    await retry(
      async (attempt) => {
        attempts = attempt;
        const from = target.start + progress.filled;
        observer.request({ key: target.key, start: from, end: target.end, attempt });
        await readOnce(target, from, buf, progress, config.idleTimeoutMs, observer, signal);
        if (progress.filled !== length) {
          throw new RetryableAttempt(
            'truncated',
            new SadpError(
              'SADP_STORAGE_TRUNCATED',
              `${target.label} bytes [${from}, ${target.end}): body ended after ${target.start + progress.filled - from} of ${target.end - from} bytes`,
              { status: Status.UNAVAILABLE },
            ),
          );
        }
      },
      {
        attempts: config.maxAttempts,
        baseDelayMs: config.baseDelayMs,
        maxDelayMs: config.maxDelayMs,
        jitter: 'full',
        random: config.random,
        classify: (err) => err instanceof RetryableAttempt,
        signal,
        what: `read of ${target.label}`,
        onRetry: (err) => {
          const attempt = err as RetryableAttempt;
          observer.retry(attempt.reason, attempt.cause);
        },
      },
    );
    return buf;
  } catch (err) {
    if (!(err instanceof RetryableAttempt)) throw err;
    throw new SadpError(
      'SADP_STORAGE_UNAVAILABLE',
      `${target.label} bytes [${target.start}, ${target.end}): gave up after ${attempts} attempts ` +
        `(${progress.filled} of ${length} bytes received): ${errorMessage(err.cause)}`,
      { status: Status.UNAVAILABLE, cause: err.cause },
    );
  }
}

/** A failed attempt worth retrying; `cause` is what went wrong. */
class RetryableAttempt extends Error {
  override readonly name = 'RetryableAttempt';
  readonly reason: RetryReason;
  constructor(reason: RetryReason, cause: unknown) {
    super(errorMessage(cause), { cause });
    this.reason = reason;
  }
}

function changed(target: RangeTarget, from: number, cause: unknown): SadpError {
  return new SadpError(
    'SADP_OBJECT_CHANGED',
    `shard ${target.label} bytes [${from}, ${target.end}) changed since it was indexed ` +
      `(expected ETag ${target.etag}); re-index the dataset`,
    { status: Status.FAILED_PRECONDITION, cause },
  );
}

async function readOnce(
  target: RangeTarget,
  from: number,
  buf: Buffer,
  progress: { filled: number },
  idleTimeoutMs: number,
  observer: FetchObserver,
  signal: AbortSignal,
): Promise<void> {
  const before = progress.filled;
  try {
    await readInto(target.store, target.key, buf, progress.filled, {
      start: from,
      end: target.end,
      ifMatch: target.etag,
      signal,
      idleTimeoutMs,
      // Per chunk only the resume point moves; counters and metrics hear once per attempt.
      onBytes: (n) => {
        if (progress.filled === 0 && n > 0) observer.firstByte?.();
        progress.filled += n;
      },
    });
  } catch (err) {
    if (isSadpError(err, STORAGE_TIMEOUT)) throw new RetryableAttempt('idle-timeout', err);
    if (isSadpError(err, 'SADP_OBJECT_CHANGED')) throw changed(target, from, err);
    if (isRetryableStorageError(err)) {
      throw new RetryableAttempt(progress.filled > before ? 'body-error' : 'unavailable', err);
    }
    throw err;
  } finally {
    if (progress.filled > before) observer.received(progress.filled - before);
  }
}
