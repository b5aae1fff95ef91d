// Shard layer benchmark.
//
//   npm run bench:shards [-- --quick]
//
// 1. Build: synthetic ImageNet-shaped samples (mean 110 KB) into 64 MiB
//    shards, to a local directory and to the embedded S3 server (same
//    process): samples/s and MiB/s.
// 2. Index: `indexShards` over those shards (sequential streaming reads,
//    4 at a time): shards/s and MiB/s.
// 3. Open at ImageNet scale: openDataset over N = 1,281,167 samples in 1,282
//    shard indexes (metadata only, written to a local directory; --quick:
//    a tenth): wall time and heap growth, i.e. what a loader pays at start.
//
// Writes bench/results/shards.json.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { packageRoot } from '../common/paths.js';
import {
  buildShards,
  indexShards,
  openDataset,
  shardFileName,
  syntheticSampleSize,
  syntheticSource,
  type DatasetManifest,
  type ShardIndex,
} from '../loader/index.js';
import { createS3Client, s3OptionsForEmbedded, startEmbeddedS3 } from '../storage/index.js';

const quick = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const log = (line: string): void => void process.stdout.write(`${line}\n`);

function progress(label: string, total: number): (done: number, bytes: number) => void {
  const started = Date.now();
  let last = 0;
  return (done, bytes) => {
    const now = Date.now();
    if (now - last < 3000 && done < total) return;
    last = now;
    const secs = (now - started) / 1000;
    const rate = done / Math.max(secs, 1e-3);
    log(
      `  ${label}: ${done}/${total} (${round(bytes / MiB / Math.max(secs, 1e-3), 1)} MiB/s, ` +
        `ETA ${round((total - done) / Math.max(rate, 1e-9), 0)} s)`,
    );
  };
}

async function timeIt<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function buildAndIndex(
  name: string,
  out: string,
  count: number,
  client?: ReturnType<typeof createS3Client>,
): Promise<Record<string, number>> {
  log(`${name}: building ${count} synthetic samples into ${out}`);
  const report = progress(`build ${name}`, count);
  const built = await timeIt(() =>
    buildShards(syntheticSource({ count, seed: 1 }), {
      out,
      client,
      onProgress: (p) => report(p.samples, p.bytes),
    }),
  );
  const manifest: DatasetManifest = built.value;
  const bytes = manifest.shards.reduce((a, s) => a + s.size, 0);
  const last = shardFileName('train', manifest.shards.length - 1).slice('train-'.length, -'.tar'.length);
  const pattern = `${out}/train-{000000..${last}}.tar`;
  log(`${name}: indexing ${manifest.shards.length} shards`);
  const ireport = progress(`index ${name}`, manifest.shards.length);
  const indexed = await timeIt(() =>
    indexShards(pattern, {
      out: `${out}/reindexed.json`,
      client,
      onProgress: (p) => ireport(p.shardsDone, p.bytes),
    }),
  );
  if (indexed.value.samples !== count)
    throw new Error(`indexed ${indexed.value.samples} of ${count} samples`);
  const result = {
    samples: count,
    shards: manifest.shards.length,
    mib: round(bytes / MiB),
    buildSeconds: round(built.seconds, 2),
    buildSamplesPerSec: round(count / built.seconds, 0),
    buildMiBPerSec: round(bytes / MiB / built.seconds),
    indexSeconds: round(indexed.seconds, 2),
    indexShardsPerSec: round(manifest.shards.length / indexed.seconds),
    indexMiBPerSec: round(bytes / MiB / indexed.seconds),
  };
  log(`${name}: ${JSON.stringify(result)}`);
  return result;
}

