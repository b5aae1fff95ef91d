// One interface over the places this project keeps bytes: an S3 bucket
// prefix (AWS S3, MinIO, Ceph RGW, the embedded s3rver) or a local directory.
// Shard writers, the scorer's state store and the range reader all use it, so
// every code path works against either.
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Key relative to the store's root (no leading slash). */
  key: string;
  size: number;
  /** Entity tag as the server returns it (quotes stripped). Local files: size-mtime digest. */
  etag: string;
}

export interface ReadOptions {
  /** First byte (inclusive); default 0. */
  start?: number;
  /** Last byte (exclusive); default the object's end. */
  end?: number;
  /** Fail with SADP_OBJECT_CHANGED (FAILED_PRECONDITION) unless the object's ETag is this. */
  ifMatch?: string;
  signal?: AbortSignal;
}

export interface ReadIntoOptions {
  /** First byte (inclusive). */
  start: number;
  /** Last byte (exclusive); > start. */
  end: number;
  /** Fail with SADP_OBJECT_CHANGED unless the object's ETag is this (a 416 then also means changed). */
  ifMatch?: string;
  signal?: AbortSignal;
  /** Fail with SADP_STORAGE_TIMEOUT (retryable) when headers or the body make no progress for this long. */
  idleTimeoutMs: number;
  /** Called per body chunk with its length, before the promise settles (partial bodies included). */
  onBytes?: (n: number) => void;
}

export interface WriteOptions {
  signal?: AbortSignal;
  contentType?: string;
}

export interface ObjectStore {
  /** Where the root is, as a URL: `s3://bucket/prefix` or `file:///abs/dir`. */
  readonly url: string;
  /** Writes an object whole; streams are uploaded in parts (multipart on S3). */
  put(key: string, body: Uint8Array | Readable, options?: WriteOptions): Promise<ObjectInfo>;
  /** Reads an object (or a byte range of it) into memory. NOT_FOUND -> SADP_OBJECT_NOT_FOUND. */
  get(key: string, options?: ReadOptions): Promise<Uint8Array>;
  /**
   * Optional lean path for the range reader: GETs [start, end) straight into
   * `dest` from `destOffset` and resolves with the bytes written (fewer when
   * the body ended early). Stores without it are read through getStream
   * (see readInto in ./read-into.ts).
   */
  readInto?(key: string, dest: Uint8Array, destOffset: number, options: ReadIntoOptions): Promise<number>;
  /** Streams an object or a byte range; the caller must consume or destroy the stream. */
  getStream(key: string, options?: ReadOptions): Promise<Readable>;
  /** Size and ETag, or undefined when the object does not exist. */
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined>;
  /** Objects whose key starts with `prefix`, in key order. */
  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo>;
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void>;
}
