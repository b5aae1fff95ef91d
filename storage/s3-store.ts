// An ObjectStore over an S3 bucket prefix. Every call maps its failures onto
// the SadpError codes of ./errors.ts and always consumes or destroys GetObject
// bodies (an abandoned body keeps its socket out of the pool for good).
//
// ETag pinning: GETs send If-Match, which AWS S3, MinIO and Ceph answer with
// 412 when the object changed. s3rver ignores If-Match, so the ETag header of
// the response (S3 returns it on ranged GETs too) is compared as well; either
// way a changed object fails with SADP_OBJECT_CHANGED before any byte is used.
// If-Match carries the quoted entity-tag (RFC 7232): strict servers such as
// nginx answer 412 to an unquoted one.
//
// readInto (the range reader's path) skips the SDK: undici + SigV4, see
// ./signed-get.ts. Everything else goes through the SDK client.
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { onAbort } from '../common/signals.js';
import type { ObjectInfo, ObjectStore, ReadIntoOptions, ReadOptions, WriteOptions } from './object-store.js';
import { changedError, mapStorageError, rangeError, unavailableError } from './errors.js';
import { guardStream } from './guard-stream.js';
import { clientEndpointLabel } from './s3-client.js';
import { checkKey, parseS3Url } from './keys.js';
import { checkRangeArgs, rangeArgsValid } from './range.js';
import { readIntoViaStream } from './read-into.js';
import { resolveGetRoute, type GetRoute } from './s3-get-route.js';
import { encodeKeyPath } from './signed-get.js';

/** Multipart part size: 8 MiB (S3's minimum is 5 MiB; 10,000 parts -> 78 GiB max object). */
export const PART_SIZE = 8 * 1024 * 1024;
/** Parts in flight per upload; buffered bytes per upload <= PART_SIZE * UPLOAD_QUEUE = 32 MiB. */
const UPLOAD_QUEUE = 4;
/** Keys whose URL and GET path are kept (a dataset's shards; beyond this the cache starts over). */
const TARGET_CACHE_KEYS = 16_384;

function stripEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}

class S3Store implements ObjectStore {
  readonly url: string;
  private readonly bucket: string;
  private readonly prefix: string;
  /** For messages that need it (credentials, DNS, access): where requests go. */
  private readonly endpoint: string | undefined;
  private route: Promise<GetRoute | undefined> | undefined;
  /** Per key: its URL (key checked) and signed-GET path; a loader reads the same shards over and over. */
  private readonly targets = new Map<string, { url: string; path: string }>();

  constructor(
    url: string,
    private readonly client: S3Client,
  ) {
    const { bucket, prefix } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = prefix === '' ? '' : `${prefix}/`;
    this.url = `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`;
    this.endpoint = clientEndpointLabel(client);
  }

  private objectKey(key: string): string {
    return this.prefix + checkKey(key, this.url);
  }

  private urlOf(key: string): string {
    return `${this.url}/${key}`;
  }

