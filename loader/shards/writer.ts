// `sadp shards build`: writes samples from a source into WebDataset tar
// shards of about `shardBytes`, each streamed straight into the store
// (multipart upload on S3) - a shard is never held in memory. The bytes that
// go out pass through TarScanner, so the index records the offsets actually
// written (PAX headers for long names included), not a prediction of them,
// and members are grouped into samples by the indexer's SampleGrouper, so a
// shard built here indexes to the same samples as any other writer's.
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { SadpError, Status } from '../../common/errors.js';
import { openStore, type ObjectStore, type S3Client, type S3Options } from '../../storage/index.js';
import {
  INDEX_DIR,
  MANIFEST_KEY,
  TAR_BLOCK,
  padded,
  shardFileName,
  type DatasetManifest,
  type SampleEntry,
  type ShardEntry,
  type ShardIndex,
} from './format.js';
import { TarScanner, type TarRecord } from './tar-scanner.js';
import { isRegularType } from './tar-header.js';
import { splitMemberName } from './member-name.js';
import { SampleGrouper } from './sample-grouper.js';
import { throwIfCancelled } from '../../common/signals.js';

export interface Sample {
  /** WebDataset key: no dot in its basename. */
  key: string;
  members: Array<{ ext: string; data: Uint8Array }>;
}

export interface SampleSource {
  /** Recorded in the manifest, e.g. `fashion-mnist:train`. */
  name: string;
  samples(signal?: AbortSignal): AsyncIterable<Sample> | Iterable<Sample>;
  /** Number of samples, for progress and ETA. */
  count?(): Promise<number>;
  /** Objects written next to the manifest, e.g. classes.json. */
  extras?(): Promise<Array<{ key: string; body: Uint8Array }>>;
}

interface BuildProgress {
  samples: number;
  /** Undefined when the source cannot count. */
  total: number | undefined;
  bytes: number;
  shards: number;
}

export interface BuildShardsOptions {
  /** Dataset root: `s3://bucket/prefix` or a directory. */
  out: string;
  /** Shard name prefix; default `train`. */
  prefix?: string;
  /**
   * Target shard size; default 64 MiB. A shard is closed before the sample
   * that would push it over (a single larger sample gets its own shard).
   */
  shardBytes?: number;
  s3?: S3Options;
  client?: S3Client;
  /** Use this store instead of opening `out`. */
  store?: ObjectStore;
  signal?: AbortSignal;
  /** Member mtime; default 2000-01-01, so equal inputs give byte-identical shards. */
  mtime?: Date;
  onProgress?: (progress: BuildProgress) => void;
}

export const BUILD_DEFAULTS = { prefix: 'train', shardBytes: 64 * 1024 * 1024 } as const;
const DEFAULT_MTIME = new Date(Date.UTC(2000, 0, 1));

function invalidSample(key: string, why: string): SadpError {
  return new SadpError('SADP_SOURCE_INVALID', `sample ${JSON.stringify(key)}: ${why}`, {
    status: Status.INVALID_ARGUMENT,
  });
}

/** The sample must read back as itself under the WebDataset naming rules (member-name.ts). */
function checkSample(sample: Sample): void {
  const base = sample.key.slice(sample.key.lastIndexOf('/') + 1);
  if (base === '' || base.includes('.') || sample.key.startsWith('/') || /^__.*__$/.test(base)) {
    throw invalidSample(sample.key, 'keys need a non-empty basename without dots, not wrapped in __');
  }
  const fields = new Set<string>();
  for (const m of sample.members) {
    const name = splitMemberName(`${sample.key}.${m.ext}`);
    if (m.ext === '' || name.skip !== undefined || name.key !== sample.key) {
      throw invalidSample(sample.key, `extension "${m.ext}" does not name a field of this key`);
    }
    if (fields.has(name.ext)) throw invalidSample(sample.key, `empty or repeated extension "${m.ext}"`);
    fields.add(name.ext);
  }
  if (fields.size === 0) throw invalidSample(sample.key, 'no members');
}

/** Tar bytes of a sample when every name fits a ustar header (the common case). */
function estimateBytes(sample: Sample): number {
  return sample.members.reduce((sum, m) => sum + TAR_BLOCK + padded(m.data.length), 0);
}

/** One shard being streamed into the store. */
class ShardSink {
  private readonly pack = tar.pack();
  private readonly scanner: TarScanner;
  private readonly records: TarRecord[] = [];
  private readonly names: string[] = [];
  private readonly keys = new Set<string>();
  private readonly upload: Promise<{ size: number; etag: string }>;
  private failure: Promise<never>;
  samples = 0;
  estimated = 0;

  constructor(
    store: ObjectStore,
    readonly key: string,
    private readonly mtime: Date,
    signal?: AbortSignal,
  ) {
    this.scanner = new TarScanner(`${store.url}/${key}`);
    const { pack, scanner, records } = this;
    // abort() destroys the pack with the build's own error, which the caller
    // already has; without a listener streamx would also raise it uncaught.
    pack.on('error', () => undefined);
    async function* bytes(): AsyncGenerator<Buffer> {
      for await (const chunk of pack as AsyncIterable<Buffer>) {
        scanner.push(chunk, records);
        yield chunk;
      }
      scanner.finish();
    }
    this.upload = store.put(key, Readable.from(bytes(), { objectMode: false }), {
      signal,
      contentType: 'application/x-tar',
    });
    // If the upload fails, pending entry writes would wait forever for a
    // reader: fail them and tear the pack down.
    this.failure = this.upload.then(
      () => new Promise<never>(() => undefined),
      (err: unknown) => {
        pack.destroy(err as Error);
        throw err;
      },
    );
    this.failure.catch(() => undefined);
  }

