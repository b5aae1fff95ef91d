// Public API of the storage layer: one ObjectStore interface over S3 (and
// S3-compatible servers) and local directories, the S3 client factory, and
// the embedded S3 server.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { SadpError, Status } from '../common/errors.js';
import type { ObjectStore } from './object-store.js';
import { StorageErrorCode } from './errors.js';
import { createLocalStore } from './local-store.js';
import { createS3Client, type S3Options } from './s3-client.js';
import { createS3Store } from './s3-store.js';

export type { ObjectStore } from './object-store.js';
export { readInto, STORAGE_TIMEOUT } from './read-into.js';
export type { S3Options, S3Credentials } from './s3-client.js';
export type { EmbeddedS3 } from './embedded-s3.js';
export type { S3Client } from '@aws-sdk/client-s3';
export { createS3Client } from './s3-client.js';
export { startEmbeddedS3, s3OptionsForEmbedded } from './embedded-s3.js';
export { splitObjectUrl, isAbsoluteUrl } from './keys.js';
export { createRoutingStore } from './routing-store.js';
export { EMBEDDED_S3_DEFAULTS, s3ConfigSchema, embeddedS3ConfigSchema } from './config.js';
export { isRetryableStorageError } from './errors.js';
export { PART_SIZE } from './s3-store.js';

export interface OpenStoreOptions {
  /** Used to build a client when `client` is not given. */
  s3?: S3Options;
  /** Share one client (and its socket pool) between stores. */
  client?: S3Client;
}

/**
 * Opens the store rooted at `url`: `s3://bucket/prefix`, `file:///abs/dir`,
 * or a plain (relative or absolute) directory path.
 */
export function openStore(url: string, options: OpenStoreOptions = {}): ObjectStore {
  if (url.startsWith('s3://')) return createS3Store(url, options.client ?? createS3Client(options.s3));
  if (url.startsWith('file://')) return createLocalStore(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new SadpError(
      StorageErrorCode.INVALID_URL,
      `unsupported storage URL ${url} (use s3://, file:// or a path)`,
      {
        status: Status.INVALID_ARGUMENT,
      },
    );
  }
  return createLocalStore(isAbsolute(url) ? url : resolve(url));
}