  async put(key: string, body: Uint8Array | Readable, options: WriteOptions = {}): Promise<ObjectInfo> {
    const url = this.urlOf(key);
    const Key = this.objectKey(key);
    const { signal } = options;
    try {
      signal?.throwIfAborted();
      let etag: string;
      if (body instanceof Uint8Array && body.length <= PART_SIZE) {
        const out = await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: body,
            ContentLength: body.length,
            ContentType: options.contentType,
          }),
          { abortSignal: signal },
        );
        etag = stripEtag(out.ETag);
      } else {
        const upload = new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key, Body: body, ContentType: options.contentType },
          partSize: PART_SIZE,
          queueSize: UPLOAD_QUEUE,
          leavePartsOnError: false,
        });
        using _stopUpload = onAbort(signal, () => void upload.abort().catch(() => undefined));
        const out = await upload.done();
        etag = stripEtag(out.ETag);
      }
      // The size comes from HEAD (a stream's length is unknown up front); it
      // also verifies that what is stored now is what we wrote.
      const info = await this.head(key, { signal });
      if (!info) throw unavailableError(url, 'PUT', 'object not visible after upload');
      if (etag !== '' && info.etag !== etag) throw changedError(url, etag, info.etag);
      return info;
    } catch (err) {
      if (!(body instanceof Uint8Array)) body.destroy();
      throw mapStorageError(err, { endpoint: this.endpoint, url, op: 'PUT', signal });
    }
  }

  private async open(
    key: string,
    options: ReadOptions,
  ): Promise<{ body: Readable | undefined; length: number; url: string }> {
    const url = this.urlOf(key);
    checkRangeArgs(options, url);
    const { start, end, ifMatch, signal } = options;
    if (end !== undefined && end === (start ?? 0)) {
      // HTTP cannot express an empty range; still honour existence and the pin.
      const info = await this.head(key, { signal });
      if (!info) throw mapStorageError({ name: 'NotFound' }, { url, op: 'GET' });
      if (ifMatch !== undefined && info.etag !== ifMatch) throw changedError(url, ifMatch, info.etag);
      if (end > info.size) throw rangeError(url, end, end, info.size);
      return { body: undefined, length: 0, url };
    }
    const range =
      start === undefined && end === undefined
        ? undefined
        : `bytes=${start ?? 0}-${end === undefined ? '' : end - 1}`;
    let out;
    try {
      out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          Range: range,
          IfMatch: ifMatch === undefined ? undefined : `"${ifMatch}"`,
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw mapStorageError(err, { endpoint: this.endpoint, url, op: 'GET', ifMatch, signal });
    }
    const body = out.Body as Readable | undefined;
    const etag = stripEtag(out.ETag);
    if (ifMatch !== undefined && etag !== '' && etag !== ifMatch) {
      body?.destroy();
      throw changedError(url, ifMatch, etag);
    }
    return { body, length: out.ContentLength ?? 0, url };
  }

  /** The lean GET route once resolved (`null`: none, reads take the stream path). */
  private resolvedRoute: GetRoute | null | undefined;

  readInto(key: string, dest: Uint8Array, destOffset: number, options: ReadIntoOptions): Promise<number> {
    // The loader's per-GET path: a known key on a resolved route goes straight
    // to the getter, without an async frame of its own.
    const target = this.targets.get(key);
    const route = this.resolvedRoute;
    // A bad range is rejected there too.
    if (target === undefined || route === undefined || !rangeArgsValid(options)) {
      return this.readIntoFirst(key, dest, destOffset, options);
    }
    if (route === null) return readIntoViaStream(this, key, target.url, dest, destOffset, options);
    return route.getter.getInto(target.path, target.url, dest, destOffset, options);
  }

  /** readInto of a key not seen yet, before the route is known, or of a bad range. */
  private async readIntoFirst(
    key: string,
    dest: Uint8Array,
    destOffset: number,
    options: ReadIntoOptions,
  ): Promise<number> {
    let target = this.targets.get(key);
    if (!target) {
      const url = this.urlOf(key);
      checkRangeArgs(options, url);
      this.route ??= resolveGetRoute(this.client, this.bucket).catch(() => undefined);
      const route = await this.route;
      this.resolvedRoute = route ?? null;
      target = { url, path: route ? `${route.base}/${encodeKeyPath(this.objectKey(key))}` : '' };
      if (this.targets.size >= TARGET_CACHE_KEYS) this.targets.clear();
      this.targets.set(key, target);
    }
    checkRangeArgs(options, target.url);
    const route = await this.route;
    if (!route) return readIntoViaStream(this, key, target.url, dest, destOffset, options);
    return route.getter.getInto(target.path, target.url, dest, destOffset, options);
  }

  async get(key: string, options: ReadOptions = {}): Promise<Uint8Array> {
    const stream = await this.getStream(key, options);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    } finally {
      stream.destroy();
    }
    return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
  }

  async getStream(key: string, options: ReadOptions = {}): Promise<Readable> {
    const { body, length, url } = await this.open(key, options);
    if (!body) return Readable.from([]);
    return guardStream(body, {
      mapError: (err) =>
        mapStorageError(err, {
          endpoint: this.endpoint,
          url,
          op: 'GET',
          ifMatch: options.ifMatch,
          signal: options.signal,
        }),
      expectedBytes: length,
      short: (got) => unavailableError(url, 'GET', `body ended after ${got} of ${length} bytes`),
    });
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
        {
          abortSignal: options.signal,
        },
      );
      return { key, size: out.ContentLength ?? 0, etag: stripEtag(out.ETag) };
    } catch (err) {
      const mapped = mapStorageError(err, {
        endpoint: this.endpoint,
        url: this.urlOf(key),
        op: 'HEAD',
        signal: options.signal,
      });
      if (mapped.code === 'SADP_OBJECT_NOT_FOUND') return undefined;
      throw mapped;
    }
  }

  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
          }),
          { abortSignal: options.signal },
        );
      } catch (err) {
        throw mapStorageError(err, {
          endpoint: this.endpoint,
          url: `${this.url}/${prefix}`,
          op: 'LIST',
          signal: options.signal,
        });
      }
      for (const item of out.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield { key: item.Key.slice(this.prefix.length), size: item.Size ?? 0, etag: stripEtag(item.ETag) };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), {
        abortSignal: options.signal,
      });
    } catch (err) {
      // S3 deletes idempotently; only a missing bucket is an error.
      if ((err as { name?: unknown }).name !== 'NoSuchKey') {
        throw mapStorageError(err, {
          endpoint: this.endpoint,
          url: this.urlOf(key),
          op: 'DELETE',
          signal: options.signal,
        });
      }
    }
  }
}

export function createS3Store(url: string, client: S3Client): ObjectStore {
  return new S3Store(url, client);
}