/** Writes index files and a manifest for a synthetic ImageNet-sized dataset (no shard bytes). */
async function writeMetadata(root: string, samples: number, shards: number): Promise<void> {
  await mkdir(join(root, 'index'), { recursive: true });
  const entries: DatasetManifest['shards'] = [];
  const per = Math.ceil(samples / shards);
  let id = 0;
  for (let s = 0; s < shards; s++) {
    const n = Math.min(per, samples - id);
    const url = shardFileName('train', s);
    const index: ShardIndex = {
      format: 'sadp-shard-index',
      version: 1,
      shard: url,
      size: 0,
      etag: `e${s}`,
      firstId: id,
      samples: [],
    };
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const key = String(id + i).padStart(7, '0');
      const jpg = syntheticSampleSize(id + i);
      const cls = { name: `${key}.cls`, ext: 'cls', headerOffset: offset, dataOffset: offset + 512, size: 3 };
      const jpgStart = offset + 1024;
      const end = jpgStart + 512 + Math.ceil(jpg / 512) * 512;
      index.samples.push({
        key,
        offset,
        end,
        members: [
          cls,
          { name: `${key}.jpg`, ext: 'jpg', headerOffset: jpgStart, dataOffset: jpgStart + 512, size: jpg },
        ],
      });
      offset = end;
    }
    index.size = offset + 1024;
    const indexKey = `index/${url.replace(/\.tar$/, '')}.idx.json`;
    await writeFile(join(root, indexKey), JSON.stringify(index));
    entries.push({
      url,
      size: index.size,
      etag: index.etag,
      samples: n,
      firstId: id,
      index: indexKey,
      bytes: offset,
    });
    id += n;
  }
  const manifest: DatasetManifest = {
    format: 'sadp-webdataset',
    version: 1,
    samples,
    bytes: entries.reduce((a, e) => a + e.bytes, 0),
    fields: ['cls', 'jpg'],
    shards: entries,
    source: 'bench:metadata-only',
    createdAt: new Date().toISOString(),
  };
  await writeFile(join(root, 'manifest.json'), JSON.stringify(manifest));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-shards-'));
  const s3 = await startEmbeddedS3({ dataDir: join(dir, 's3'), buckets: ['bench'] });
  const client = createS3Client(s3OptionsForEmbedded(s3));
  try {
    const count = quick ? 2_000 : 12_000; // ~0.2 / 1.3 GB
    const local = await buildAndIndex('local', join(dir, 'local'), count);
    const remote = await buildAndIndex('s3', 's3://bench/ds', count, client);

    const samples = quick ? 128_117 : 1_281_167;
    const shards = quick ? 129 : 1_282;
    log(`open: writing metadata for ${samples} samples in ${shards} shard indexes`);
    const meta = join(dir, 'meta');
    await writeMetadata(meta, samples, shards);
    global.gc?.();
    const mem = (): number => {
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const heapBefore = mem();
    const opened = await timeIt(() => openDataset(join(meta, 'manifest.json')));
    global.gc?.();
    const heapAfter = mem();
    const ds = opened.value;
    const lookup = await timeIt(async () => {
      let sum = 0;
      for (let id = 0; id < ds.size; id += 997) sum += ds.key(id).length;
      return Promise.resolve(sum);
    });
    // The range reader asks for a shard's index per fetched range; with a
    // global shuffle the shards come in random order (cache misses).
    const lookups = quick ? 2_000 : 10_000;
    let state = 12345;
    const materialize = await timeIt(async () => {
      let n = 0;
      for (let i = 0; i < lookups; i++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        const index = ds.shardIndex(state % ds.shardCount);
        n += index.samples[state % index.samples.length]?.members.length ?? 0;
      }
      return Promise.resolve(n);
    });
    const open = {
      samples,
      shards,
      seconds: round(opened.seconds, 2),
      /** JS heap + typed arrays retained by the open dataset. */
      memoryMiB: round((heapAfter - heapBefore) / MiB),
      keyLookupsPerSec: round(Math.ceil(ds.size / 997) / lookup.seconds, 0),
      randomShardIndexPerSec: round(lookups / materialize.seconds, 0),
    };
    log(`open: ${JSON.stringify(open)}`);
    const result = {
      bench: 'shards',
      quick,
      machine: { cpus: cpus().length, loadavg: loadavg().map((x) => round(x, 2)), node: process.version },
      build: { local, s3: remote },
      open,
      createdAt: new Date().toISOString(),
    };
    const out = join(packageRoot, 'bench', 'results', 'shards.json');
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${out}`);
  } finally {
    client.destroy();
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
