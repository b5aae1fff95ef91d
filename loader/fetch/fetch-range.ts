// One byte range of one object into one buffer, with retries. Every attempt
// runs under an AbortSignal (the caller's, plus an idle timer that fires when
// the body makes no progress: the S3 SDK's requestTimeout does not cover the
// body), and a retry after a partial body asks only for the bytes still
// missing. The body stream is always consumed or destroyed.
import type { Readable } from 'node:stream';
import { cancelledError, sleep } from '../../common/abort.js';
import { SadpError, Status, errorMessage, isSadpError } from '../../common/errors.js';
import { isRetryableStorageError, type ObjectStore } from '../../storage/index.js';
import { backoffDelayMs } from './backoff.js';

export interface RetryConfig {
  maxAttempts: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
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
  /** Bytes of body received (also partial bodies that are retried). */
  received(bytes: number): void;
  /** A failed attempt that will be retried. */
  retry(reason: RetryReason, err: unknown): void;
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

/** Fetches [start, end) of `key` into a new buffer of exactly that length. */
export async function fetchRange(
  target: RangeTarget,
  config: RetryConfig,
  observer: FetchObserver,
  signal: AbortSignal,
): Promise<Buffer> {
  const length = target.end - target.start;
  const buf = Buffer.allocUnsafe(length);
  const progress = { filled: 0 };
  let lastError: unknown;
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw cancelledError(signal, `read of ${target.label}`);
    const from = target.start + progress.filled;
    observer.request({ key: target.key, start: from, end: target.end, attempt });
    let reason: RetryReason;
    try {
      await readOnce(target, from, buf, progress, config.idleTimeoutMs, observer, signal);
      if (progress.filled === length) return buf;
      reason = 'truncated';
      lastError = new SadpError(
        'SADP_STORAGE_TRUNCATED',
        `${target.label} bytes [${from}, ${target.end}): body ended after ${target.start + progress.filled - from} of ${target.end - from} bytes`,
        { status: Status.UNAVAILABLE },
      );
    } catch (err) {
      if (signal.aborted) throw cancelledError(signal, `read of ${target.label}`);
      if (!(err instanceof RetryableAttempt)) throw err;
      reason = err.reason;
      lastError = err.cause;
    }
    if (attempt >= config.maxAttempts) {
      throw new SadpError(
        'SADP_STORAGE_UNAVAILABLE',
        `${target.label} bytes [${target.start}, ${target.end}): gave up after ${attempt} attempts ` +
          `(${progress.filled} of ${length} bytes received): ${errorMessage(lastError)}`,
        { status: Status.UNAVAILABLE, cause: lastError },
      );
    }
    observer.retry(reason, lastError);
    await sleep(
      backoffDelayMs(attempt, config.baseBackoffMs, config.maxBackoffMs, config.random),
      signal,
      `read of ${target.label}`,
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

function changed(target: RangeTarget, cause: unknown): SadpError {
  return new SadpError(
    'SADP_OBJECT_CHANGED',
    `shard ${target.label} changed since it was indexed (expected ETag ${target.etag}); re-index the dataset`,
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
  outer: AbortSignal,
): Promise<void> {
  const controller = new AbortController();
  const forward = (): void => controller.abort(outer.reason);
  outer.addEventListener('abort', forward, { once: true });
  let idle = false;
  // Covers the wait for headers as well as every gap between body chunks.
  const timer = setTimeout(() => {
    idle = true;
    controller.abort(
      new SadpError('SADP_STORAGE_TIMEOUT', `${target.label}: no progress for ${idleTimeoutMs} ms`, {
        status: Status.UNAVAILABLE,
      }),
    );
  }, idleTimeoutMs);
  let body: Readable | undefined;
  const destroyBody = (): void => {
    body?.destroy(controller.signal.reason instanceof Error ? controller.signal.reason : undefined);
  };
  try {
    try {
      body = await target.store.getStream(target.key, {
        start: from,
        end: target.end,
        ifMatch: target.etag,
        signal: controller.signal,
      });
    } catch (err) {
      if (idle) throw new RetryableAttempt('idle-timeout', controller.signal.reason);
      if (isSadpError(err, 'SADP_OBJECT_CHANGED')) throw changed(target, err);
      if (isRetryableStorageError(err)) throw new RetryableAttempt('unavailable', err);
      throw err;
    }
    if (controller.signal.aborted) destroyBody();
    controller.signal.addEventListener('abort', destroyBody, { once: true });
    timer.refresh();
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        timer.refresh();
        const room = buf.length - progress.filled;
        if (chunk.length > room) {
          throw new SadpError(
            'SADP_STORAGE_BAD_RANGE',
            `${target.label} bytes [${from}, ${target.end}): server sent more bytes than the range holds`,
            { status: Status.INTERNAL },
          );
        }
        buf.set(chunk, progress.filled);
        progress.filled += chunk.length;
        observer.received(chunk.length);
      }
    } catch (err) {
      if (isSadpError(err, 'SADP_STORAGE_BAD_RANGE')) throw err;
      // Any failure mid-body (reset, premature close, short body) is transport trouble.
      throw idle
        ? new RetryableAttempt('idle-timeout', controller.signal.reason)
        : new RetryableAttempt('body-error', err);
    } finally {
      controller.signal.removeEventListener('abort', destroyBody);
    }
  } finally {
    clearTimeout(timer);
    outer.removeEventListener('abort', forward);
    if (body && !body.destroyed) body.destroy();
  }
}
