// An ObjectStore over a local directory, with the same semantics as the S3
// store: atomic puts (temp file + fsync + rename, so readers never see a
// half-written object), byte ranges, and ETag pinning.
//
// ETag: md5 of `size:mtimeNs:inode`, not of the content. Hashing content
// would mean reading a 64 MiB shard again after every write; and because
// every put renames a fresh temp file into place, a rewrite always changes
// the inode, so the ETag changes even when size and mtime happen to match.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type BigIntStats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import type { ObjectInfo, ObjectStore, ReadOptions, WriteOptions } from './object-store.js';
import {
  cancelledError,
  changedError,
  mapStorageError,
  notFoundError,
  rangeError,
  unavailableError,
} from './errors.js';
import { guardStream } from './guard-stream.js';
import { checkKey } from './keys.js';
import { checkRangeArgs, resolveRange } from './range.js';

function checkAborted(signal: AbortSignal | undefined, url: string, op: string): void {
  if (signal?.aborted) throw cancelledError(url, op, signal.reason);
}

function localEtag(st: BigIntStats): string {
  return createHash('md5').update(`${st.size}:${st.mtimeNs}:${st.ino}`).digest('hex');
}

class LocalStore implements ObjectStore {
  readonly url: string;

  constructor(private readonly root: string) {
    this.url = pathToFileURL(root).href.replace(/\/$/, '');
  }

  private path(key: string): string {
    return join(this.root, ...checkKey(key, this.url).split('/'));
  }

  private urlOf(key: string): string {
    return `${this.url}/${key}`;
  }

  async put(key: string, body: Uint8Array | Readable, options: WriteOptions = {}): Promise<ObjectInfo> {
    const path = this.path(key);
    const url = this.urlOf(key);
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      checkAborted(options.signal, url, 'PUT');
      await mkdir(dirname(path), { recursive: true });
      if (body instanceof Uint8Array) {
        const fh = await open(tmp, 'w');
        try {
          await fh.writeFile(body, { signal: options.signal });
          await fh.sync();
        } finally {
          await fh.close();
        }
      } else {
        const out = createWriteStream(tmp, { flush: true });
        await pipeline(body, out, { signal: options.signal });
      }
      await rename(tmp, path);
      const st = await stat(path, { bigint: true });
      return { key, size: Number(st.size), etag: localEtag(st) };
    } catch (err) {
      await rm(tmp, { force: true });
      if (!(body instanceof Uint8Array)) body.destroy();
      throw mapStorageError(err, { url, op: 'PUT', signal: options.signal });
    }
  }

  /** Opens the file and checks the pin; the handle keeps reading the same inode. */
  private async openChecked(
    key: string,
    options: ReadOptions,
    op: string,
  ): Promise<{ fh: FileHandle; size: number }> {
    const url = this.urlOf(key);
    checkRangeArgs(options, url);
    checkAborted(options.signal, url, op);
    let fh: FileHandle;
    try {
      fh = await open(this.path(key), 'r');
    } catch (err) {
      throw mapStorageError(err, { url, op, signal: options.signal });
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile()) throw notFoundError(url);
      const etag = localEtag(st);
      if (options.ifMatch !== undefined && options.ifMatch !== etag) {
        throw changedError(url, options.ifMatch, etag);
      }
      return { fh, size: Number(st.size) };
    } catch (err) {
      await fh.close();
      throw mapStorageError(err, { url, op, signal: options.signal });
    }
  }

  async get(key: string, options: ReadOptions = {}): Promise<Uint8Array> {
    const url = this.urlOf(key);
    const { fh, size } = await this.openChecked(key, options, 'GET');
    try {
      const { start, end } = resolveRange(options, size, () =>
        rangeError(url, options.start ?? 0, options.end, size),
      );
      const out = new Uint8Array(end - start);
      let done = 0;
      while (done < out.length) {
        checkAborted(options.signal, url, 'GET');
        const { bytesRead } = await fh.read(out, done, out.length - done, start + done);
        if (bytesRead === 0) throw notFoundError(url); // truncated underneath us
        done += bytesRead;
      }
      return out;
    } catch (err) {
      throw mapStorageError(err, { url, op: 'GET', signal: options.signal });
    } finally {
      await fh.close();
    }
  }

  async getStream(key: string, options: ReadOptions = {}): Promise<Readable> {
    const url = this.urlOf(key);
    const { fh, size } = await this.openChecked(key, options, 'GET');
    let range: { start: number; end: number };
    try {
      range = resolveRange(options, size, () => rangeError(url, options.start ?? 0, options.end, size));
    } catch (err) {
      await fh.close();
      throw err;
    }
    if (range.end === range.start) {
      await fh.close();
      return Readable.from([]);
    }
    const stream = createReadStream('', {
      fd: fh,
      start: range.start,
      end: range.end - 1,
      signal: options.signal,
      autoClose: true,
    });
    return guardStream(stream, {
      mapError: (err) => mapStorageError(err, { url, op: 'GET', signal: options.signal }),
      expectedBytes: range.end - range.start,
      short: (got) =>
        unavailableError(url, 'GET', `file ended after ${got} of ${range.end - range.start} bytes`),
    });
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    try {
      checkAborted(options.signal, this.urlOf(key), 'HEAD');
      const st = await stat(this.path(key), { bigint: true });
      if (!st.isFile()) return undefined;
      return { key, size: Number(st.size), etag: localEtag(st) };
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT' || (err as { code?: unknown }).code === 'ENOTDIR') {
        return undefined;
      }
      throw mapStorageError(err, { url: this.urlOf(key), op: 'HEAD', signal: options.signal });
    }
  }

  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncIterable<ObjectInfo> {
    // Walk only the directory the prefix names (`a/b/c` -> `a/b`), in key order.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    const startDir = base === '' ? this.root : join(this.root, ...checkKey(base, this.url).split('/'));
    yield* this.walk(startDir, prefix, options.signal);
  }

  private async *walk(dir: string, prefix: string, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
    checkAborted(signal, pathToFileURL(dir).href, 'LIST');
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw mapStorageError(err, { url: pathToFileURL(dir).href, op: 'LIST', signal });
    }
    // S3 lists keys in byte order: `a/b` sorts after `a.b` but before `a0`,
    // so a directory's entries are sorted as `name/`, not `name`.
    const entries = await Promise.all(
      names.map(async (name) => {
        const path = join(dir, name);
        const st = await stat(path, { bigint: true }).catch(() => undefined);
        return { name, path, st, sortKey: st?.isDirectory() ? `${name}/` : name };
      }),
    );
    entries.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const { path, st } of entries) {
      if (!st) continue;
      const key = relative(this.root, path).split(sep).join('/');
      if (st.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* this.walk(path, prefix, signal);
      } else if (st.isFile() && key.startsWith(prefix) && !/\.tmp-\d+-[0-9a-f]{12}$/.test(key)) {
        yield { key, size: Number(st.size), etag: localEtag(st) };
      }
    }
  }

  async delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      checkAborted(options.signal, this.urlOf(key), 'DELETE');
      await rm(this.path(key), { force: true });
    } catch (err) {
      throw mapStorageError(err, { url: this.urlOf(key), op: 'DELETE', signal: options.signal });
    }
  }
}

/** A store rooted at an absolute directory (created on first put). */
export function createLocalStore(root: string): ObjectStore {
  return new LocalStore(root.length > 1 ? root.replace(/\/+$/, '') : root);
}
