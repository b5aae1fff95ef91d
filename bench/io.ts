// I/O benchmark of the range reader against whole-shard reading.
//
//   npm run bench:io [-- --quick]
//
// 1. Writes synthetic ImageNet-shaped shards (the shard writer's synthetic
//    source: .jpg of lognormal size, mean 110 KB, sigma 0.5, plus .cls) into
//    an embedded S3 server running in a child process (so server and reader
//    do not share one event loop, as with a remote S3).
// 2. For pruning ratios r = 0, 0.3, 0.5, 0.7 with a uniform random selection
//    (each sample kept with probability 1 - r), reads the selected samples
//    with the range reader and with a whole-shard sequential reader (GET each
//    shard whole and parse it, like WebDataset / MosaicML Streaming), side by
//    side: bytes fetched / bytes of the selected samples, GETs, wall time. Both
//    on plain loopback and through the fault proxy adding latency to every
//    request (closer to S3's first-byte latency). Both readers' outputs are
//    digested and must match.
// 3. A gapBytes sweep (0, 4 KiB, 16 KiB, 64 KiB, 128 KiB, 1 MiB) to choose the
//    reader's default: the largest gap whose bytes ratio stays <= 1.05 at
//    every r.
// 4. A plan-only dry run at ImageNet scale (N = 1,281,167 in 1,282 shards,
//    synthetic sizes, metadata only) over the paper's 110-epoch schedule at
//    r = 0.35, r_max = 0.55 (Eq. 42): bytes and GETs per epoch and in total,
//    range reader vs whole-shard reading; GETs and TB per epoch for each
//    planner mode and cost model, planned over the whole epoch (the bound)
//    and as the loader plans (per rank and prefetch window, global and
//    shard-buffer shuffle). `-- --dry-run` runs only this part.
//
// Writes bench/results/io.json and prints tables.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { extract } from 'tar-stream';
import { packageRoot } from '../common/paths.js';
import { forEachLimited } from '../common/pool.js';
import {
  DEFAULT_GAP_BYTES,
  DEFAULT_MAX_WASTE_RATIO,
  createRangeReader,
  planRanges,
  planReads,
  shufflePlan,
  sortUniqueIds,
  READ_PLANNER_MODES,
  DEFAULT_READ_COST,
  type ReadCostModel,
  type ReadPlannerMode,
  type FetchedSample,
  type SampleLayout,
} from '../loader/index.js';
import {
  buildShards,
  openDataset,
  padded,
  splitMemberName,
  syntheticSampleSize,
  syntheticSource,
  type Dataset,
} from '../loader/index.js';
import { pruneRatioAt } from '../scorer/index.js';
import { createS3Client, startEmbeddedS3, type S3Client } from '../storage/index.js';
import { startFaultProxy } from '../test/helpers/s3-fault-proxy.js';

const MiB = 1024 * 1024;
const RATIOS = [0, 0.3, 0.5, 0.7];
const SWEEP_RATIOS = [0.3, 0.5, 0.7];
const GAPS = [0, 4096, 16_384, 65_536, 131_072, MiB];
const TARGET_RATIO = 1.05;
const MAX_REQUEST_BYTES = 8 * MiB;
const BUCKET = 'bench';

interface Config {
  samples: number;
  shardBytes: number;
  /** Selected samples per read() call, as a loader window would pass them. */
  window: number;
  concurrency: number;
  /** The shaped link: latency added to every request, and one shared bandwidth cap for all bodies. */
  latencyMs: number;
  bytesPerSecond: number;
  /** Ratios and gaps at which the gap sweep does real reads (the rest is planned only). */
  sweepReadRatios: number[];
  sweepReadGaps: number[];
  /** Dry-run epochs at which the gap sweep is planned (every epoch for the default gap). */
  dryRunSweepEvery: number;
}

const QUICK: Config = {
  samples: 1200,
  shardBytes: 16 * MiB,
  window: 512,
  concurrency: 16,
  latencyMs: 20,
  bytesPerSecond: 100e6,
  sweepReadRatios: [0.5],
  sweepReadGaps: [0, 65_536, MiB],
  dryRunSweepEvery: 10,
};
const FULL: Config = {
  samples: 10_000,
  shardBytes: 64 * MiB,
  window: 512,
  concurrency: 16,
  latencyMs: 20,
  bytesPerSecond: 100e6,
  sweepReadRatios: SWEEP_RATIOS,
  sweepReadGaps: GAPS,
  dryRunSweepEvery: 1,
};

