// Reads a byte range of any ObjectStore into a caller's buffer: the store's
// own lean path when it has one (S3: undici + SigV4), otherwise its stream
// under an idle timer (local files, wrapped stores). Either way the errors
// are SadpErrors: SADP_STORAGE_TIMEOUT when nothing arrived for
// idleTimeoutMs, SADP_STORAGE_UNAVAILABLE for transport trouble (both
// retryable), SADP_OBJECT_CHANGED for a broken ETag pin.
import type { Readable } from 'node:stream';
import { SadpError, Status, isSadpError, type SadpErrorCode } from '../common/errors.js';
import { abortWith, onAbort } from '../common/signals.js';
import type { ObjectStore, ReadIntoOptions } from './object-store.js';
import { changedError, mapStorageError } from './errors.js';

/** Error code for an idle timeout (headers or body); retryable, like SADP_STORAGE_UNAVAILABLE. */
export const STORAGE_TIMEOUT = 'SADP_STORAGE_TIMEOUT' satisfies SadpErrorCode;

export function timeoutError(url: string, options: ReadIntoOptions, cause?: unknown): SadpError {
  return new SadpError(
    STORAGE_TIMEOUT,
    `${url} bytes [${options.start}, ${options.end}): no progress for ${options.idleTimeoutMs} ms`,
    { status: Status.UNAVAILABLE, cause },
  );
}

export function readInto(
  store: ObjectStore,
  key: string,
  dest: Uint8Array,
  destOffset: number,
  options: ReadIntoOptions,
): Promise<number> {
  if (store.readInto) return store.readInto(key, dest, destOffset, options);
  return readIntoViaStream(store, key, `${store.url}/${key}`, dest, destOffset, options);
}

/** The stream path: getStream under an AbortController that an idle timer or the caller's signal aborts. */
export async function readIntoViaStream(
  store: ObjectStore,
  key: string,
  url: string,
  dest: Uint8Array,
  destOffset: number,
  options: ReadIntoOptions,
): Promise<number> {
  const { signal: outer, start, end, ifMatch, idleTimeoutMs } = options;
  outer?.throwIfAborted();
  const controller = new AbortController();
  using _forward = abortWith(controller, outer);
  let idle = false;
  // Covers the wait for headers as well as every gap between body chunks.
  const timer = setTimeout(() => {
    idle = true;
    controller.abort(timeoutError(url, options));
  }, idleTimeoutMs);
  let body: Readable | undefined;
  const destroyBody = (): void => {
    body?.destroy(controller.signal.reason instanceof Error ? controller.signal.reason : undefined);
  };
  let written = 0;
  try {
    try {
      body = await store.getStream(key, { start, end, ifMatch, signal: controller.signal });
    } catch (err) {
      if (idle) throw timeoutError(url, options, err);
      throw err;
    }
    if (controller.signal.aborted) destroyBody();
    using _destroyOnAbort = onAbort(controller.signal, destroyBody);
    timer.refresh();
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        timer.refresh();
        if (chunk.length > dest.length - destOffset - written) {
          throw new SadpError(
            'SADP_STORAGE_BAD_RANGE',
            `${url} bytes [${start}, ${end}): server sent more bytes than the range holds`,
            { status: Status.INTERNAL },
          );
        }
        dest.set(chunk, destOffset + written);
        written += chunk.length;
        options.onBytes?.(chunk.length);
      }
    } catch (err) {
      if (isSadpError(err, 'SADP_STORAGE_BAD_RANGE')) throw err;
      if (idle) throw timeoutError(url, options, err);
      if (outer?.aborted) throw mapStorageError(err, { url, op: 'GET', ifMatch, signal: outer });
      // Any other failure mid-body (reset, premature close, short body) is transport trouble.
      const mapped = mapStorageError(err, { url, op: 'GET', ifMatch });
      if (mapped.code === 'SADP_STORAGE_FAILED') {
        throw new SadpError('SADP_STORAGE_UNAVAILABLE', `GET ${url}: body failed: ${mapped.message}`, {
          status: Status.UNAVAILABLE,
          cause: err,
        });
      }
      throw mapped;
    }
    return written;
  } catch (err) {
    // A pinned read of a range the object no longer holds: it was replaced by a shorter one.
    if (ifMatch !== undefined && isSadpError(err, 'SADP_RANGE_INVALID'))
      throw changedError(url, ifMatch, undefined, err);
    throw err;
  } finally {
    clearTimeout(timer);
    if (body && !body.destroyed) body.destroy();
  }
}