  async add(sample: Sample): Promise<void> {
    if (this.keys.has(sample.key)) throw invalidSample(sample.key, `key repeated in shard ${this.key}`);
    this.keys.add(sample.key);
    for (const m of sample.members) {
      const name = `${sample.key}.${m.ext}`;
      this.names.push(name);
      const written = new Promise<void>((resolve, reject) => {
        this.pack.entry(
          { name, size: m.data.length, mtime: this.mtime, mode: 0o644, type: 'file' },
          m.data,
          (err) => (err ? reject(err) : resolve()),
        );
      });
      // The entry callback fires once the pack's reader took the bytes: this
      // is the backpressure that keeps memory to about one sample.
      await Promise.race([written, this.failure]);
    }
    this.samples++;
    this.estimated += estimateBytes(sample);
  }

  /** Finishes the tar, waits for the upload, and returns the shard's samples. */
  async close(): Promise<{ size: number; etag: string; samples: SampleEntry[]; extensions: Set<string> }> {
    this.pack.finalize();
    const info = await this.upload;
    if (info.size !== this.scanner.offset) {
      throw new SadpError(
        'SADP_UPLOAD_MISMATCH',
        `${this.key}: stored ${info.size} bytes, wrote ${this.scanner.offset}`,
        { status: Status.DATA_LOSS },
      );
    }
    if (this.records.length !== this.names.length) {
      throw new SadpError(
        'SADP_INTERNAL',
        `${this.key}: ${this.records.length} tar headers for ${this.names.length} members`,
      );
    }
    const grouper = new SampleGrouper(this.key);
    this.records.forEach((rec, i) => {
      grouper.add(
        this.names[i] as string,
        isRegularType(rec.typeflag),
        { headerOffset: rec.headerOffset, dataOffset: rec.dataOffset, size: rec.size },
        rec.end,
      );
    });
    grouper.close();
    if (grouper.samples.length !== this.samples) {
      throw new SadpError(
        'SADP_INTERNAL',
        `${this.key}: ${grouper.samples.length} samples read back from ${this.samples} written`,
      );
    }
    return { ...info, samples: grouper.samples, extensions: grouper.extensions };
  }

  abort(err: unknown): void {
    this.pack.destroy(err instanceof Error ? err : new Error(String(err)));
  }
}

export async function buildShards(
  source: SampleSource,
  options: BuildShardsOptions,
): Promise<DatasetManifest> {
  const { signal } = options;
  const prefix = options.prefix ?? BUILD_DEFAULTS.prefix;
  const shardBytes = options.shardBytes ?? BUILD_DEFAULTS.shardBytes;
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) {
    throw new SadpError(
      'SADP_INVALID_OPTION',
      `shard prefix ${JSON.stringify(prefix)} must match [A-Za-z0-9_.-]+`,
      {
        status: Status.INVALID_ARGUMENT,
      },
    );
  }
  const store = options.store ?? openStore(options.out, { s3: options.s3, client: options.client });
  const mtime = options.mtime ?? DEFAULT_MTIME;
  const total = source.count ? await source.count() : undefined;
  const shards: ShardEntry[] = [];
  const fields = new Set<string>();
  let nextId = 0;
  let bytes = 0;
  let sink: ShardSink | undefined;

  const finishShard = async (): Promise<void> => {
    if (!sink) return;
    const s = sink;
    sink = undefined;
    const { size, etag, samples, extensions } = await s.close();
    for (const ext of extensions) fields.add(ext);
    const firstId = nextId;
    const indexKey = `${INDEX_DIR}/${s.key.replace(/\.tar$/, '')}.idx.json`;
    const index: ShardIndex = {
      format: 'sadp-shard-index',
      version: 1,
      shard: s.key,
      size,
      etag,
      firstId,
      samples,
    };
    await store.put(indexKey, Buffer.from(JSON.stringify(index)), {
      signal,
      contentType: 'application/json',
    });
    const sampleBytes = samples.reduce((sum, x) => sum + (x.end - x.offset), 0);
    shards.push({
      url: s.key,
      size,
      etag,
      samples: samples.length,
      firstId,
      index: indexKey,
      bytes: sampleBytes,
    });
    nextId += samples.length;
    bytes += sampleBytes;
  };

  let seen = 0;
  try {
    for await (const sample of source.samples(signal)) {
      throwIfCancelled(signal, `building shards in ${store.url}`);
      checkSample(sample);
      const size = estimateBytes(sample);
      if (sink && sink.samples > 0 && sink.estimated + size > shardBytes) await finishShard();
      sink ??= new ShardSink(store, shardFileName(prefix, shards.length), mtime, signal);
      await sink.add(sample);
      seen++;
      options.onProgress?.({ samples: seen, total, bytes: bytes + sink.estimated, shards: shards.length });
    }
    await finishShard();
  } catch (err) {
    sink?.abort(err);
    throw err;
  }
  for (const extra of source.extras ? await source.extras() : []) {
    await store.put(extra.key, extra.body, { signal });
  }
  const manifest: DatasetManifest = {
    format: 'sadp-webdataset',
    version: 1,
    samples: nextId,
    bytes,
    fields: [...fields].sort(),
    shards,
    source: source.name,
    createdAt: new Date().toISOString(),
  };
  await store.put(MANIFEST_KEY, Buffer.from(JSON.stringify(manifest, null, 1)), {
    signal,
    contentType: 'application/json',
  });
  options.onProgress?.({ samples: seen, total, bytes, shards: shards.length });
  return manifest;
}
