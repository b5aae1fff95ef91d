// `sadp shards index`: builds ShardIndex files and a manifest for tar shards
// written by any tool (GNU tar, Python tarfile, webdataset's TarWriter, ours).
//
// One sequential streaming read per shard, pinned to the ETag from HEAD: the
// body flows through TarScanner (offsets, checksums, truncation) into
// tar-stream's extract (names: ustar prefix, PAX path, GNU longname), whose
// entries are matched 1:1 with the scanner's records and drained without
// being kept. Memory per shard: the stream buffers plus the index itself.
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import braces from 'braces';
import * as tar from 'tar-stream';
import { SadpError, Status, errorMessage } from '../../common/errors.js';
import {
  isAbsoluteUrl,
  splitObjectUrl,
  type ObjectStore,
  type S3Client,
  type S3Options,
} from '../../storage/index.js';
import { openDatasetStore } from './dataset.js';
import { INDEX_DIR, MANIFEST_KEY, type DatasetManifest, type ShardEntry, type ShardIndex } from './format.js';
import { SampleGrouper, noneSkipped, type SkippedEntries } from './sample-grouper.js';
import { forEachOrdered } from '../../common/pool.js';
import { throwIfCancelled } from '../../common/signals.js';
import { TarScanner, tarCorrupt, type TarRecord } from './tar-scanner.js';
import { isRegularType } from './tar-header.js';

export interface IndexProgress {
  shardsDone: number;
  shards: number;
  samples: number;
  bytes: number;
  /** Tar entries in no sample so far (directories, links, meta members, no extension). */
  skipped: SkippedEntries;
}

export interface IndexShardsOptions {
  /** Manifest URL to write (`s3://bucket/prefix/manifest.json`, a path, or a directory). */
  out: string;
  s3?: S3Options;
  client?: S3Client;
  signal?: AbortSignal;
  /** Shards read at once; default 4. */
  concurrency?: number;
  /** Recorded in the manifest; default the input pattern. */
  source?: string;
  onProgress?: (progress: IndexProgress) => void;
}

/**
 * Indexes one shard. `shard` is what goes into the index's `shard` field;
 * `firstId` is the global id of its first sample.
 */
export async function indexShard(
  store: ObjectStore,
  key: string,
  options: { shard?: string; firstId?: number; signal?: AbortSignal } = {},
): Promise<{ index: ShardIndex; extensions: Set<string>; skipped: SkippedEntries }> {
  const { signal } = options;
  const label = isAbsoluteUrl(key) ? key : `${store.url}/${key}`;
  const info = await store.head(key, { signal });
  if (!info) {
    throw new SadpError('SADP_OBJECT_NOT_FOUND', `${label}: shard not found`, { status: Status.NOT_FOUND });
  }
  const body = await store.getStream(key, { ifMatch: info.etag, signal });
  const scanner = new TarScanner(label);
  const records: TarRecord[] = [];
  let next = 0;
  let scanError: unknown;
  const scan = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        scanner.push(chunk, records);
        cb(null, chunk);
      } catch (err) {
        scanError = err;
        cb(err as Error);
      }
    },
    flush(cb) {
      try {
        scanner.finish();
        cb();
      } catch (err) {
        scanError = err;
        cb(err as Error);
      }
    },
  });
  const extract = tar.extract();
  const grouper = new SampleGrouper(label);
  let failure: unknown;
  const piped = pipeline(body, scan, extract).catch((err: unknown) => {
    failure ??= err;
  });
  try {
    for await (const entry of extract) {
      const rec = records[next++];
      const header = entry.header as tar.Header & { byteOffset?: number };
      if (!rec || (typeof header.byteOffset === 'number' && header.byteOffset !== rec.dataOffset)) {
        throw tarCorrupt(
          label,
          rec?.ustarOffset ?? scanner.lastHeaderOffset,
          'tar decoder and offset scanner disagree',
        );
      }
      grouper.add(
        header.name,
        isRegularType(rec.typeflag),
        { headerOffset: rec.headerOffset, dataOffset: rec.dataOffset, size: rec.size },
        rec.end,
      );
      entry.resume();
    }
  } catch (err) {
    failure ??= err;
    extract.destroy();
    body.destroy();
  }
  await piped;
  const error = scanError ?? failure;
  if (error !== undefined) {
    if (error instanceof SadpError) throw error;
    throw tarCorrupt(label, scanner.lastHeaderOffset, `tar decoder: ${errorMessage(error)}`);
  }
  if (next !== records.length) {
    throw tarCorrupt(
      label,
      scanner.lastHeaderOffset,
      `${records.length} headers but ${next} decoded members`,
    );
  }
  if (scanner.offset !== info.size) {
    throw new SadpError(
      'SADP_TAR_TRUNCATED',
      `${label}: read ${scanner.offset} bytes at offset ${scanner.offset}, HEAD said ${info.size}`,
      { status: Status.DATA_LOSS },
    );
  }
  grouper.close();
  return {
    index: {
      format: 'sadp-shard-index',
      version: 1,
      shard: options.shard ?? key,
      size: info.size,
      etag: info.etag,
      firstId: options.firstId ?? 0,
      samples: grouper.samples,
    },
    extensions: grouper.extensions,
    skipped: grouper.skipped,
  };
}

