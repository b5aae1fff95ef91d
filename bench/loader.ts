// End-to-end benchmark of the loader service against raw S3 reads.
//
//   npm run bench:loader [-- --quick]
//
// One run, one set of synthetic ImageNet-shaped shards (lognormal .jpg plus
// .cls, built with buildShards(syntheticSource(...))), one embedded S3 server
// in its own child process, and side by side:
//
// - raw: every shard object read whole with parallel GetObjects (the loader's
//   default GET concurrency and S3 client settings, bytes discarded) in a
//   child process: the storage ceiling the loader is measured against;
// - scenarios: the loader in its own child process (so its RSS is its own),
//   the scorer in this process, and 4 trainer ranks as separate processes
//   using the real SDK (createLoaderClient), consuming as fast as they can
//   and acking every batch with a score:
//     full-r0               policy full (r = 0), plain loopback S3
//     random-r0.5           policy random, r = r_max = 0.5 (each epoch keeps ~half)
//     sadp-r0.5             policy sadp, r = r_max = 0.5 (full mode only)
//     full-r0-shard-block1  diagnostic: full with shard-block order, 1-shard blocks
//     full-r0-proxy-0ms     full through the fault proxy adding nothing (the
//                           control for the proxy's own CPU cost)
//     full-r0-50ms          full, 50 ms added to every S3 request by the fault
//                           proxy (its own child process)
//     full-r0-50ms-tuned    the same with readerOptions.concurrency raised,
//                           run only when the default misses its target
//
// Reported: delivered samples/s and MB/s at r = 0 / raw (target >= 0.8);
// mean epoch wall time at r = 0.5 / r = 0 (target <= 0.55); throughput with
// 50 ms latency / without (target >= 0.7); boundary stalls (a rank's last ack
// of epoch k to its first batch of k + 1); per-batch waits; CPU seconds per
// process; the loader process' RSS (sampled every 50 ms) next to its in-flight
// byte budget. Writes bench/results/loader.json (--quick: loader-quick.json,
// so a smoke run does not overwrite the full results).
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoaderStats, ShuffleMode } from '../loader/index.js';
import type { S3Options } from '../storage/index.js';

const SELF = fileURLToPath(import.meta.url);
const BUCKET = 'bench';
const PREFIX = 'ds';
const WORLD = 4;
const LATENCY_MS = 50;
const MB = 1e6;
const MiB = 1024 * 1024;

const TARGETS = {
  throughputVsRaw: 0.8,
  epochTimeR05VsR0: 0.55,
  latencyThroughputRatio: 0.7,
} as const;

interface Config {
  samples: number;
  meanBytes: number;
  shardBytes: number;
  batchSize: number;
  /** Epochs of the no-latency scenarios (>= 2: one boundary at least). */
  epochs: number;
  latencyEpochs: number;
  rawPasses: number;
  sadp: boolean;
  /** readerOptions.concurrency of the tuned latency scenario (run when the default misses). */
  tunedConcurrency: number;
}

// Full: 6,144 samples of mean 110 KB (~690 MB in 83 shards of 8 MiB),
// about 2.5 minutes on this 2-core machine under other load; epochs long
// enough that the per-epoch fixed costs do not dominate. Quick: the same
// shape, a twelfth of the data, for a smoke run under a minute.
const FULL: Config = {
  samples: 6_144,
  meanBytes: 110_000,
  shardBytes: 8 * MiB,
  batchSize: 64,
  epochs: 3,
  latencyEpochs: 2,
  rawPasses: 2,
  sadp: true,
  tunedConcurrency: 64,
};
const QUICK: Config = {
  samples: 512,
  meanBytes: 110_000,
  shardBytes: 4 * MiB,
  batchSize: 32,
  epochs: 2,
  latencyEpochs: 2,
  rawPasses: 1,
  sadp: false,
  tunedConcurrency: 64,
};

// ---------------------------------------------------------------- messages

interface RankEpoch {
  rank: number;
  epoch: number;
  /** Wall-clock ms (performance.timeOrigin + now(): comparable across processes of one machine). */
  openedAt: number;
  firstBatchAt: number;
  lastAckAt: number;
  endAt: number;
  batches: number;
  samples: number;
  padded: number;
  /** Member bytes received (payload, tar headers excluded). */
  bytes: number;
  /** Wait for each batch after the previous ack, ms; the first batch of the epoch excluded. */
  latenciesMs: number[];
  /** Last ack of the previous epoch to the first batch of this one; null for epoch 0. */
  boundaryStallMs: number | null;
  selectedCount: number;
  selectedBytes: number;
  datasetBytes: number;
}

interface RssSummary {
  idleBytes: number;
  peakBytes: number;
  meanBytes: number;
  samples: number;
  peakHeapUsedBytes: number;
  peakArrayBuffersBytes: number;
}

type Msg =
  | { type: 'ready'; endpoint?: string; address?: string; accessKeyId?: string; secretAccessKey?: string }
  | { type: 'epoch'; result: RankEpoch }
  | { type: 'done' }
  | { type: 'stats'; stats: LoaderStats; rss: RssSummary }
  | { type: 'raw'; seconds: number; bytes: number; objects: number; rss: number }
  | { type: 'cpu'; userMs: number; systemMs: number }
  | { type: 'error'; message: string };

interface RunRequest {
  type: 'run';
  address: string;
  job: string;
  epochs: number;
  batchSize: number;
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function send(m: Msg): void {
  process.send?.(m);
}

// ---------------------------------------------------------------- child roles

async function roleS3(dataDir: string): Promise<void> {
  const { startEmbeddedS3 } = await import('../storage/index.js');
  const s3 = await startEmbeddedS3({ dataDir, buckets: [BUCKET] });
  send({
    type: 'ready',
    endpoint: s3.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
  });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') void s3.close().finally(() => process.exit(0));
  });
}