// ---------------------------------------------------------------- helpers

const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function progress(label: string, done: number, total: number, startedMs: number, unit: string): void {
  const s = (performance.now() - startedMs) / 1000;
  const rate = done / Math.max(s, 1e-9);
  const eta = (total - done) / Math.max(rate, 1e-9);
  log(`  ${label}: ${done}/${total} ${unit}, ${rate.toFixed(1)} ${unit}/s, ETA ${eta.toFixed(0)} s`);
}

/** Counter-based uniform in (0, 1) of (seed, stream, i): reproducible selections without state. */
function hashUniform(seed: number, stream: number, i: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35) ^ i;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x27d4eb2d);
  h ^= h >>> 15;
  return ((h >>> 0) + 0.5) / 2 ** 32;
}

/** Ids kept with probability 1 - r, ascending. */
function select(n: number, r: number, seed: number, stream: number, out?: Uint32Array): Uint32Array {
  const ids = out ?? new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) if (hashUniform(seed, stream, i) >= r) ids[k++] = i;
  return ids.subarray(0, k);
}

/** Order-independent digest of one sample's fields. */
class SampleDigest {
  private readonly acc = Buffer.alloc(16);
  add(ext: string, data: Uint8Array): void {
    const d = createHash('md5').update(ext).update('\0').update(data).digest();
    for (let i = 0; i < 16; i++) this.acc[i]! ^= d[i]!;
  }
  get value(): Buffer {
    return this.acc;
  }
}

interface ReadResult {
  reader: 'range' | 'whole-shard';
  seconds: number;
  /** GETs issued, retries included. */
  gets: number;
  /** GETs that retried a failed attempt (loopback keep-alive races, timeouts under load). */
  retries: number;
  bytesFetched: number;
  bytesSelected: number;
  /** bytesFetched / bytesSelected */
  ratio: number;
  samples: number;
  mbPerSecond: number;
  digest: string;
}

function finish(
  reader: ReadResult['reader'],
  started: number,
  gets: number,
  retries: number,
  bytesFetched: number,
  bytesSelected: number,
  digests: Buffer[],
): ReadResult {
  const seconds = (performance.now() - started) / 1000;
  const all = createHash('sha256');
  for (const d of digests) all.update(d);
  return {
    reader,
    seconds: round(seconds),
    gets,
    retries,
    bytesFetched,
    bytesSelected,
    ratio: round(bytesFetched / Math.max(1, bytesSelected), 4),
    samples: digests.length,
    mbPerSecond: round(bytesSelected / 1e6 / seconds, 1),
    digest: all.digest('hex').slice(0, 16),
  };
}

async function readRanges(
  dataset: Dataset,
  ids: Uint32Array,
  gapBytes: number,
  config: Config,
): Promise<ReadResult> {
  const reader = createRangeReader({
    // The fixed gap rule this benchmark sweeps (and plans with planRanges below).
    planner: 'ranges',
    gapBytes,
    concurrency: config.concurrency,
    maxRequestBytes: MAX_REQUEST_BYTES,
  });
  const digests: Buffer[] = [];
  const started = performance.now();
  // One window is consumed while the next one is fetched, as a loader prefetches.
  const fetchWindow = (w: number): Promise<FetchedSample[]> | undefined => {
    if (w >= ids.length) return undefined;
    const p = reader.read(dataset, ids.subarray(w, w + config.window));
    p.catch(() => undefined); // awaited below; this only keeps a failure of a later window from going unhandled first
    return p;
  };
  let pending = fetchWindow(0);
  for (let w = 0; pending; w += config.window) {
    const samples = await pending;
    pending = fetchWindow(w + config.window);
    for (const s of samples) {
      const d = new SampleDigest();
      for (const [ext, data] of Object.entries(s.fields)) d.add(ext, data);
      digests.push(Buffer.from(d.value));
    }
  }
  const { requests, retries, bytesRequested, bytesDelivered } = reader.stats;
  return finish('range', started, requests, retries, bytesRequested, bytesDelivered, digests);
}

