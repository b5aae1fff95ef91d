// Opens a dataset: reads and validates the manifest and every shard index,
// and lays the per-sample byte ranges out in flat typed arrays (no
// per-example objects: ImageNet has 1.28M samples).
//
// Memory bounds: offsets/ends (8 B each) and shardIds (4 B) per sample, plus
// every index in compact typed-array form (./compact-index.ts: ~30 B per
// sample), so `key()` and `shardIndex()` stay synchronous; at most
// `indexCacheShards` indexes are held as objects at a time. ImageNet-1k:
// about 60 MB in all.
import { SadpError, Status } from '../../common/errors.js';
import {
  createRoutingStore,
  isAbsoluteUrl,
  openStore,
  splitObjectUrl,
  type ObjectStore,
  type S3Client,
  type S3Options,
} from '../../storage/index.js';
import type { DatasetManifest, ShardIndex } from './format.js';
import { CompactShardIndex, SuffixTable } from './compact-index.js';
import { forEachLimited } from '../../common/pool.js';
import { throwIfCancelled } from '../../common/signals.js';
import { checkDatasetLocation, type DatasetAccess } from './dataset-access.js';
import { indexInvalid, manifestInvalid, parseJson, validateIndex, validateManifest } from './schema.js';

export interface OpenDatasetOptions {
  s3?: S3Options;
  /** Shared S3 client; default one built from `s3`. */
  client?: S3Client;
  signal?: AbortSignal;
  /** Index files fetched at once; default 16. */
  indexConcurrency?: number;
  /** Shard indexes kept in object form (samples built lazily); default 64. */
  indexCacheShards?: number;
  /** Locations the manifest and its absolute shard/index URLs may name; default 'any'. */
  access?: DatasetAccess;
}

export interface Dataset {
  readonly manifest: DatasetManifest;
  readonly url: string;
  /** Number of samples (ids 0..size-1). */
  readonly size: number;
  readonly shardCount: number;
  /** Store holding the shards (the manifest's directory). Keys that are absolute URLs are routed to their own store. */
  readonly store: ObjectStore;
  /** Key of the shard in `store` (relative, or an absolute URL for shards kept elsewhere). */
  shardKey(shard: number): string;
  shardOf(id: number): number;
  /** Per-sample byte ranges within their shard, and the shard of each id. */
  readonly offsets: Float64Array;
  readonly ends: Float64Array;
  readonly shardIds: Uint32Array;
  key(id: number): string;
  /** The shard's index (cached; re-parsed from a compressed copy on a miss). */
  shardIndex(shard: number): ShardIndex;
  /** ETag of the manifest this dataset was read from ('' when the store reported none). */
  readonly manifestEtag: string;
  /**
   * Re-reads the manifest's ETag (one request shared by concurrent callers)
   * and, when it changed (the dataset was re-indexed), opens the dataset
   * again: the result, which latest() returns from then on; else this one.
   */
  reopen?(signal?: AbortSignal): Promise<Dataset>;
  /** The newest dataset reopen() produced from this one (this one until then). */
  latest?(): Dataset;
}

const DATASET_DEFAULTS = { indexConcurrency: 16, indexCacheShards: 64 } as const;

/** Opens the directory of a manifest URL as a store that also routes absolute keys. */
export function openDatasetStore(
  manifestUrl: string,
  options: { s3?: S3Options; client?: S3Client; access?: DatasetAccess } = {},
): { store: ObjectStore; manifestKey: string } {
  const { dir, key } = splitObjectUrl(manifestUrl);
  const client = options.client;
  const open = (url: string): ObjectStore => {
    checkDatasetLocation(url, options.access ?? 'any');
    return openStore(url, { s3: options.s3, client });
  };
  return { store: createRoutingStore({ root: open(dir), open }), manifestKey: key };
}

