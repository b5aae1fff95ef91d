// A store rooted at one directory that also accepts absolute `s3://` and
// `file://` keys, routing each to a store opened (once, then cached) for its
// directory: a dataset manifest may name shards indexed in place in another
// bucket. `list` covers the root only; a location `open` refuses rejects the call.
import type { Readable } from 'node:stream';
import { isAbsoluteUrl, splitObjectUrl } from './keys.js';
import type { ObjectInfo, ObjectStore, ReadIntoOptions, ReadOptions, WriteOptions } from './object-store.js';
import { readInto } from './read-into.js';

export interface RoutingStoreOptions {
  /** Store for relative keys. */
  root: ObjectStore;
  /** Opens the directory of an absolute key (may throw to refuse a location). */
  open: (dirUrl: string) => ObjectStore;
}

export function createRoutingStore(options: RoutingStoreOptions): ObjectStore {
  return new RoutingStore(options.root, options.open);
}

class RoutingStore implements ObjectStore {
  private readonly others = new Map<string, ObjectStore>();

  constructor(
    private readonly root: ObjectStore,
    private readonly open: (url: string) => ObjectStore,
  ) {}

  get url(): string {
    return this.root.url;
  }

  private route(key: string): [ObjectStore, string] {
    if (!isAbsoluteUrl(key)) return [this.root, key];
    const { dir, key: base } = splitObjectUrl(key);
    let store = this.others.get(dir);
    if (!store) {
      store = this.open(dir);
      this.others.set(dir, store);
    }
    return [store, base];
  }

  async put(key: string, body: Uint8Array | Readable, options?: WriteOptions): Promise<ObjectInfo> {
    const [s, k] = this.route(key);
    return await s.put(k, body, options);
  }
  async get(key: string, options?: ReadOptions): Promise<Uint8Array> {
    const [s, k] = this.route(key);
    return await s.get(k, options);
  }
  async getStream(key: string, options?: ReadOptions): Promise<Readable> {
    const [s, k] = this.route(key);
    return await s.getStream(k, options);
  }
  readInto(key: string, dest: Uint8Array, destOffset: number, options: ReadIntoOptions): Promise<number> {
    // Not async for the root's keys: this is on every GET of the loader.
    if (!isAbsoluteUrl(key)) return readInto(this.root, key, dest, destOffset, options);
    return this.readIntoOther(key, dest, destOffset, options);
  }
  private async readIntoOther(
    key: string,
    dest: Uint8Array,
    destOffset: number,
    options: ReadIntoOptions,
  ): Promise<number> {
    const [s, k] = this.route(key);
    return await readInto(s, k, dest, destOffset, options);
  }
  async head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    const [s, k] = this.route(key);
    const info = await s.head(k, options);
    return info && { ...info, key };
  }
  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    return this.root.list(prefix, options);
  }
  async delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    const [s, k] = this.route(key);
    return await s.delete(k, options);
  }
}
