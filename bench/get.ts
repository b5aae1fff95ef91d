// CPU cost of one GET on the range reader's path, before and after the lean
// GET path, side by side in one run.
//
//   npm run bench:get [-- --quick]
//
// Serves one object with Debian's nginx (Range, ETag, If-Match; started here
// on a free loopback port; `apt-get install -y nginx-light`): s3rver would
// spend ~0.9 ms of CPU per GET on the same 2 cores. Then, in alternating
// rounds so machine noise hits both alike, measures the client process's CPU
// time (user + system) per GET of
//   - `sdk`:  fetchRange over the store's stream (AWS SDK GetObject + stream
//             wrapper + idle timer): the reader's path before the lean GET,
//   - `lean`: fetchRange over S3Store.readInto (undici + SigV4, chunks into
//             the destination buffer),
//   - `bare`: undici Pool.dispatch with the same signer, a raw handler
//             writing into a fresh buffer and nothing else (no retry, ETag
//             or range checks, idle timer, abort listener): the floor the
//             lean path's own per-GET overhead is measured against,
// for 110 KB and 4 KB ranges at 4 GETs in flight, and per MB of a whole
// 16 MB read. Then the range reader end to end (plan, GETs, cut) over
// synthetic ImageNet-shaped shards (110 KB lognormal samples) served by the
// same nginx: CPU per delivered sample at r = 0 and 0.5, SDK path vs lean
// path (planner `ranges`, the same GETs), and lean with planner `auto`.
// Writes bench/results/get.json.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { startNginx } from '../test/helpers/nginx.js';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../common/paths.js';
import { forEachLimited } from '../common/pool.js';
import { fetchRange, type FetchObserver, type RetryConfig } from '../loader/fetch/fetch-range.js';
import { createRangeReader, type RangeReaderOptions } from '../loader/fetch/index.js';
import { buildShards, openDataset, syntheticSource, type Dataset } from '../loader/shards/index.js';
import { createS3Client, openStore, type ObjectStore, type S3Client } from '../storage/index.js';
import { createGetSigner, EMPTY_SHA256 } from '../storage/sigv4-get.js';
import { Pool } from 'undici';
import { mulberry32 } from '../test/helpers/random.js';

const quick = process.argv.includes('--quick');
const WARMUP = quick ? 500 : 2_000;
const PER_ROUND = quick ? 500 : 1_500;
const ROUNDS = quick ? 2 : 4;
const IN_FLIGHT = 4;
const OBJECT_BYTES = 16 * 1024 * 1024;
const BUCKET = 'bench';
const KEY = 'object.bin';

const retry: RetryConfig = {
  maxAttempts: 3,
  baseDelayMs: 10,
  maxDelayMs: 100,
  idleTimeoutMs: 15_000,
  random: Math.random,
};
const observer: FetchObserver = { request() {}, received() {}, retry() {} };

/** The store seen through getStream only: the reader's pre-lean path. */
function streamOnly(store: ObjectStore): ObjectStore {
  return {
    url: store.url,
    put: (k, b, o) => store.put(k, b, o),
    get: (k, o) => store.get(k, o),
    getStream: (k, o) => store.getStream(k, o),
    head: (k, o) => store.head(k, o),
    list: (p, o) => store.list(p, o),
    delete: (k, o) => store.delete(k, o),
  };
}

type Get = (start: number, end: number) => Promise<unknown>;

function viaFetchRange(store: ObjectStore, etag: string): Get {
  const signal = new AbortController().signal;
  return (start, end) =>
    fetchRange(
      { store, key: KEY, label: `s3://${BUCKET}/${KEY}`, start, end, etag },
      retry,
      observer,
      signal,
    );
}

/** undici Pool.dispatch + the lean path's signer, body into a fresh buffer, nothing else. */
function bareGet(endpoint: string, etag: string): { get: Get; close(): Promise<void> } {
  const pool = new Pool(endpoint, { connections: IN_FLIGHT });
  const signer = createGetSigner(new URL(endpoint).host, 'us-east-1');
  const creds = { accessKeyId: 'bench', secretAccessKey: 'bench' };
  const path = `/${BUCKET}/${KEY}`;
  const quoted = `"${etag}"`;
  const get: Get = (start, end) =>
    new Promise<number>((resolve, reject) => {
      const amzDate = new Date().toISOString().replace(/[:-]|\.\d{3}/g, '');
      const dest = Buffer.allocUnsafe(end - start);
      let written = 0;
      pool.dispatch(
        {
          path,
          method: 'GET',
          headers: [
            'range',
            `bytes=${start}-${end - 1}`,
            'x-amz-date',
            amzDate,
            'x-amz-content-sha256',
            EMPTY_SHA256,
            'if-match',
            quoted,
            'authorization',
            signer.authorization(path, creds, amzDate, quoted),
          ],
        },
        {
          onConnect() {},
          onHeaders: () => true,
          onData(chunk: Buffer) {
            dest.set(chunk, written);
            written += chunk.length;
            return true;
          },
          onComplete: () => resolve(written),
          onError: reject,
        },
      );
    });
  return { get, close: () => pool.close() };
}