class OpenedDataset implements Dataset {
  readonly size: number;
  readonly shardCount: number;
  readonly offsets: Float64Array;
  readonly ends: Float64Array;
  readonly shardIds: Uint32Array;
  private readonly compact: CompactShardIndex[] = [];
  readonly suffixes = new SuffixTable();
  private readonly cache = new Map<number, ShardIndex>();
  private successor: Dataset | undefined;
  private reopening: Promise<Dataset> | undefined;

  constructor(
    readonly manifest: DatasetManifest,
    readonly url: string,
    readonly store: ObjectStore,
    private readonly cacheLimit: number,
    readonly manifestEtag: string,
    private readonly again: (signal?: AbortSignal) => Promise<{ etag: string; open: () => Promise<Dataset> }>,
  ) {
    this.size = manifest.samples;
    this.shardCount = manifest.shards.length;
    this.offsets = new Float64Array(this.size);
    this.ends = new Float64Array(this.size);
    this.shardIds = new Uint32Array(this.size);
  }

  latest(): Dataset {
    return this.successor?.latest?.() ?? this.successor ?? this;
  }

  reopen(signal?: AbortSignal): Promise<Dataset> {
    if (this.successor) return this.successor.reopen?.(signal) ?? Promise.resolve(this.successor);
    this.reopening ??= (async (): Promise<Dataset> => {
      try {
        const { etag, open } = await this.again(signal);
        // Same manifest (or no ETag to tell): not re-indexed, nothing to reload.
        if (etag === '' || etag === this.manifestEtag) return this;
        const next = await open();
        this.successor = next;
        return next;
      } finally {
        this.reopening = undefined;
      }
    })();
    return this.reopening;
  }

  /** Called once per shard while opening. */
  fill(shard: number, index: ShardIndex, compact: CompactShardIndex): void {
    const { firstId } = index;
    index.samples.forEach((s, i) => {
      this.offsets[firstId + i] = s.offset;
      this.ends[firstId + i] = s.end;
    });
    this.shardIds.fill(shard, firstId, firstId + index.samples.length);
    this.compact[shard] = compact;
  }

  private remember(shard: number, index: ShardIndex): void {
    this.cache.delete(shard);
    this.cache.set(shard, index);
    while (this.cache.size > this.cacheLimit) {
      const oldest = this.cache.keys().next().value as number;
      this.cache.delete(oldest);
    }
  }

  shardKey(shard: number): string {
    const entry = this.manifest.shards[shard];
    if (!entry) throw outOfRange(`shard ${shard}`, this.shardCount, this.url);
    return entry.url;
  }

  shardOf(id: number): number {
    if (!(id >= 0 && id < this.size && Number.isInteger(id)))
      throw outOfRange(`example id ${id}`, this.size, this.url);
    return this.shardIds[id] as number;
  }

  key(id: number): string {
    const compact = this.compact[this.shardOf(id)] as CompactShardIndex;
    return compact.key(id - compact.firstId);
  }

  shardIndex(shard: number): ShardIndex {
    const hit = this.cache.get(shard);
    if (hit) {
      this.remember(shard, hit);
      return hit;
    }
    const compact = this.compact[shard];
    if (!compact) throw outOfRange(`shard ${shard}`, this.shardCount, this.url);
    const index = compact.toShardIndex();
    this.remember(shard, index);
    return index;
  }
}

function outOfRange(what: string, limit: number, url: string): SadpError {
  return new SadpError('SADP_OUT_OF_RANGE', `${what} is outside dataset ${url} (0..${limit - 1})`, {
    status: Status.OUT_OF_RANGE,
  });
}

function indexMismatch(shard: string, indexUrl: string, why: string): SadpError {
  return new SadpError(
    'SADP_INDEX_MISMATCH',
    `shard ${shard}: index ${indexUrl} does not match the manifest: ${why}`,
    {
      status: Status.FAILED_PRECONDITION,
    },
  );
}

interface LoadedManifest {
  manifest: DatasetManifest;
  url: string;
  store: ObjectStore;
  manifestKey: string;
  /** The ETag keys reloads: reopen() reads the dataset again only when it changed. */
  manifestEtag: string;
}

