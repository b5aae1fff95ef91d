// Object keys and store URLs. Keys are `/`-separated, relative to a store's
// root, and may not escape it (`..`), so a key from a manifest can never
// address a file outside the dataset directory.
import { SadpError, Status } from '../common/errors.js';
import { StorageErrorCode } from './errors.js';

export function checkKey(key: string, root: string): string {
  if (
    key.length === 0 ||
    key.startsWith('/') ||
    key.includes('\\') ||
    key.includes('\0') ||
    key.split('/').some((part) => part === '..' || part === '.')
  ) {
    throw new SadpError(
      StorageErrorCode.INVALID_KEY,
      `invalid object key ${JSON.stringify(key)} under ${root}`,
      {
        status: Status.INVALID_ARGUMENT,
      },
    );
  }
  return key;
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m?.[1] || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw new SadpError(StorageErrorCode.INVALID_URL, `not an s3://bucket/prefix URL: ${url}`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  return { bucket: m[1], prefix };
}

/** Splits an object URL (or path) into its directory (a store URL) and the key's basename. */
export function splitObjectUrl(url: string): { dir: string; key: string } {
  const trimmed = url.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0) return { dir: '.', key: trimmed };
  const dir = trimmed.slice(0, slash);
  // `s3://bucket/key` -> dir `s3://bucket`; `/key` -> dir `/`.
  return { dir: dir === '' ? '/' : dir.endsWith(':/') ? `${dir}/` : dir, key: trimmed.slice(slash + 1) };
}

/** True when `ref` is an absolute store URL (s3:// or file://) rather than a relative key. */
export function isAbsoluteUrl(ref: string): boolean {
  return /^(s3|file):\/\//.test(ref);
}
