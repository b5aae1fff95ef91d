// Byte-range arithmetic shared by both stores: `start` inclusive, `end`
// exclusive, `end` clamped to the object's size like S3 does.
import { SadpError, Status } from '../common/errors.js';
import type { ReadOptions } from './object-store.js';

/** Whether `start` and `end` are a byte range checkRangeArgs accepts. */
export function rangeArgsValid(options: ReadOptions): boolean {
  const { start, end } = options;
  return !(
    (start !== undefined && (!Number.isSafeInteger(start) || start < 0)) ||
    (end !== undefined && (!Number.isSafeInteger(end) || end < (start ?? 0)))
  );
}

export function checkRangeArgs(options: ReadOptions, url: string): void {
  const { start, end } = options;
  if (!rangeArgsValid(options)) {
    throw new SadpError('SADP_RANGE_INVALID', `${url}: invalid byte range [${start ?? 0}, ${end ?? 'end'})`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
}

/** Resolves a requested range against the object's size. */
export function resolveRange(
  options: ReadOptions,
  size: number,
  unsatisfiable: () => Error,
): { start: number; end: number } {
  const start = options.start ?? 0;
  // An explicitly empty range is fine anywhere up to the end; otherwise S3
  // answers 416 for a range starting at or after the end of a non-empty object.
  if (options.end === start) {
    if (start > size) throw unsatisfiable();
    return { start, end: start };
  }
  if (start > size || (start === size && start > 0)) throw unsatisfiable();
  return { start, end: Math.min(options.end ?? size, size) };
}