async function loadManifest(
  manifestUrl: string,
  options: Pick<OpenDatasetOptions, 's3' | 'client' | 'signal'>,
): Promise<LoadedManifest> {
  const { signal } = options;
  const { store, manifestKey } = openDatasetStore(manifestUrl, options);
  const url = `${store.url}/${manifestKey}`;
  let raw: Uint8Array;
  let manifestEtag = '';
  try {
    manifestEtag = (await store.head(manifestKey, { signal }))?.etag ?? '';
    raw = await store.get(manifestKey, { signal });
  } catch (err) {
    if (err instanceof SadpError && err.code === 'SADP_OBJECT_NOT_FOUND') {
      throw new SadpError('SADP_MANIFEST_MISSING', `dataset manifest ${url} not found`, {
        status: Status.NOT_FOUND,
        cause: err,
      });
    }
    throw err;
  }
  const manifest = validateManifest(
    parseJson(raw, (why, cause) => manifestInvalid(url, why, cause)),
    url,
  );
  return { manifest, url, store, manifestKey, manifestEtag };
}

export async function openDataset(manifestUrl: string, options: OpenDatasetOptions = {}): Promise<Dataset> {
  const { signal } = options;
  const { manifest, url, store, manifestKey, manifestEtag } = await loadManifest(manifestUrl, options);
  const dataset = new OpenedDataset(
    manifest,
    url,
    store,
    options.indexCacheShards ?? DATASET_DEFAULTS.indexCacheShards,
    manifestEtag,
    async (again) => ({
      etag: (await store.head(manifestKey, { signal: again }))?.etag ?? '',
      open: () => openDataset(manifestUrl, { ...options, signal: again }),
    }),
  );
  await forEachLimited(
    manifest.shards,
    { concurrency: options.indexConcurrency ?? DATASET_DEFAULTS.indexConcurrency },
    async (entry, i) => {
      throwIfCancelled(signal, `opening ${url}`);
      const indexUrl = isAbsoluteUrl(entry.index) ? entry.index : `${store.url}/${entry.index}`;
      let bytes: Uint8Array;
      try {
        bytes = await store.get(entry.index, { signal });
      } catch (err) {
        if (err instanceof SadpError && err.code === 'SADP_OBJECT_NOT_FOUND') {
          throw new SadpError('SADP_INDEX_MISSING', `shard ${entry.url}: index ${indexUrl} not found`, {
            status: Status.FAILED_PRECONDITION,
            cause: err,
          });
        }
        throw err;
      }
      const index = validateIndex(
        parseJson(bytes, (why) => indexInvalid(entry.url, indexUrl, why)),
        entry.url,
        indexUrl,
      );
      if (index.size !== entry.size || index.etag !== entry.etag) {
        throw indexMismatch(
          entry.url,
          indexUrl,
          `index was built for size ${index.size} ETag "${index.etag}", manifest lists size ${entry.size} ETag "${entry.etag}"`,
        );
      }
      if (index.samples.length !== entry.samples) {
        // Where the two disagree: the first extra sample, or the end of the last one.
        const at =
          index.samples.length > entry.samples
            ? index.samples[entry.samples]?.offset
            : (index.samples[index.samples.length - 1]?.end ?? 0);
        throw indexMismatch(
          entry.url,
          indexUrl,
          `index lists ${index.samples.length} samples, manifest ${entry.samples} (they diverge at offset ${at})`,
        );
      }
      if (index.firstId !== entry.firstId) {
        throw indexMismatch(
          entry.url,
          indexUrl,
          `index firstId ${index.firstId}, manifest firstId ${entry.firstId}`,
        );
      }
      const compact = CompactShardIndex.from(index, dataset.suffixes);
      if (!(compact instanceof CompactShardIndex)) {
        throw indexInvalid(entry.url, indexUrl, `${compact.error} (offset ${compact.offset})`);
      }
      dataset.fill(i, index, compact);
    },
  );
  return dataset;
}