/**
 * Expands a shard pattern into URLs: brace patterns
 * (`s3://b/train-{000000..001281}.tar`), a single URL, or a directory /
 * prefix ending in `/` (all `.tar` objects under it, in key order).
 */
async function expandShardPattern(
  pattern: string,
  options: { s3?: S3Options; client?: S3Client; signal?: AbortSignal } = {},
): Promise<string[]> {
  if (pattern.endsWith('/')) {
    const { store } = openDatasetStore(`${pattern}x`, options);
    const urls: string[] = [];
    for await (const obj of store.list('', { signal: options.signal })) {
      if (obj.key.endsWith('.tar')) urls.push(`${store.url}/${obj.key}`);
    }
    return urls;
  }
  return braces(pattern, { expand: true, rangeLimit: 10_000_000 });
}

function relativeTo(dirUrl: string, url: string): string | undefined {
  return url.startsWith(`${dirUrl}/`) ? url.slice(dirUrl.length + 1) : undefined;
}

function toUrl(ref: string): string {
  if (isAbsoluteUrl(ref)) return ref;
  // A plain path: make it a file:// URL so it compares with store URLs.
  const { store, manifestKey } = openDatasetStore(ref);
  return `${store.url}/${manifestKey}`;
}

/**
 * Indexes shards (any writer) and writes their indexes plus a manifest next to
 * `out`. Several patterns (what a shell makes of an unquoted brace pattern)
 * are expanded in order; a shard named twice is indexed once.
 */
export async function indexShards(
  pattern: string | readonly string[],
  options: IndexShardsOptions,
): Promise<DatasetManifest> {
  const { signal } = options;
  const outUrl = options.out.endsWith('.json')
    ? options.out
    : `${options.out.replace(/\/+$/, '')}/${MANIFEST_KEY}`;
  const { store: outStore, manifestKey } = openDatasetStore(outUrl, options);
  const patterns = typeof pattern === 'string' ? [pattern] : pattern;
  const expanded: string[] = [];
  for (const p of patterns) for (const u of await expandShardPattern(p, options)) expanded.push(toUrl(u));
  const urls = [...new Set(expanded)];
  if (urls.length === 0) {
    throw new SadpError('SADP_NO_SHARDS', `no shards match ${patterns.join(' ')}`, {
      status: Status.NOT_FOUND,
    });
  }
  const manifestDir = outStore.url;
  // Shard refs relative to the manifest's directory where possible; index keys unique per shard.
  const usedIndexKeys = new Set<string>();
  const plan = urls.map((url) => {
    const rel = relativeTo(manifestDir, url);
    const ref = rel ?? url;
    const base = (rel ?? splitObjectUrl(url).key).replace(/\.tar$/, '');
    let indexKey = `${INDEX_DIR}/${base}.idx.json`;
    for (let n = 1; usedIndexKeys.has(indexKey); n++) indexKey = `${INDEX_DIR}/${base}-${n}.idx.json`;
    usedIndexKeys.add(indexKey);
    return { url, ref, indexKey };
  });

  // Shards are read concurrently but indexes are written in order (firstId
  // depends on all earlier shards), so at most 2 x concurrency finished
  // indexes wait.
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const skipped = noneSkipped();
  const entries: ShardEntry[] = [];
  const fields = new Set<string>();
  let written = 0;
  let nextId = 0;
  let totalBytes = 0;
  await forEachOrdered(
    plan,
    { concurrency, signal },
    (p) => {
      throwIfCancelled(signal, `indexing ${p.url}`);
      return indexShard(outStore, p.ref, { shard: p.ref, signal });
    },
    async (item, i) => {
      const p = plan[i] as (typeof plan)[number];
      item.index.firstId = nextId;
      const bytes = item.index.samples.reduce((sum, s) => sum + (s.end - s.offset), 0);
      await outStore.put(p.indexKey, Buffer.from(JSON.stringify(item.index)), {
        signal,
        contentType: 'application/json',
      });
      entries.push({
        url: p.ref,
        size: item.index.size,
        etag: item.index.etag,
        samples: item.index.samples.length,
        firstId: nextId,
        index: p.indexKey,
        bytes,
      });
      for (const ext of item.extensions) fields.add(ext);
      for (const k of Object.keys(skipped) as (keyof SkippedEntries)[]) skipped[k] += item.skipped[k];
      nextId += item.index.samples.length;
      totalBytes += bytes;
      written++;
      options.onProgress?.({
        shardsDone: written,
        shards: plan.length,
        samples: nextId,
        bytes: totalBytes,
        skipped: { ...skipped },
      });
    },
  );
  if (written !== plan.length) {
    throw new SadpError('SADP_INTERNAL', `indexed ${written} of ${plan.length} shards`, {
      status: Status.INTERNAL,
    });
  }
  const manifest: DatasetManifest = {
    format: 'sadp-webdataset',
    version: 1,
    samples: nextId,
    bytes: totalBytes,
    fields: [...fields].sort(),
    shards: entries,
    source: options.source ?? patterns.join(' '),
    createdAt: new Date().toISOString(),
  };
  await outStore.put(manifestKey, Buffer.from(JSON.stringify(manifest, null, 1)), {
    signal,
    contentType: 'application/json',
  });
  return manifest;
}