/** GET each shard whole and parse it with tar-stream, keeping the selected samples (WebDataset-style). */
async function readWholeShards(dataset: Dataset, ids: Uint32Array, config: Config): Promise<ReadResult> {
  const selected = new Uint8Array(dataset.size);
  for (const id of ids) selected[id] = 1;
  const digests = new Map<number, Buffer>();
  let bytesFetched = 0;
  let bytesSelected = 0;
  const started = performance.now();
  await forEachLimited(dataset.manifest.shards, { concurrency: config.concurrency }, async (entry, shard) => {
    const body = await dataset.store.getStream(dataset.shardKey(shard), { ifMatch: entry.etag });
    const ex = extract();
    let id = entry.firstId - 1;
    let key: string | undefined;
    let digest: SampleDigest | undefined;
    const parse = (async () => {
      for await (const member of ex) {
        const name = splitMemberName(member.header.name);
        if (name.key !== key) {
          if (digest) digests.set(id, Buffer.from(digest.value));
          key = name.key;
          id++;
          digest = selected[id] ? new SampleDigest() : undefined;
          if (digest) bytesSelected += dataset.ends[id]! - dataset.offsets[id]!;
        }
        if (!digest) {
          member.resume(); // drained, as every tar-stream entry must be
          continue;
        }
        const parts: Buffer[] = [];
        for await (const chunk of member as AsyncIterable<Buffer>) parts.push(chunk);
        digest.add(name.ext, Buffer.concat(parts));
      }
      if (digest) digests.set(id, Buffer.from(digest.value));
    })();
    const count = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        bytesFetched += chunk.length;
        yield chunk;
      }
    };
    await Promise.all([pipeline(body, count, ex), parse]);
  });
  const ordered = Array.from(ids, (id) => digests.get(id) ?? Buffer.alloc(16));
  return finish('whole-shard', started, dataset.shardCount, 0, bytesFetched, bytesSelected, ordered);
}

// ---------------------------------------------------------------- S3 server in a child process