async function roleProxy(args: { target: string; latencyMs: number }): Promise<void> {
  const { startFaultProxy } = await import('../test/helpers/s3-fault-proxy.js');
  const proxy = await startFaultProxy({
    target: args.target,
    rules:
      args.latencyMs > 0 ? [{ fault: 'latency', latencyMs: args.latencyMs, method: '*', path: /./ }] : [],
  });
  send({ type: 'ready', endpoint: proxy.endpoint });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') void proxy.close().finally(() => process.exit(0));
  });
}

interface LoaderArgs {
  scorerAddress: string;
  s3: S3Options;
  concurrency?: number;
  prefetchBatches?: number;
  shuffle?: ShuffleMode;
  shuffleBlockShards?: number;
}

async function roleLoader(args: LoaderArgs): Promise<void> {
  const { createLoaderServer } = await import('../loader/index.js');
  const server = await createLoaderServer({
    scorerAddress: args.scorerAddress,
    s3: args.s3,
    ...(args.prefetchBatches ? { prefetchBatches: args.prefetchBatches } : {}),
    ...(args.concurrency ? { readerOptions: { concurrency: args.concurrency } } : {}),
    ...(args.shuffle ? { shuffle: args.shuffle } : {}),
    ...(args.shuffleBlockShards ? { shuffleBlockShards: args.shuffleBlockShards } : {}),
  });
  const idle = process.memoryUsage();
  const rss: RssSummary = {
    idleBytes: idle.rss,
    peakBytes: idle.rss,
    meanBytes: 0,
    samples: 0,
    peakHeapUsedBytes: idle.heapUsed,
    peakArrayBuffersBytes: idle.arrayBuffers,
  };
  let sum = 0;
  // rss() is one syscall; the full breakdown walks the heap, so only every 10th tick.
  const timer = setInterval(() => {
    const value = process.memoryUsage.rss();
    rss.samples++;
    sum += value;
    rss.meanBytes = sum / rss.samples;
    rss.peakBytes = Math.max(rss.peakBytes, value);
    if (rss.samples % 10 === 0) {
      const m = process.memoryUsage();
      rss.peakHeapUsedBytes = Math.max(rss.peakHeapUsedBytes, m.heapUsed);
      rss.peakArrayBuffersBytes = Math.max(rss.peakArrayBuffersBytes, m.arrayBuffers);
    }
  }, 50);
  send({ type: 'ready', address: server.address });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats') send({ type: 'stats', stats: server.stats(), rss });
    if (m.type === 'stop') {
      clearInterval(timer);
      void server.close(1_000).finally(() => process.exit(0));
    }
  });
}

async function roleTrainer(rank: number): Promise<void> {
  const { createLoaderClient } = await import('../trainer/client/index.js');
  const run = async (req: RunRequest): Promise<void> => {
    const client = createLoaderClient({ address: req.address });
    let previousAck: number | null = null;
    try {
      for (let epoch = 0; epoch < req.epochs; epoch++) {
        const stream = client.epoch({
          job: req.job,
          epoch,
          rank,
          worldSize: WORLD,
          batchSize: req.batchSize,
        });
        const r: RankEpoch = {
          rank,
          epoch,
          openedAt: now(),
          firstBatchAt: 0,
          lastAckAt: 0,
          endAt: 0,
          batches: 0,
          samples: 0,
          padded: 0,
          bytes: 0,
          latenciesMs: [],
          boundaryStallMs: null,
          selectedCount: 0,
          selectedBytes: 0,
          datasetBytes: 0,
        };
        let waitFrom = r.openedAt;
        for await (const batch of stream) {
          const t = now();
          if (r.batches === 0) {
            r.firstBatchAt = t;
            if (previousAck !== null) r.boundaryStallMs = t - previousAck;
          } else {
            r.latenciesMs.push(t - waitFrom);
          }
          r.batches++;
          r.samples += batch.size;
          for (let j = 0; j < batch.size; j++) r.padded += batch.padded[j] as number;
          for (const list of Object.values(batch.fields)) for (const b of list) r.bytes += b.byteLength;
          // A score that depends on the bytes (so they are touched), like a
          // real trainer's per-sample value would.
          const jpg = batch.fields.jpg ?? [];
          const scores = new Float32Array(batch.size);
          for (let j = 0; j < batch.size; j++) scores[j] = 0.05 + (jpg[j]?.[0] ?? 0) / 256;
          await batch.ack({ scores });
          r.lastAckAt = waitFrom = now();
        }
        r.endAt = now();
        previousAck = r.lastAckAt;
        r.selectedCount = stream.info?.selectedCount ?? 0;
        r.selectedBytes = stream.info?.selectedBytes ?? 0;
        r.datasetBytes = stream.info?.datasetBytes ?? 0;
        send({ type: 'epoch', result: r });
      }
      send({ type: 'done' });
    } finally {
      client.close();
    }
  };
  process.on('message', (m: RunRequest | { type: 'stop' }) => {
    if (m.type === 'stop') process.exit(0);
    if (m.type === 'run') {
      run(m).catch((err: unknown) => {
        send({ type: 'error', message: `rank ${rank}: ${err instanceof Error ? err.stack : String(err)}` });
      });
    }
  });
  send({ type: 'ready' });
}

interface RawArgs {
  s3: S3Options;
  keys: string[];
  concurrency: number;
}

async function roleRaw(args: RawArgs): Promise<void> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { createS3Client } = await import('../storage/index.js');
  // The loader's own client: retries left to its reader (maxAttempts 1).
  const client = createS3Client({ ...args.s3, maxAttempts: 1 });
  const pass = async (): Promise<void> => {
    const started = performance.now();
    let next = 0;
    let bytes = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < args.keys.length; i = next++) {
        const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: args.keys[i] }));
        for await (const chunk of res.Body as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.concurrency, args.keys.length) }, worker));
    send({
      type: 'raw',
      seconds: (performance.now() - started) / 1000,
      bytes,
      objects: args.keys.length,
      rss: process.memoryUsage().rss,
    });
  };
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') {
      client.destroy();
      process.exit(0);
    }
    if (m.type === 'pass') {
      pass().catch((err: unknown) =>
        send({ type: 'error', message: `raw read: ${err instanceof Error ? err.stack : String(err)}` }),
      );
    }
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------- children

interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  next<T extends Msg['type']>(type: T): Promise<Extract<Msg, { type: T }>>;
  send(m: object): void;
  stop(): Promise<void>;
}

function startChild(name: string, role: string, arg: unknown): Child {
  const proc = fork(SELF, ['--role', role, JSON.stringify(arg)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const inbox = new Map<string, Msg[]>();
  const waiters = new Map<string, { resolve(m: Msg): void; reject(e: Error): void }[]>();
  let failure: Error | undefined;
  const fail = (err: Error): void => {
    failure ??= err;
    for (const list of waiters.values()) for (const w of list) w.reject(failure);
    waiters.clear();
  };
  proc.on('message', (m: Msg) => {
    if (m.type === 'error') return fail(new Error(`${name}: ${m.message}`));
    const w = waiters.get(m.type)?.shift();
    if (w) w.resolve(m);
    else inbox.set(m.type, [...(inbox.get(m.type) ?? []), m]);
  });
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', (code, signal) => {
      fail(new Error(`${name} exited (${code ?? signal})`));
      resolve();
    }),
  );
  return {
    name,
    proc,
    next<T extends Msg['type']>(type: T) {
      const queued = inbox.get(type)?.shift();
      if (queued) return Promise.resolve(queued as Extract<Msg, { type: T }>);
      if (failure) return Promise.reject(failure);
      return new Promise<Extract<Msg, { type: T }>>((resolve, reject) => {
        const list = waiters.get(type) ?? [];
        list.push({ resolve: resolve as (m: Msg) => void, reject });
        waiters.set(type, list);
      });
    },
    send(m) {
      if (proc.connected) proc.send(m);
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      this.send({ type: 'stop' });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------- statistics

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Mean wall time of epochs 1.. (epoch 0 also opens the dataset and starts cold). */
function steadyEpochSeconds(r: { epochs: { seconds: number }[] }): number {
  const later = r.epochs.slice(1);
  return later.reduce((a, e) => a + e.seconds, 0) / Math.max(1, later.length);
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`child did not report its ${what}`);
  return value;
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------- orchestration

type Link = 'direct' | 'proxy-0ms' | 'proxy-50ms';

interface Scenario {
  name: string;
  policy: 'full' | 'random' | 'sadp';
  pruneRatio: number;
  /** S3 reached directly, or through the fault proxy adding nothing (its own CPU cost only) or LATENCY_MS. */
  link: Link;
  epochs: number;
  concurrency?: number;
  prefetchBatches?: number;
  shuffle?: ShuffleMode;
  shuffleBlockShards?: number;
}

interface EpochSummary {
  epoch: number;
  seconds: number;
  selected: number;
  samples: number;
  samplesPerSecond: number;
  megabytesPerSecond: number;
  maxBoundaryStallMs: number | null;
}

interface ScenarioResult {
  scenario: Scenario;
  loaderSettings: {
    concurrency: number;
    prefetchBatches: number;
    inflightBytes: number;
    maxSockets: number;
  };
  epochs: EpochSummary[];
  runSeconds: number;
  meanEpochSeconds: number;
  samples: number;
  payloadBytes: number;
  samplesPerSecond: number;
  megabytesPerSecond: number;
  batchLatencyMs: { p50: number; p95: number; p99: number; max: number; count: number };
  /**
   * Per boundary and rank: its last ack of epoch k to its first batch of
   * k + 1 (`perBoundary`), and the part of it after the last rank's last ack
   * of epoch k (`afterLastRank`: the rest is waiting for slower ranks, which
   * plan k + 1 needs the scores of).
   */
  boundaryStallMs: {
    max: number | null;
    perBoundary: number[][];
    maxAfterLastRank: number | null;
    afterLastRank: number[][];
    /** Last ack of epoch k to the end of that stream (its scores committed). */
    streamEnd: number[][];
    /** Opening epoch k + 1 to its first batch. */
    openToFirstBatch: number[][];
  };
  /** CPU seconds per process over the scenario (trainers summed; orchestrator = scorer + this script). */
  cpuSeconds: CpuSnapshot;
  wallSeconds: number;
  loader: {
    gets: number;
    retries: number;
    bytesRequested: number;
    samplesSent: number;
    inflightHighWaterBytes: number;
    inflightCapacityBytes: number;
    warmBatchesStarted: number;
    rss: RssSummary;
  };
}

interface Env {
  config: Config;
  log: (line: string) => void;
  scorerAddress: string;
  createJob: (id: string, s: Scenario) => Promise<void>;
  direct: S3Options;
  links: Record<Link, S3Options>;
  trainers: Child[];
  s3: Child;
  proxies: Child[];
}

async function cpuMsOf(c: Child): Promise<number> {
  c.send({ type: 'cpu' });
  const m = await c.next('cpu');
  return m.userMs + m.systemMs;
}

interface CpuSnapshot {
  loader: number;
  s3: number;
  proxy: number;
  trainers: number;
  orchestrator: number;
}

async function cpuSnapshot(env: Env, loader: Child): Promise<CpuSnapshot> {
  const [l, s3, proxy0, proxy50, ...trainers] = await Promise.all(
    [loader, env.s3, ...env.proxies, ...env.trainers].map((c) => cpuMsOf(c)),
  );
  const proxy = (proxy0 ?? 0) + (proxy50 ?? 0);
  const self = process.cpuUsage();
  return {
    loader: l ?? 0,
    s3: s3 ?? 0,
    proxy,
    trainers: trainers.reduce((a, b) => a + b, 0),
    orchestrator: (self.user + self.system) / 1000,
  };
}

async function runScenario(env: Env, s: Scenario): Promise<ScenarioResult> {
  const { config, log } = env;
  const { LOADER_DEFAULTS, resolveRangeReaderOptions } = await import('../loader/index.js');
  const { S3_DEFAULTS } = await import('../storage/index.js');
  const job = `bench-${s.name.replace(/[^A-Za-z0-9._-]/g, '_')}-${Date.now()}`;
  await env.createJob(job, s);
  const s3: S3Options = {
    ...env.links[s.link],
    // The reader's GETs are capped by the client's sockets as well.
    ...(s.concurrency ? { maxSockets: Math.max(S3_DEFAULTS.maxSockets, s.concurrency) } : {}),
  };
  const loader = startChild(`loader(${s.name})`, 'loader', {
    scorerAddress: env.scorerAddress,
    s3,
    concurrency: s.concurrency,
    prefetchBatches: s.prefetchBatches,
    shuffle: s.shuffle,
    shuffleBlockShards: s.shuffleBlockShards,
  } satisfies LoaderArgs);
  const settings = {
    concurrency: resolveRangeReaderOptions({ concurrency: s.concurrency }).concurrency,
    prefetchBatches: s.prefetchBatches ?? LOADER_DEFAULTS.prefetchBatches,
    inflightBytes: LOADER_DEFAULTS.inflightBytes,
    maxSockets: s3.maxSockets ?? S3_DEFAULTS.maxSockets,
  };
  let progress: NodeJS.Timeout | undefined;
  try {
    const address = required((await loader.next('ready')).address, 'loader address');
    log(
      `${s.name}: loader up (${s.shuffle ?? 'global'} shuffle${s.shuffleBlockShards ? `, ${s.shuffleBlockShards}-shard blocks` : ''}, ` +
        `concurrency ${settings.concurrency}, prefetch ${settings.prefetchBatches} batches, ` +
        `in-flight budget ${settings.inflightBytes / MiB} MiB${s.link === 'direct' ? '' : `, S3 through the ${s.link} proxy`})`,
    );
    const expected = Math.round(config.samples * (1 - s.pruneRatio) * s.epochs);
    const cpuBefore = await cpuSnapshot(env, loader);
    const started = performance.now();
    for (const t of env.trainers) {
      t.send({
        type: 'run',
        address,
        job,
        epochs: s.epochs,
        batchSize: config.batchSize,
      } satisfies RunRequest);
    }
    progress = setInterval(() => {
      loader.send({ type: 'stats' });
      void loader.next('stats').then(
        ({ stats }) => {
          const secs = (performance.now() - started) / 1000;
          const rate = stats.samplesSent / secs;
          const eta = rate > 0 ? Math.max(0, expected - stats.samplesSent) / rate : NaN;
          log(
            `  ${s.name}: ${stats.samplesSent}/~${expected} samples sent, ${rate.toFixed(0)} samples/s, ETA ${eta.toFixed(0)} s`,
          );
        },
        () => undefined,
      );
    }, 5_000);
    const perRank = await Promise.all(
      env.trainers.map(async (t) => {
        const epochs: RankEpoch[] = [];
        for (let e = 0; e < s.epochs; e++) epochs.push((await t.next('epoch')).result);
        await t.next('done');
        return epochs;
      }),
    );
    clearInterval(progress);
    progress = undefined;
    const cpuAfter = await cpuSnapshot(env, loader);
    const wallSeconds = (performance.now() - started) / 1000;
    // Settle any progress request still in flight before the final one.
    await new Promise((resolve) => setTimeout(resolve, 100));
    loader.send({ type: 'stats' });
    let final = await loader.next('stats');
    const received = perRank.flat().reduce((a, r) => a + r.samples, 0);
    for (let tries = 0; tries < 20 && final.stats.samplesSent < received; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      loader.send({ type: 'stats' });
      final = await loader.next('stats');
    }

    const epochs: EpochSummary[] = [];
    for (let e = 0; e < s.epochs; e++) {
      const rs = perRank.map((r) => r[e] as RankEpoch);
      const from = Math.min(...rs.map((r) => r.openedAt));
      const to = Math.max(...rs.map((r) => r.lastAckAt));
      const seconds = (to - from) / 1000;
      const samples = rs.reduce((a, r) => a + r.samples, 0);
      const bytes = rs.reduce((a, r) => a + r.bytes, 0);
      const stalls = rs.map((r) => r.boundaryStallMs).filter((x): x is number => x !== null);
      const summary: EpochSummary = {
        epoch: e,
        seconds: round(seconds, 3),
        selected: rs[0]?.selectedCount ?? 0,
        samples,
        samplesPerSecond: round(samples / seconds),
        megabytesPerSecond: round(bytes / MB / seconds, 2),
        maxBoundaryStallMs: stalls.length > 0 ? round(Math.max(...stalls)) : null,
      };
      epochs.push(summary);
      log(
        `  ${s.name} epoch ${e}: ${summary.selected} selected, ${summary.seconds.toFixed(2)} s, ` +
          `${summary.samplesPerSecond} samples/s, ${summary.megabytesPerSecond} MB/s` +
          (stalls.length > 0 ? `, boundary stall ${stalls.map((x) => x.toFixed(0)).join('/')} ms` : ''),
      );
    }
    const all = perRank.flat();
    const from = Math.min(...all.filter((r) => r.epoch === 0).map((r) => r.openedAt));
    const to = Math.max(...all.filter((r) => r.epoch === s.epochs - 1).map((r) => r.lastAckAt));
    const runSeconds = (to - from) / 1000;
    const samples = all.reduce((a, r) => a + r.samples, 0);
    const payloadBytes = all.reduce((a, r) => a + r.bytes, 0);
    const lat = all.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const perBoundary: number[][] = [];
    const afterLastRank: number[][] = [];
    const streamEnd: number[][] = [];
    const openToFirst: number[][] = [];
    for (let e = 1; e < s.epochs; e++) {
      perBoundary.push(perRank.map((r) => round((r[e] as RankEpoch).boundaryStallMs ?? 0)));
      const lastAckAll = Math.max(...perRank.map((r) => (r[e - 1] as RankEpoch).lastAckAt));
      afterLastRank.push(perRank.map((r) => round((r[e] as RankEpoch).firstBatchAt - lastAckAll)));
      streamEnd.push(
        perRank.map((r) => round((r[e - 1] as RankEpoch).endAt - (r[e - 1] as RankEpoch).lastAckAt)),
      );
      openToFirst.push(
        perRank.map((r) => round((r[e] as RankEpoch).firstBatchAt - (r[e] as RankEpoch).openedAt)),
      );
    }
    const stallAll = perBoundary.flat();
    const cpuSeconds = Object.fromEntries(
      (Object.keys(cpuAfter) as (keyof CpuSnapshot)[]).map((k) => [
        k,
        round((cpuAfter[k] - cpuBefore[k]) / 1000, 2),
      ]),
    ) as unknown as CpuSnapshot;
    const result: ScenarioResult = {
      scenario: s,
      loaderSettings: settings,
      epochs,
      runSeconds: round(runSeconds, 3),
      meanEpochSeconds: round(epochs.reduce((a, e) => a + e.seconds, 0) / epochs.length, 3),
      samples,
      payloadBytes,
      samplesPerSecond: round(samples / runSeconds),
      megabytesPerSecond: round(payloadBytes / MB / runSeconds, 2),
      batchLatencyMs: {
        p50: round(percentile(lat, 0.5)),
        p95: round(percentile(lat, 0.95)),
        p99: round(percentile(lat, 0.99)),
        max: round(lat.at(-1) ?? 0),
        count: lat.length,
      },
      boundaryStallMs: {
        max: stallAll.length > 0 ? Math.max(...stallAll) : null,
        perBoundary,
        maxAfterLastRank: afterLastRank.length > 0 ? Math.max(...afterLastRank.flat()) : null,
        afterLastRank,
        streamEnd,
        openToFirstBatch: openToFirst,
      },
      cpuSeconds,
      wallSeconds: round(wallSeconds, 3),
      loader: {
        gets: final.stats.io.requests,
        retries: final.stats.io.retries,
        bytesRequested: final.stats.io.bytesRequested,
        samplesSent: final.stats.samplesSent,
        inflightHighWaterBytes: final.stats.inflightHighWater,
        inflightCapacityBytes: final.stats.inflightCapacity,
        warmBatchesStarted: final.stats.warmBatchesStarted,
        rss: final.rss,
      },
    };
    log(
      `${s.name}: ${result.samplesPerSecond} samples/s, ${result.megabytesPerSecond} MB/s over ${result.runSeconds} s; ` +
        `batch wait p50/p95/max ${result.batchLatencyMs.p50}/${result.batchLatencyMs.p95}/${result.batchLatencyMs.max} ms; ` +
        `loader RSS peak ${(final.rss.peakBytes / MiB).toFixed(0)} MiB (idle ${(final.rss.idleBytes / MiB).toFixed(0)} MiB), ` +
        `in-flight high water ${(final.stats.inflightHighWater / MiB).toFixed(1)} MiB`,
    );
    log(
      `${s.name}: CPU s loader ${cpuSeconds.loader}, s3 ${cpuSeconds.s3}, proxy ${cpuSeconds.proxy}, ` +
        `trainers ${cpuSeconds.trainers}, scorer+orchestrator ${cpuSeconds.orchestrator} in ${result.wallSeconds} s wall; ` +
        `stall after the last rank's last ack max ${result.boundaryStallMs.maxAfterLastRank ?? '-'} ms`,
    );
    return result;
  } finally {
    if (progress) clearInterval(progress);
    await loader.stop();
  }
}

interface RawResult {
  label: string;
  concurrency: number;
  passes: { seconds: number; bytes: number; objects: number }[];
  seconds: number;
  samplesPerSecond: number;
  /** Payload-equivalent MB/s: the dataset's member bytes / time (comparable with the trainers' bytes). */
  megabytesPerSecond: number;
  objectMegabytesPerSecond: number;
}

async function runRaw(
  label: string,
  s3: S3Options,
  keys: string[],
  concurrency: number,
  passes: number,
  samples: number,
  payloadBytes: number,
  log: (line: string) => void,
): Promise<RawResult> {
  const raw = startChild(`raw(${label})`, 'raw', { s3, keys, concurrency } satisfies RawArgs);
  try {
    await raw.next('ready');
    const out: RawResult['passes'] = [];
    for (let p = 0; p < passes; p++) {
      raw.send({ type: 'pass' });
      const r = await raw.next('raw');
      out.push({ seconds: round(r.seconds, 3), bytes: r.bytes, objects: r.objects });
      log(
        `raw ${label} pass ${p}: ${r.objects} objects, ${(r.bytes / MB).toFixed(0)} MB in ${r.seconds.toFixed(2)} s ` +
          `(${(r.bytes / MB / r.seconds).toFixed(1)} MB/s, ${(samples / r.seconds).toFixed(0)} samples/s)`,
      );
    }
    const seconds = out.reduce((a, p) => a + p.seconds, 0) / out.length;
    const objectBytes = out[0]?.bytes ?? 0;
    return {
      label,
      concurrency,
      passes: out,
      seconds: round(seconds, 3),
      samplesPerSecond: round(samples / seconds),
      megabytesPerSecond: round(payloadBytes / MB / seconds, 2),
      objectMegabytesPerSecond: round(objectBytes / MB / seconds, 2),
    };
  } finally {
    await raw.stop();
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const config = quick ? QUICK : FULL;
  const t0 = Date.now();
  const log = (line: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}`);
  // A wedged stream would otherwise hang the run; children exit when this process does.
  const watchdog = setTimeout(() => {
    console.error('bench:loader: no result after 15 minutes, giving up');
    process.exit(1);
  }, 15 * 60_000);
  watchdog.unref();
  const loadBefore = loadavg();
  log(`load average before: ${loadBefore.map((x) => x.toFixed(2)).join(' ')} on ${cpus().length} cores`);

  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { packageRoot } = await import('../common/paths.js');
  const { buildShards, syntheticSource } = await import('../loader/shards/index.js');
  const { resolveRangeReaderOptions } = await import('../loader/index.js');
  const { createScorerClient, createScorerServer } = await import('../scorer/index.js');
  const { createS3Client } = await import('../storage/index.js');

  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-loader-'));
  const children: Child[] = [];
  let scorer: Awaited<ReturnType<typeof createScorerServer>> | undefined;
  let scorerClient: ReturnType<typeof createScorerClient> | undefined;
  try {
    const s3Child = startChild('s3', 's3', join(dir, 's3'));
    children.push(s3Child);
    const s3Info = await s3Child.next('ready');
    const direct: S3Options = {
      endpoint: required(s3Info.endpoint, 'S3 endpoint'),
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: required(s3Info.accessKeyId, 'S3 access key'),
      secretAccessKey: required(s3Info.secretAccessKey, 'S3 secret key'),
    };
    // Two fault proxies in their own processes: one adds LATENCY_MS to every
    // request, one adds nothing (the control for the proxy's own CPU cost).
    const proxies = [0, LATENCY_MS].map((latencyMs) =>
      startChild(`proxy ${latencyMs} ms`, 'proxy', { target: direct.endpoint, latencyMs }),
    );
    children.push(...proxies);
    const [proxy0, proxy50] = await Promise.all(
      proxies.map(async (c) => ({
        ...direct,
        endpoint: required((await c.next('ready')).endpoint, 'proxy endpoint'),
      })),
    );
    const links: Record<Link, S3Options> = {
      direct,
      'proxy-0ms': proxy0 as S3Options,
      'proxy-50ms': proxy50 as S3Options,
    };

    // Shards.
    const client = createS3Client(direct);
    log(
      `writing ${config.samples} samples (lognormal, mean ${config.meanBytes / 1000} KB) in ${config.shardBytes / MiB} MiB shards`,
    );
    const built = performance.now();
    await buildShards(syntheticSource({ count: config.samples, meanBytes: config.meanBytes }), {
      out: `s3://${BUCKET}/${PREFIX}`,
      client,
      shardBytes: config.shardBytes,
      onProgress: (p) => {
        if (p.samples % 1024 === 0) log(`  ${p.samples}/${p.total ?? '?'} samples, ${p.shards} shards`);
      },
    });
    const manifestRes = await client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/manifest.json` }),
    );
    const manifest = JSON.parse(
      await (manifestRes.Body as { transformToString(): Promise<string> }).transformToString(),
    ) as {
      samples: number;
      bytes: number;
      shards: { url: string; size: number }[];
    };
    client.destroy();
    const keys = manifest.shards.map((s) => `${PREFIX}/${s.url}`);
    const objectBytes = manifest.shards.reduce((a, s) => a + s.size, 0);
    log(
      `built ${keys.length} shards, ${(objectBytes / MB).toFixed(0)} MB in ${((performance.now() - built) / 1000).toFixed(1)} s`,
    );

    // Scorer (this process) and the trainer ranks (one process each).
    scorer = await createScorerServer({ host: '127.0.0.1', port: 0, stateUrl: join(dir, 'scorer') });
    const sc = createScorerClient({ address: scorer.address });
    scorerClient = sc;
    const createJob = async (jobId: string, s: Scenario): Promise<void> => {
      await sc.createJob({
        jobId,
        datasetSize: config.samples,
        policy: s.policy,
        pruneRatio: s.pruneRatio,
        // r_max = r: every epoch prunes the same fraction (a clean comparison with r = 0).
        ...(s.pruneRatio > 0 ? { maxPruneRatio: s.pruneRatio } : {}),
        epochs: s.epochs,
        seed: 2024,
        datasetUrl: `s3://${BUCKET}/${PREFIX}/manifest.json`,
      });
    };
    const trainers = [...Array(WORLD).keys()].map((rank) => startChild(`rank ${rank}`, 'trainer', rank));
    children.push(...trainers);
    await Promise.all(trainers.map((t) => t.next('ready')));
    log(`${WORLD} trainer processes ready`);
    const env: Env = {
      config,
      log,
      scorerAddress: scorer.address,
      createJob,
      direct,
      links,
      trainers,
      s3: s3Child,
      proxies,
    };

    const scenarios: ScenarioResult[] = [];
    const run = async (s: Scenario): Promise<ScenarioResult> => {
      const r = await runScenario(env, s);
      scenarios.push(r);
      return r;
    };
    const full = await run({
      name: 'full-r0',
      policy: 'full',
      pruneRatio: 0,
      link: 'direct',
      epochs: config.epochs,
    });
    // Payload bytes of the dataset, as the trainers count them.
    const payloadBytes = full.payloadBytes / config.epochs;
    const concurrency = resolveRangeReaderOptions().concurrency;
    const raw = await runRaw(
      'loopback',
      direct,
      keys,
      concurrency,
      config.rawPasses,
      config.samples,
      payloadBytes,
      log,
    );
    const random = await run({
      name: 'random-r0.5',
      policy: 'random',
      pruneRatio: 0.5,
      link: 'direct',
      epochs: config.epochs,
    });
    const sadp = config.sadp
      ? await run({
          name: 'sadp-r0.5',
          policy: 'sadp',
          pruneRatio: 0.5,
          link: 'direct',
          epochs: config.epochs,
        })
      : undefined;
    // Diagnostic (no target): whether shard-block order, whose batches take
    // their samples from one shard, merges enough ranges to approach raw reads.
    await run({
      name: 'full-r0-shard-block1',
      policy: 'full',
      pruneRatio: 0,
      link: 'direct',
      epochs: config.latencyEpochs,
      shuffle: 'shard-block',
      shuffleBlockShards: 1,
    });
    const rawLatency = await runRaw(
      `${LATENCY_MS}ms`,
      links['proxy-50ms'],
      keys,
      concurrency,
      1,
      config.samples,
      payloadBytes,
      log,
    );
    const control = await run({
      name: 'full-r0-proxy-0ms',
      policy: 'full',
      pruneRatio: 0,
      link: 'proxy-0ms',
      epochs: config.latencyEpochs,
    });
    const slow = await run({
      name: `full-r0-${LATENCY_MS}ms`,
      policy: 'full',
      pruneRatio: 0,
      link: 'proxy-50ms',
      epochs: config.latencyEpochs,
    });
    const latencyRatio = slow.samplesPerSecond / full.samplesPerSecond;
    const latencyVsControl = slow.samplesPerSecond / control.samplesPerSecond;
    let tuned: ScenarioResult | undefined;
    if (Math.min(latencyRatio, latencyVsControl) < TARGETS.latencyThroughputRatio) {
      log(
        `latency ratio ${latencyRatio.toFixed(2)} (vs direct) / ${latencyVsControl.toFixed(2)} (vs 0 ms proxy), ` +
          `target ${TARGETS.latencyThroughputRatio}: retrying with ` +
          `readerOptions.concurrency ${config.tunedConcurrency} (prefetchBatches unchanged)`,
      );
      tuned = await run({
        name: `full-r0-${LATENCY_MS}ms-tuned`,
        policy: 'full',
        pruneRatio: 0,
        link: 'proxy-50ms',
        epochs: config.latencyEpochs,
        concurrency: config.tunedConcurrency,
      });
    }
    const loadAfter = loadavg();

    // Targets.
    const checks = [
      {
        target: `r = 0 delivered samples/s / raw GetObject samples/s >= ${TARGETS.throughputVsRaw}`,
        value: full.samplesPerSecond / raw.samplesPerSecond,
        met: full.samplesPerSecond / raw.samplesPerSecond >= TARGETS.throughputVsRaw,
      },
      {
        target: `r = 0 delivered MB/s / raw GetObject MB/s (payload) >= ${TARGETS.throughputVsRaw}`,
        value: full.megabytesPerSecond / raw.megabytesPerSecond,
        met: full.megabytesPerSecond / raw.megabytesPerSecond >= TARGETS.throughputVsRaw,
      },
      {
        target: `epoch time random r = 0.5 / full r = 0 <= ${TARGETS.epochTimeR05VsR0}`,
        value: random.meanEpochSeconds / full.meanEpochSeconds,
        met: random.meanEpochSeconds / full.meanEpochSeconds <= TARGETS.epochTimeR05VsR0,
      },
      ...(sadp
        ? [
            {
              target: `epoch time sadp r = 0.5 / full r = 0 <= ${TARGETS.epochTimeR05VsR0}`,
              value: sadp.meanEpochSeconds / full.meanEpochSeconds,
              met: sadp.meanEpochSeconds / full.meanEpochSeconds <= TARGETS.epochTimeR05VsR0,
            },
          ]
        : []),
      {
        target: `r = 0 samples/s with ${LATENCY_MS} ms per request / without >= ${TARGETS.latencyThroughputRatio} (default options)`,
        value: latencyRatio,
        met: latencyRatio >= TARGETS.latencyThroughputRatio,
      },
      {
        target: `same, relative to the 0 ms proxy (the proxy's CPU cost in both) >= ${TARGETS.latencyThroughputRatio}`,
        value: latencyVsControl,
        met: latencyVsControl >= TARGETS.latencyThroughputRatio,
      },
      ...(tuned
        ? [
            {
              target: `same with readerOptions.concurrency ${config.tunedConcurrency}, relative to direct >= ${TARGETS.latencyThroughputRatio}`,
              value: tuned.samplesPerSecond / full.samplesPerSecond,
              met: tuned.samplesPerSecond / full.samplesPerSecond >= TARGETS.latencyThroughputRatio,
            },
            {
              target: `same with readerOptions.concurrency ${config.tunedConcurrency}, relative to the 0 ms proxy >= ${TARGETS.latencyThroughputRatio}`,
              value: tuned.samplesPerSecond / control.samplesPerSecond,
              met: tuned.samplesPerSecond / control.samplesPerSecond >= TARGETS.latencyThroughputRatio,
            },
          ]
        : []),
    ].map((c) => ({ ...c, value: round(c.value, 3) }));

    const table: (string | number)[][] = [
      [
        'scenario',
        'epochs',
        'run s',
        'epoch s',
        'samples/s',
        'MB/s',
        'batch wait p50/p95/max ms',
        'max stall ms (after last rank)',
        'GETs',
        'loader CPU s',
        'loader RSS peak MiB (idle)',
      ],
      ...[raw, rawLatency].map((r) => [
        `raw GetObject ${r.label}`,
        r.passes.length,
        r.seconds.toFixed(2),
        r.seconds.toFixed(2),
        r.samplesPerSecond.toFixed(0),
        r.megabytesPerSecond.toFixed(1),
        '',
        '',
        r.passes[0]?.objects ?? 0,
        '',
        '',
      ]),
      ...scenarios.map((r) => [
        r.scenario.name,
        r.scenario.epochs,
        r.runSeconds.toFixed(1),
        r.meanEpochSeconds.toFixed(2),
        r.samplesPerSecond.toFixed(0),
        r.megabytesPerSecond.toFixed(1),
        `${r.batchLatencyMs.p50.toFixed(0)}/${r.batchLatencyMs.p95.toFixed(0)}/${r.batchLatencyMs.max.toFixed(0)}`,
        `${(r.boundaryStallMs.max ?? 0).toFixed(0)} (${(r.boundaryStallMs.maxAfterLastRank ?? 0).toFixed(0)})`,
        r.loader.gets,
        r.cpuSeconds.loader.toFixed(1),
        `${(r.loader.rss.peakBytes / MiB).toFixed(0)} (${(r.loader.rss.idleBytes / MiB).toFixed(0)})`,
      ]),
    ];
    const widths = (table[0] as (string | number)[]).map((_, j) =>
      Math.max(...table.map((row) => String(row[j]).length)),
    );
    console.log('');
    for (const row of table) {
      console.log(
        row
          .map((cell, j) =>
            j === 0 ? String(cell).padEnd(widths[j] ?? 0) : String(cell).padStart(widths[j] ?? 0),
          )
          .join('  '),
      );
    }
    console.log('');
    for (const c of checks) console.log(`${c.met ? 'MET   ' : 'MISSED'}  ${c.target}: ${c.value}`);
    console.log(
      `loader in-flight budget ${full.loaderSettings.inflightBytes / MiB} MiB; max RSS over all scenarios ${(Math.max(...scenarios.map((r) => r.loader.rss.peakBytes)) / MiB).toFixed(0)} MiB`,
    );
    // Sizing figures (docs/deploy.md) from the r = 0 run: what one loader costs.
    const sizing = {
      loaderIdleRssMiB: round(full.loader.rss.idleBytes / MiB),
      loaderPeakRssMiB: round(full.loader.rss.peakBytes / MiB),
      inflightHighWaterMiB: round(full.loader.inflightHighWaterBytes / MiB),
      rssGrowthPerInflightByte: round(
        (full.loader.rss.peakBytes - full.loader.rss.idleBytes) /
          Math.max(1, full.loader.inflightHighWaterBytes),
        2,
      ),
      loaderSamplesPerCpuSecond: round(full.samples / full.cpuSeconds.loader, 0),
      loaderMegabytesPerCpuSecond: round(full.payloadBytes / MB / full.cpuSeconds.loader, 1),
      loaderCpuMsPerGet: round((full.cpuSeconds.loader * 1000) / full.loader.gets, 3),
      s3ServerCpuMsPerGet: round((full.cpuSeconds.s3 * 1000) / full.loader.gets, 3),
      getsPerSample: round(full.loader.gets / full.samples, 3),
    };
    console.log(
      `sizing (full-r0): loader ${sizing.loaderSamplesPerCpuSecond} samples per CPU second, ` +
        `${sizing.loaderCpuMsPerGet} ms CPU per GET (s3rver ${sizing.s3ServerCpuMsPerGet}), ${sizing.getsPerSample} GETs per sample; ` +
        `RSS idle ${sizing.loaderIdleRssMiB} MiB, peak ${sizing.loaderPeakRssMiB} MiB = idle + ${sizing.rssGrowthPerInflightByte} x in-flight high water`,
    );
    console.log(`load average after: ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);

    const out = join(packageRoot, `bench/results/${quick ? 'loader-quick' : 'loader'}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      JSON.stringify(
        {
          bench: 'loader',
          quick,
          date: new Date().toISOString(),
          machine: {
            cpuModel: cpus()[0]?.model ?? 'unknown',
            cores: cpus().length,
            node: process.version,
            kernel: release(),
            totalMemBytes: totalmem(),
            freeMemBytesAfter: freemem(),
            loadavgBefore: loadBefore.map((x) => round(x, 2)),
            loadavgAfter: loadAfter.map((x) => round(x, 2)),
          },
          config: {
            ...config,
            world: WORLD,
            latencyMs: LATENCY_MS,
            shards: keys.length,
            objectBytes,
            datasetSampleBytes: manifest.bytes,
            payloadBytes,
            targets: TARGETS,
          },
          setup:
            'embedded s3rver in a child process; two fault proxies (0 ms and 50 ms on every request) in two more; raw reader and loader ' +
            'each in their own child process with the same S3 client settings (maxAttempts 1, keep-alive sockets); ' +
            'scorer in the orchestrator; 4 trainer ranks as separate processes using the SDK, no compute, every batch acked with a score',
          raw: [raw, rawLatency],
          scenarios,
          ratios: {
            throughputVsRaw: round(full.samplesPerSecond / raw.samplesPerSecond, 3),
            megabytesVsRaw: round(full.megabytesPerSecond / raw.megabytesPerSecond, 3),
            epochTimeRandomVsFull: round(random.meanEpochSeconds / full.meanEpochSeconds, 3),
            ...(sadp ? { epochTimeSadpVsFull: round(sadp.meanEpochSeconds / full.meanEpochSeconds, 3) } : {}),
            latencyThroughput: round(latencyRatio, 3),
            latencyThroughputVsProxy0ms: round(latencyVsControl, 3),
            proxyOverhead: round(control.samplesPerSecond / full.samplesPerSecond, 3),
            ...(tuned
              ? {
                  latencyThroughputTuned: round(tuned.samplesPerSecond / full.samplesPerSecond, 3),
                  latencyThroughputTunedVsProxy0ms: round(
                    tuned.samplesPerSecond / control.samplesPerSecond,
                    3,
                  ),
                }
              : {}),
            steadyEpochTimeRandomVsFull: round(steadyEpochSeconds(random) / steadyEpochSeconds(full), 3),
            ...(sadp
              ? { steadyEpochTimeSadpVsFull: round(steadyEpochSeconds(sadp) / steadyEpochSeconds(full), 3) }
              : {}),
            loaderVsRawUnderLatency: round(slow.samplesPerSecond / rawLatency.samplesPerSecond, 3),
          },
          sizing,
          checks,
        },
        null,
        2,
      ) + '\n',
    );
    log(`wrote ${out}`);
  } finally {
    scorerClient?.close();
    await scorer?.close(500);
    for (const c of children.reverse()) await c.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const roleAt = process.argv.indexOf('--role');
if (roleAt >= 0) {
  const role = process.argv[roleAt + 1];
  const arg = JSON.parse(process.argv[roleAt + 2] ?? 'null') as unknown;
  process.on('disconnect', () => process.exit(0));
  // Every child reports its CPU time on request (where a scenario's CPU goes).
  process.on('message', (m: { type: string }) => {
    if (m.type !== 'cpu') return;
    const { user, system } = process.cpuUsage();
    send({ type: 'cpu', userMs: user / 1000, systemMs: system / 1000 });
  });
  if (role === 's3') await roleS3(arg as string);
  else if (role === 'proxy') await roleProxy(arg as { target: string; latencyMs: number });
  else if (role === 'loader') await roleLoader(arg as LoaderArgs);
  else if (role === 'trainer') await roleTrainer(arg as number);
  else if (role === 'raw') await roleRaw(arg as RawArgs);
  else throw new Error(`unknown role ${role}`);
} else {
  await main();
}