/** CPU us (user + system) per GET of `count` GETs of `length` bytes, `IN_FLIGHT` at a time. */
async function cpuPerGet(get: Get, length: number, count: number): Promise<number> {
  const starts = Array.from({ length: count }, (_, i) => ((i % 64) * 251_659) % (OBJECT_BYTES - length));
  const before = process.cpuUsage();
  await forEachLimited(starts, { concurrency: IN_FLIGHT }, async (start) => {
    await get(start, start + length);
  });
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

/**
 * Builds shards into nginx's tree and rewrites the manifest and indexes with
 * nginx's ETags (the reader pins every GET to the indexed ETag).
 */
async function nginxDataset(dir: string, client: S3Client, samples: number): Promise<Dataset> {
  const root = join(dir, 'www', 'bench', 'ds');
  await buildShards(syntheticSource({ count: samples }), { out: root, shardBytes: 16 * 1024 * 1024 });
  const store = openStore('s3://bench/ds', { client });
  const local = openStore(root);
  const manifest = JSON.parse(Buffer.from(await local.get('manifest.json')).toString('utf8')) as {
    shards: Array<{ url: string; index: string; etag: string }>;
  };
  for (const shard of manifest.shards) {
    const info = await store.head(shard.url);
    if (!info) throw new Error(`nginx does not serve ${shard.url}`);
    shard.etag = info.etag;
    const index = JSON.parse(Buffer.from(await local.get(shard.index)).toString('utf8')) as { etag: string };
    index.etag = info.etag;
    await writeFile(join(root, shard.index), JSON.stringify(index));
  }
  await writeFile(join(root, 'manifest.json'), JSON.stringify(manifest));
  return openDataset('s3://bench/ds/manifest.json', { client });
}

/** The dataset seen through a store without readInto: the reader's pre-lean path. */
function viaStreams(dataset: Dataset): Dataset {
  return Object.create(dataset, { store: { value: streamOnly(dataset.store) } }) as Dataset;
}

/** CPU us per delivered sample reading `ids` in windows of 256, one window ahead (as a loader prefetches). */
async function cpuPerSample(dataset: Dataset, ids: number[], options: RangeReaderOptions): Promise<number> {
  const reader = createRangeReader({ concurrency: 16, ...options });
  const before = process.cpuUsage();
  let pending = reader.read(dataset, ids.slice(0, 256));
  for (let w = 256; ; w += 256) {
    const next = w < ids.length ? reader.read(dataset, ids.slice(w, w + 256)) : undefined;
    next?.catch(() => undefined);
    await pending;
    if (!next) break;
    pending = next;
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / ids.length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-get-'));
  const data = randomBytes(OBJECT_BYTES);
  const server = await startNginx(dir);
  if (!server) throw new Error('bench:get needs nginx on the PATH (apt-get install -y nginx-light)');
  await mkdir(join(dir, 'www', BUCKET), { recursive: true });
  await writeFile(join(dir, 'www', BUCKET, KEY), data);
  try {
    const client = createS3Client({
      endpoint: server.endpoint,
      maxAttempts: 1,
      accessKeyId: 'bench',
      secretAccessKey: 'bench',
    });
    const lean = openStore(`s3://${BUCKET}`, { client });
    const sdk = streamOnly(lean);
    const info = await lean.head(KEY);
    if (!info) throw new Error('bench object missing');
    const paths = { sdk, lean };
    const bare = bareGet(server.endpoint, info.etag);
    const gets: Record<string, Get> = {
      sdk: viaFetchRange(sdk, info.etag),
      lean: viaFetchRange(lean, info.etag),
      bare: bare.get,
    };
    const results: Record<string, Record<string, number>> = {};
    for (const [label, length] of [
      ['range110k', 110_000],
      ['range4k', 4_096],
    ] as const) {
      for (const get of Object.values(gets)) await cpuPerGet(get, length, WARMUP);
      const samples: Record<string, number[]> = { sdk: [], lean: [], bare: [] };
      for (let round = 0; round < ROUNDS; round++) {
        const entries = Object.entries(gets);
        if (round % 2 === 1) entries.reverse();
        for (const [name, get] of entries) samples[name]?.push(await cpuPerGet(get, length, PER_ROUND));
      }
      const sdkUs = median(samples.sdk ?? []);
      const leanUs = median(samples.lean ?? []);
      const bareUs = median(samples.bare ?? []);
      results[label] = { sdkUs, leanUs, bareUs, ratio: leanUs / sdkUs, leanOverBare: leanUs / bareUs };
      console.log(
        `${label}: sdk ${sdkUs.toFixed(0)} us/GET, lean ${leanUs.toFixed(0)} us/GET, bare ${bareUs.toFixed(0)} us/GET, ` +
          `lean/sdk ${(leanUs / sdkUs).toFixed(2)}, lean/bare ${(leanUs / bareUs).toFixed(2)}`,
      );
    }
    await bare.close();
    // Whole object: CPU per MB, 4 reads per path per round, the order alternating by round.
    const whole: Record<string, number[]> = { sdk: [], lean: [] };
    const wholeReads = 4;
    for (let round = 0; round < 2 * ROUNDS + 1; round++) {
      const entries = Object.entries(paths);
      if (round % 2 === 1) entries.reverse();
      for (const [name, store] of entries) {
        const before = process.cpuUsage();
        for (let k = 0; k < wholeReads; k++) {
          await fetchRange(
            { store, key: KEY, label: KEY, start: 0, end: OBJECT_BYTES, etag: info.etag },
            retry,
            observer,
            new AbortController().signal,
          );
        }
        const used = process.cpuUsage(before);
        if (round > 0)
          whole[name]?.push((used.user + used.system) / wholeReads / (OBJECT_BYTES / 1024 / 1024));
      }
    }
    const sdkMb = median(whole.sdk ?? []);
    const leanMb = median(whole.lean ?? []);
    results.wholePerMB = { sdkUs: sdkMb, leanUs: leanMb, ratio: leanMb / sdkMb };
    console.log(`whole 16 MB: sdk ${sdkMb.toFixed(0)} us/MB, lean ${leanMb.toFixed(0)} us/MB`);
    // The range reader end to end.
    const samples = quick ? 300 : 900;
    const dataset = await nginxDataset(dir, client, samples);
    const sdkDataset = viaStreams(dataset);
    const reader: Record<string, Record<string, number>> = {};
    for (const r of [0, 0.5]) {
      const coin = mulberry32(7);
      const ids = Array.from({ length: dataset.size }, (_, i) => i).filter(() => coin() >= r);
      // Shuffled windows: a loader's batches are random draws.
      const order = mulberry32(8);
      for (let i = ids.length - 1; i > 0; i--) {
        const j = Math.floor(order() * (i + 1));
        [ids[i], ids[j]] = [ids[j] as number, ids[i] as number];
      }
      const variants: Array<[string, Dataset, RangeReaderOptions]> = [
        ['sdkRanges', sdkDataset, { planner: 'ranges' }],
        ['leanRanges', dataset, { planner: 'ranges' }],
        ['leanAuto', dataset, { planner: 'auto' }],
      ];
      for (const [, ds, options] of variants) await cpuPerSample(ds, ids, options);
      const runs: Record<string, number[]> = {};
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, ds, options] of variants)
          (runs[name] ??= []).push(await cpuPerSample(ds, ids, options));
      }
      const row: Record<string, number> = { samples: ids.length };
      for (const [name] of variants) row[name] = median(runs[name] ?? []);
      reader[`r${r}`] = row;
      console.log(
        `reader r=${r}: us per delivered sample: sdk/ranges ${row.sdkRanges?.toFixed(0)}, lean/ranges ${row.leanRanges?.toFixed(0)}, lean/auto ${row.leanAuto?.toFixed(0)}`,
      );
    }
    client.destroy();
    const out = {
      date: new Date().toISOString(),
      command: `npm run bench:get${quick ? ' -- --quick' : ''}`,
      server: 'nginx',
      machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
      inFlight: IN_FLIGHT,
      requestsPerRound: PER_ROUND,
      rounds: ROUNDS,
      warmup: WARMUP,
      results,
      reader,
    };
    await writeFile(
      join(packageRoot, 'bench', 'results', quick ? 'get-quick.json' : 'get.json'),
      `${JSON.stringify(out, null, 2)}\n`,
    );
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  // undici keeps idle sockets unref'd; nothing else holds the loop.
}

await main();