interface ServerInfo {
  /** The embedded S3 server. */
  endpoint: string;
  /** The fault proxy in front of it, shaping every request (latency + shared bandwidth). */
  shapedEndpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

interface ChildS3 extends ServerInfo {
  stop(): Promise<void>;
}

/** Child mode: serves S3 and the shaping proxy, so neither shares the reader's event loop. */
async function serveS3(dataDir: string, latencyMs: number, bytesPerSecond: number): Promise<void> {
  const s3 = await startEmbeddedS3({ dataDir, buckets: [BUCKET] });
  const proxy = await startFaultProxy({
    target: s3.endpoint,
    rules: [
      { fault: 'latency', latencyMs, method: '*', path: /./ },
      { fault: 'bandwidth', bytesPerSecond, method: '*', path: /./ },
    ],
  });
  const info: ServerInfo = {
    endpoint: s3.endpoint,
    shapedEndpoint: proxy.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
  };
  process.send?.(info);
  process.once('disconnect', () => {
    void proxy
      .close()
      .then(() => s3.close())
      .finally(() => process.exit(0));
  });
}

async function startChildS3(dataDir: string, config: Config): Promise<ChildS3> {
  const child = fork(
    fileURLToPath(import.meta.url),
    ['--s3-server', dataDir, String(config.latencyMs), String(config.bytesPerSecond)],
    { stdio: 'inherit' },
  );
  const info = await new Promise<ServerInfo>((resolve, reject) => {
    child.once('message', (m) => resolve(m as ServerInfo));
    child.once('exit', (code) => reject(new Error(`embedded S3 child exited with ${code}`)));
  });
  return {
    ...info,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

// ---------------------------------------------------------------- dry run at ImageNet scale

interface DryRunEpoch {
  epoch: number;
  pruneRatio: number;
  selected: number;
  bytesSelected: number;
  rangeBytes: number;
  rangeGets: number;
  wholeBytes: number;
  wholeGets: number;
}

function imagenetLayout(
  n: number,
  shards: number,
): SampleLayout & { shardBytes: number; datasetBytes: number } {
  const offsets = new Float64Array(n);
  const ends = new Float64Array(n);
  const shardIds = new Uint32Array(n);
  const base = Math.floor(n / shards);
  const larger = n - base * shards; // the first `larger` shards hold one sample more
  let id = 0;
  let shardBytes = 0;
  for (let s = 0; s < shards; s++) {
    const count = base + (s < larger ? 1 : 0);
    let pos = 0;
    for (let j = 0; j < count; j++, id++) {
      // What the shard writer emits for a synthetic sample: .cls (header + one block) and .jpg (header + padded data).
      const bytes = 512 + 512 + 512 + padded(syntheticSampleSize(id));
      offsets[id] = pos;
      ends[id] = pos + bytes;
      shardIds[id] = s;
      pos += bytes;
    }
    shardBytes += pos + 1024; // end-of-archive blocks
  }
  let datasetBytes = 0;
  for (let i = 0; i < n; i++) datasetBytes += ends[i]! - offsets[i]!;
  return { offsets, ends, shardIds, shardBytes, datasetBytes };
}

/**
 * Cost models for the planner dry run (read-planner.ts: the longest of CPU,
 * latency and link time): the reader's prior, S3 at 20 ms first byte over 64
 * GETs in flight and a 10 Gbit/s link, and a CPU-bound loopback (bench:get:
 * ~160 us per GET, ~1.2 us per KB, nothing else binding).
 */
const DRY_RUN_COSTS: Record<string, ReadCostModel> = {
  prior: DEFAULT_READ_COST,
  's3-10gbit': {
    perRequestUs: 150,
    perByteUs: 0.0012,
    latencyUs: 20_000,
    concurrency: 64,
    linkPerByteUs: 1 / 1250,
  },
  loopback: { perRequestUs: 160, perByteUs: 0.0012 },
};

/**
 * The loader plans per prefetch window of one rank, not per epoch: WORLD
 * ranks split the shuffled order, each starts WINDOW_BATCHES batches of
 * BATCH samples at a time as one plan (window-read.ts). With the global
 * shuffle a window holds less than one sample per ImageNet shard, so spans
 * seldom pay; a shard-buffer shuffle puts a window on few shards.
 */
const WORLD = 8;
const BATCH = 256;
const WINDOW_BATCHES = 4;
const WINDOW_EVERY = 10;

interface WindowTotals {
  gets: number;
  bytes: number;
  selectedBytes: number;
  us: number;
}

/** Adds one epoch's plan totals to `totals[key]` (planned GETs, bytes, selected bytes, modelled time). */
function addEpoch(
  totals: Map<string, WindowTotals & { epochs: number }>,
  key: string,
  epoch: WindowTotals,
): void {
  const acc = totals.get(key) ?? { gets: 0, bytes: 0, selectedBytes: 0, us: 0, epochs: 0 };
  acc.gets += epoch.gets;
  acc.bytes += epoch.bytes;
  acc.selectedBytes += epoch.selectedBytes;
  acc.us += epoch.us;
  acc.epochs++;
  totals.set(key, acc);
}

/** Totals over the planned epochs as per-epoch figures (GETs, TB, read amplification, modelled hours). */
function perEpoch(acc: WindowTotals & { epochs: number }): Record<string, number> {
  return {
    epochsPlanned: acc.epochs,
    getsPerEpoch: round(acc.gets / acc.epochs, 0),
    tbPerEpoch: round(acc.bytes / acc.epochs / 1e12, 4),
    fetchedOverSelected: round(acc.bytes / acc.selectedBytes, 4),
    modelledHoursPerEpoch: round(acc.us / acc.epochs / 3.6e9, 3),
  };
}

function planWindows(
  layout: ReturnType<typeof imagenetLayout>,
  ids: Uint32Array,
  perm: Uint32Array,
  mode: ReadPlannerMode,
  cost: ReadCostModel,
): WindowTotals {
  const out: WindowTotals = { gets: 0, bytes: 0, selectedBytes: 0, us: 0 };
  const n = layout.shardIds.length;
  const perRank = Math.ceil(ids.length / WORLD);
  const windowSamples = BATCH * WINDOW_BATCHES;
  const windowIds = new Uint32Array(windowSamples);
  for (let rank = 0; rank < WORLD; rank++) {
    const end = Math.min(ids.length, (rank + 1) * perRank);
    for (let at = rank * perRank; at < end; at += windowSamples) {
      const k = Math.min(windowSamples, end - at);
      for (let i = 0; i < k; i++) windowIds[i] = ids[perm[at + i] as number] as number;
      const p = planReads(layout, sortUniqueIds(windowIds.subarray(0, k), n), {
        mode,
        cost,
        gapBytes: DEFAULT_GAP_BYTES,
        maxRequestBytes: MAX_REQUEST_BYTES,
        maxWasteRatio: DEFAULT_MAX_WASTE_RATIO,
      });
      out.gets += p.count;
      out.bytes += p.bytesRequested;
      out.selectedBytes += p.bytesSelected;
      out.us += p.estimatedUs;
    }
  }
  return out;
}

function dryRun(config: Config): Record<string, unknown> {
  const N = 1_281_167;
  const SHARDS = 1_282;
  const EPOCHS = 110;
  const r = 0.35;
  const rMax = 0.55;
  const started = performance.now();
  log(`dry run: ImageNet scale, N=${N}, ${SHARDS} shards, ${EPOCHS} epochs, r=${r}, r_max=${rMax}`);
  const layout = imagenetLayout(N, SHARDS);
  const scratch = new Uint32Array(N);
  const epochs: DryRunEpoch[] = [];
  const sweep = new Map<number, { bytes: number; gets: number; selectedBytes: number; maxRatio: number }>();
  for (const g of GAPS) sweep.set(g, { bytes: 0, gets: 0, selectedBytes: 0, maxRatio: 0 });
  const planners = new Map<string, WindowTotals & { epochs: number }>();
  const windowed = new Map<string, WindowTotals & { epochs: number }>();
  for (let k = 1; k <= EPOCHS; k++) {
    const rk = pruneRatioAt(k - 1, r, rMax, EPOCHS, N);
    const ids = select(N, rk, 2024, k, scratch);
    const plan = planRanges(layout, ids, {
      gapBytes: DEFAULT_GAP_BYTES,
      maxRequestBytes: MAX_REQUEST_BYTES,
      maxWasteRatio: DEFAULT_MAX_WASTE_RATIO,
    });
    epochs.push({
      epoch: k,
      pruneRatio: round(rk, 4),
      selected: ids.length,
      bytesSelected: plan.bytesSelected,
      rangeBytes: plan.bytesRequested,
      rangeGets: plan.count,
      wholeBytes: layout.shardBytes,
      wholeGets: SHARDS,
    });
    if ((k - 1) % config.dryRunSweepEvery === 0) {
      // The read planner's modes under each cost model.
      for (const [link, cost] of Object.entries(DRY_RUN_COSTS)) {
        for (const mode of READ_PLANNER_MODES) {
          const p = planReads(layout, ids, {
            mode,
            cost,
            gapBytes: DEFAULT_GAP_BYTES,
            maxRequestBytes: MAX_REQUEST_BYTES,
            maxWasteRatio: DEFAULT_MAX_WASTE_RATIO,
          });
          addEpoch(planners, `${link}/${mode}`, {
            gets: p.count,
            bytes: p.bytesRequested,
            selectedBytes: p.bytesSelected,
            us: p.estimatedUs,
          });
        }
      }
      for (const g of GAPS) {
        const p =
          g === DEFAULT_GAP_BYTES
            ? plan
            : planRanges(layout, ids, {
                gapBytes: g,
                maxRequestBytes: MAX_REQUEST_BYTES,
                maxWasteRatio: DEFAULT_MAX_WASTE_RATIO,
              });
        const acc = sweep.get(g)!;
        acc.bytes += p.bytesRequested;
        acc.gets += p.count;
        acc.selectedBytes += p.bytesSelected;
        acc.maxRatio = Math.max(acc.maxRatio, p.bytesRequested / p.bytesSelected);
      }
    }
    if ((k - 1) % WINDOW_EVERY === 0) {
      // As the loader plans: per rank and prefetch window of the shuffled order.
      for (const shuffle of ['global', 'shard-buffer'] as const) {
        const perm = shufflePlan({
          ids,
          seed: 2024n,
          epoch: k,
          mode: shuffle,
          blockShards: 4,
          shardOf: (id) => layout.shardIds[id] as number,
        });
        for (const [link, cost] of Object.entries(DRY_RUN_COSTS)) {
          for (const mode of READ_PLANNER_MODES) {
            addEpoch(windowed, `${link}/${mode}/${shuffle}`, planWindows(layout, ids, perm, mode, cost));
          }
        }
      }
    }
    if (k % 10 === 0) progress('dry run', k, EPOCHS, started, 'epochs');
  }
  const sum = (f: (e: DryRunEpoch) => number): number => epochs.reduce((s, e) => s + f(e), 0);
  const totals = {
    samplesSelected: sum((e) => e.selected),
    bytesSelected: sum((e) => e.bytesSelected),
    rangeBytes: sum((e) => e.rangeBytes),
    rangeGets: sum((e) => e.rangeGets),
    wholeBytes: sum((e) => e.wholeBytes),
    wholeGets: sum((e) => e.wholeGets),
  };
  return {
    datasetSize: N,
    shards: SHARDS,
    epochs: EPOCHS,
    pruneRatio: r,
    maxPruneRatio: rMax,
    selection: 'each sample kept with probability 1 - r_k, uniformly (counter-based hash of seed, epoch, id)',
    gapBytes: DEFAULT_GAP_BYTES,
    maxRequestBytes: MAX_REQUEST_BYTES,
    datasetBytes: layout.datasetBytes,
    shardBytesTotal: layout.shardBytes,
    meanSampleBytes: round(layout.datasetBytes / N, 0),
    totals: {
      ...totals,
      realizedPruneRatio: round(1 - totals.samplesSelected / (N * EPOCHS), 4),
      rangeOverSelected: round(totals.rangeBytes / totals.bytesSelected, 4),
      rangeOverWholeBytes: round(totals.rangeBytes / totals.wholeBytes, 4),
      bytesSavedTB: round((totals.wholeBytes - totals.rangeBytes) / 1e12, 2),
      rangeGetsOverWholeGets: round(totals.rangeGets / totals.wholeGets, 1),
      rangeGetsPerEpochMean: round(totals.rangeGets / EPOCHS, 0),
    },
    gapSweep: GAPS.map((g) => {
      const acc = sweep.get(g)!;
      return {
        gapBytes: g,
        epochsPlanned: Math.ceil(EPOCHS / config.dryRunSweepEvery),
        ratio: round(acc.bytes / acc.selectedBytes, 4),
        maxEpochRatio: round(acc.maxRatio, 4),
        getsPerEpoch: round(acc.gets / Math.ceil(EPOCHS / config.dryRunSweepEvery), 0),
      };
    }),
    planners: [...planners.entries()].map(([key, acc]) => {
      const [link, mode] = key.split('/') as [string, ReadPlannerMode];
      return {
        link,
        cost: DRY_RUN_COSTS[link],
        mode,
        ...perEpoch(acc),
      };
    }),
    plannersPerWindow: {
      world: WORLD,
      batchSize: BATCH,
      windowBatches: WINDOW_BATCHES,
      rows: [...windowed.entries()].map(([key, acc]) => {
        const [link, mode, shuffle] = key.split('/') as [string, ReadPlannerMode, string];
        return {
          link,
          mode,
          shuffle,
          ...perEpoch(acc),
        };
      }),
    },
    perEpoch: epochs,
    seconds: round((performance.now() - started) / 1000, 1),
  };
}

// ---------------------------------------------------------------- main

function table(rows: Array<Record<string, string | number>>): void {
  const cols = Object.keys(rows[0] ?? {});
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(width[i]!)).join('  ');
  process.stdout.write(`${line(cols)}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => String(r[c])))}\n`);
  process.stdout.write('\n');
}

async function openVia(endpoint: string, s3: ChildS3): Promise<{ dataset: Dataset; client: S3Client }> {
  const client = createS3Client({
    endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: 'us-east-1',
    forcePathStyle: true,
    maxAttempts: 1, // the range reader retries itself
    maxSockets: 64,
  });
  const dataset = await openDataset(`s3://${BUCKET}/imagenet-synth/manifest.json`, { client });
  return { dataset, client };
}

export async function runIoBench(quick: boolean): Promise<Record<string, unknown>> {
  const config = quick ? QUICK : FULL;
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();
  log(
    `io bench (${quick ? 'quick' : 'full'}): ${config.samples} samples, ${cpus().length} CPUs, ` +
      `load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-io-'));
  const s3 = await startChildS3(join(dir, 's3'), config);
  const opened: S3Client[] = [];
  try {
    const direct = await (async () => {
      const client = createS3Client({
        endpoint: s3.endpoint,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
        region: 'us-east-1',
        forcePathStyle: true,
      });
      opened.push(client);
      const buildStarted = performance.now();
      let last = 0;
      await buildShards(syntheticSource({ count: config.samples }), {
        out: `s3://${BUCKET}/imagenet-synth`,
        client,
        shardBytes: config.shardBytes,
        onProgress: (p) => {
          if (p.samples - last >= config.samples / 5 || p.samples === config.samples) {
            last = p.samples;
            progress('writing shards', p.samples, config.samples, buildStarted, 'samples');
          }
        },
      });
      return openVia(s3.endpoint, s3);
    })();
    opened.push(direct.client);
    const slow = await openVia(s3.shapedEndpoint, s3);
    opened.push(slow.client);
    const dataset = direct.dataset;
    log(
      `dataset: ${dataset.size} samples in ${dataset.shardCount} shards, ${(dataset.manifest.bytes / 1e6).toFixed(0)} MB`,
    );

    // 2. range reader vs whole-shard reader
    const shapedLink = `+${config.latencyMs} ms, ${config.bytesPerSecond / 1e6} MB/s`;
    const links = [
      { link: 'loopback', dataset: direct.dataset },
      { link: shapedLink, dataset: slow.dataset },
    ];
    const comparison: Array<Record<string, unknown>> = [];
    for (const { link, dataset: ds } of links) {
      for (const [i, r] of RATIOS.entries()) {
        const ids = select(ds.size, r, 7, Math.round(r * 100));
        // Alternate which reader goes first so neither always gets the warmer cache.
        const range = i % 2 === 0 ? await readRanges(ds, ids, DEFAULT_GAP_BYTES, config) : undefined;
        const whole = await readWholeShards(ds, ids, config);
        const rangeResult = range ?? (await readRanges(ds, ids, DEFAULT_GAP_BYTES, config));
        if (rangeResult.digest !== whole.digest || rangeResult.samples !== ids.length) {
          throw new Error(`readers disagree at r=${r} on ${link}: ${rangeResult.digest} vs ${whole.digest}`);
        }
        comparison.push({ link, pruneRatio: r, selected: ids.length, range: rangeResult, wholeShard: whole });
        log(
          `  ${link} r=${r}: range ${rangeResult.gets} GETs ratio ${rangeResult.ratio} ${rangeResult.seconds} s | ` +
            `whole-shard ${whole.gets} GETs ratio ${whole.ratio} ${whole.seconds} s`,
        );
      }
    }

    // 3. gapBytes sweep: planned for every r on this dataset, read for some
    const sweep: Array<Record<string, unknown>> = [];
    for (const r of SWEEP_RATIOS) {
      const ids = select(dataset.size, r, 7, Math.round(r * 100));
      for (const gapBytes of GAPS) {
        // Planned per window, exactly as readRanges fetches.
        let gets = 0;
        let requested = 0;
        let selectedBytes = 0;
        for (let w = 0; w < ids.length; w += config.window) {
          const plan = planRanges(dataset, ids.subarray(w, w + config.window), {
            gapBytes,
            maxRequestBytes: MAX_REQUEST_BYTES,
            maxWasteRatio: DEFAULT_MAX_WASTE_RATIO,
          });
          gets += plan.count;
          requested += plan.bytesRequested;
          selectedBytes += plan.bytesSelected;
        }
        const row: Record<string, unknown> = {
          pruneRatio: r,
          gapBytes,
          gets,
          ratio: round(requested / selectedBytes, 4),
        };
        if (config.sweepReadRatios.includes(r) && config.sweepReadGaps.includes(gapBytes)) {
          const loop = await readRanges(direct.dataset, ids, gapBytes, config);
          const shaped = await readRanges(slow.dataset, ids, gapBytes, config);
          if (loop.gets - loop.retries !== gets || shaped.gets - shaped.retries !== gets) {
            throw new Error('reader and plan disagree on GETs');
          }
          row.loopbackSeconds = loop.seconds;
          row.shapedSeconds = shaped.seconds;
          log(
            `  sweep r=${r} gap=${gapBytes}: ${gets} GETs ratio ${row.ratio as number} ${loop.seconds} s / ${shaped.seconds} s`,
          );
        }
        sweep.push(row);
      }
    }

    // 4. ImageNet-scale plan-only dry run
    const dry = dryRun(config);

    const dryGaps = dry.gapSweep as Array<{ gapBytes: number; maxEpochRatio: number }>;
    const meets = (g: number): boolean =>
      sweep.filter((s) => s.gapBytes === g).every((s) => (s.ratio as number) <= TARGET_RATIO) &&
      dryGaps.filter((s) => s.gapBytes === g).every((s) => s.maxEpochRatio <= TARGET_RATIO);
    const recommended = Math.max(...GAPS.filter(meets));

    const results = {
      bench: 'io',
      mode: quick ? 'quick' : 'full',
      startedAt,
      machine: {
        cpus: cpus().length,
        loadBefore: loadBefore.map((l) => round(l, 2)),
        loadAfter: loadavg().map((l) => round(l, 2)),
      },
      config: {
        ...config,
        maxRequestBytes: MAX_REQUEST_BYTES,
        defaultGapBytes: DEFAULT_GAP_BYTES,
        server: 'embedded s3rver in a child process on 127.0.0.1',
      },
      dataset: { samples: dataset.size, shards: dataset.shardCount, bytes: dataset.manifest.bytes },
      comparison,
      gapSweep: sweep,
      gapChoice: {
        targetRatio: TARGET_RATIO,
        rule: 'largest swept gap whose bytes ratio is <= target at every r, here and in every dry-run epoch',
        recommendedGapBytes: recommended,
        defaultGapBytes: DEFAULT_GAP_BYTES,
        defaultMatches: recommended === DEFAULT_GAP_BYTES,
      },
      dryRun: dry,
    };
    printTables(results.comparison, sweep, dry);
    return results;
  } finally {
    for (const c of opened) c.destroy();
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function printTables(
  comparison: Array<Record<string, unknown>>,
  sweep: Array<Record<string, unknown>>,
  dry: Record<string, unknown>,
): void {
  const mb = (b: number): string => (b / 1e6).toFixed(1);
  process.stdout.write('\nRange reader vs whole-shard reader (bytes fetched / bytes of selected samples)\n');
  table(
    comparison.map((c) => {
      const range = c.range as ReadResult;
      const whole = c.wholeShard as ReadResult;
      return {
        link: c.link as string,
        r: c.pruneRatio as number,
        selected: c.selected as number,
        'range MB': mb(range.bytesFetched),
        'range ratio': range.ratio,
        'range GETs': range.gets,
        'range s': range.seconds,
        'whole MB': mb(whole.bytesFetched),
        'whole ratio': whole.ratio,
        'whole GETs': whole.gets,
        'whole s': whole.seconds,
      };
    }),
  );
  process.stdout.write('gapBytes sweep\n');
  table(
    sweep.map((s) => ({
      r: s.pruneRatio as number,
      gapBytes: s.gapBytes as number,
      GETs: s.gets as number,
      ratio: s.ratio as number,
      'loopback s': (s.loopbackSeconds as number | undefined) ?? '-',
      'shaped s': (s.shapedSeconds as number | undefined) ?? '-',
    })),
  );
  const t = dry.totals as Record<string, number>;
  process.stdout.write(
    `ImageNet dry run (${dry.epochs as number} epochs, r=${dry.pruneRatio as number}, r_max=${dry.maxPruneRatio as number}, gapBytes ${dry.gapBytes as number})\n`,
  );
  table([
    {
      reader: 'range',
      'TB fetched': (t.rangeBytes! / 1e12).toFixed(2),
      GETs: t.rangeGets!,
      'GETs/epoch': t.rangeGetsPerEpochMean!,
      'fetched/selected': t.rangeOverSelected!,
    },
    {
      reader: 'whole-shard',
      'TB fetched': (t.wholeBytes! / 1e12).toFixed(2),
      GETs: t.wholeGets!,
      'GETs/epoch': dry.shards as number,
      'fetched/selected': round(t.wholeBytes! / t.bytesSelected!, 4),
    },
  ]);
  table(
    (dry.gapSweep as Array<Record<string, number>>).map((g) => ({
      gapBytes: g.gapBytes!,
      'fetched/selected': g.ratio!,
      'worst epoch': g.maxEpochRatio!,
      'GETs/epoch': g.getsPerEpoch!,
    })),
  );
}

async function main(): Promise<void> {
  const serverAt = process.argv.indexOf('--s3-server');
  if (serverAt >= 0) {
    const [dataDir, latencyMs, bytesPerSecond] = process.argv.slice(serverAt + 1);
    await serveS3(
      dataDir ?? join(tmpdir(), 'sadp-bench-io-s3'),
      Number(latencyMs ?? 20),
      Number(bytesPerSecond ?? 100e6),
    );
    return;
  }
  const quick = process.argv.includes('--quick');
  const started = performance.now();
  if (process.argv.includes('--dry-run')) {
    // Plan-only: the ImageNet-scale dry run (with the planner's modes), no S3.
    const dry = dryRun(quick ? QUICK : FULL);
    console.table(dry.planners);
    console.table((dry.plannersPerWindow as { rows: unknown[] }).rows);
    const out = join(packageRoot, 'bench', 'results', 'io-dry-run.json');
    const { perEpoch: _perEpoch, ...summary } = dry;
    await writeFile(out, `${JSON.stringify(summary, null, 2)}\n`);
    log(`wrote ${out}`);
    return;
  }
  const results = await runIoBench(quick);
  const file = join(packageRoot, 'bench', 'results', 'io.json');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(
    file,
    `${JSON.stringify({ ...results, seconds: round((performance.now() - started) / 1000, 1) }, null, 2)}\n`,
  );
  log(`wrote ${file} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
