// Epoch time of the loader against reading everything, side by side in one run.
//
//   npm run bench:loader [-- --quick]      (root; needs nginx-light and iproute2)
//
// Data plane: Debian nginx serving the shard files (Range, HEAD, ETag,
// If-Match), started by this script; the manifest carries nginx's ETags.
// Two links, each with its own processes:
// - loopback: nginx on 127.0.0.1, everything else in this network namespace;
// - link: network namespaces `sadpb-s3` (nginx on 198.18.0.1) and `sadpb-cli`
//   (scorer, loaders, trainers, peers, raw reader) joined by a veth pair shaped
//   with tbf at 1 Gbit/s on both ends, plus 20 ms per request added by the
//   user-space fault proxy (test/helpers/s3-fault-proxy.ts) in `sadpb-cli`.
// Cases at r in {0, 0.3, 0.5, 0.7} (policy `full` at 0, `random` with
// r_max = r otherwise, so plans do not depend on scores):
// - auto:     the loader, readerOptions.planner 'auto' (the read planner);
// - ranges:   the loader forced to per-sample ranges ('ranges', today's reads);
// - peer:     a whole-shard streaming peer: each rank reads every byte of its
//             shards (shard i goes to rank i mod W) sequentially, two shards
//             ahead, and streams the selected samples over the same gRPC
//             protocol (what WebDataset or Mosaic behind a service do);
// - raw:      whole-object GetObject of every shard, bytes discarded (ceiling);
// - auto-shard-buffer: `auto` with the loader's locality-aware order
//             (shuffle 'shard-buffer': shard shuffle + sample buffer, the
//             order the peer and WebDataset deliver) instead of the default
//             global shuffle; the goals stay on the default.
// Also on loopback: the loader in 'min-bytes' at r >= 0.3, and 50 ms added
// per request by the fault proxy (auto, r = 0, `auto-50ms`) against the same
// loader through the same proxy adding nothing (`auto-proxy`): the proxy
// relays every byte in JavaScript on the loader's two cores, and that relay,
// not the latency, bounded the 50 ms case against the direct `auto`
// (SADP_BENCH_TIMELINE below shows it), so latency50Ratio compares through
// the proxy both ways; the ratio against the direct loader is kept as
// latency50RatioDirect. Neither nginx nor the proxy's sockets bound the GETs
// in flight (up to 256 per loader): nginx has 4,096 worker connections (and
// the descriptors for them, worker_rlimit_nofile), keep-alive for 300 s and
// 10 M requests; the proxy's upstream pool holds 1,024 sockets. The proxy's
// CPU does: through it with 0 ms added, the least first byte of the recent GETs was
// 60-170 ms in quick runs at load 7-10, against 10-50 ms direct.
// Trainers are separate processes using the real SDK, acking every batch.
// Per case: samples/s, epoch time, GETs per sample, fetched/selected, loader
// CPU us per delivered sample, loader RSS. Writes bench/results/loader.json
// (--quick: loader-quick.json) with the `goals` object of issue 12.
// Before the measured cases each loader process and the peer serve one
// warm-up epoch (r = 0.7, not recorded): a loader is a long-running service,
// and a fresh process's first epoch also pays JIT compilation, first-touch page
// faults and connection set-up (~0.5 s of CPU here), which a 512-sample quick
// epoch would count as per-sample cost. --cold skips it (the first case of each
// process is then cold).
// --repeats <n>: rounds of every case, side by side (default 3; --quick: 1);
// each case reports its median round by epoch time.
// --epochs <n>: epochs per case (default 1); each case prints each epoch's
// timeline: job setup, plan fetch and load, each rank's open, first batch
// and last ack, from the epoch boundary for epochs after the first.
// --read-threads <n>: the loaders' read threads (readerOptions.threads; default 0).
// --profile <dir>: the loaders and the peer run under `node --cpu-prof`; their
// profiles go to <dir>/<process>/ and the run ends with each one's self time
// grouped by package (bench/cpu-profile.ts). Off by default (it costs CPU).
//
// SADP_BENCH_TIMELINE=<dir>: each loader writes the start of every storage GET
// (ms since the epoch, key, byte range) and each trainer every batch it got,
// to <dir>/loader-<mode>-<pid>.log and <dir>/trainer-<rank>-<pid>.log: the
// timeline of an epoch, to find its critical path.
//
// Until the loader has a read planner, `planner` is passed through and
// ignored: `auto`, `ranges` and `min-bytes` then all read per-sample ranges
// (`planner: false` in the results says so).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoaderStats } from '../loader/index.js';
import type { Logger } from '../common/logger.js';
import type { S3Options } from '../storage/index.js';
import type { sadp } from '../proto/index.js';
import type * as grpcTypes from '@grpc/grpc-js';
import { nginxConf } from '../test/helpers/nginx.js';

const SELF = fileURLToPath(import.meta.url);
const BUCKET = 'bench';
const PREFIX = 'ds';
const MB = 1e6;
const MiB = 1024 * 1024;
const RATIOS = [0, 0.3, 0.5, 0.7] as const;
const LINK_LATENCY_MS = 20;
const HIGH_LATENCY_MS = 50;
const NS_S3 = 'sadpb-s3';
const NS_CLI = 'sadpb-cli';
const S3_ADDR = '198.18.0.1';
const CLI_ADDR = '198.18.0.2';
const NGINX_PORT = 9200;
/** Static keys: nginx ignores the signature; the SDK wants some. */
const CREDS = { accessKeyId: 'bench', secretAccessKey: 'bench-secret' };

interface Config {
  samples: number;
  meanBytes: number;
  shardBytes: number;
  batchSize: number;
  world: number;
  epochs: number;
}
// Full: 2,048 samples of mean 110 KB (~225 MB in 27 shards of 8 MiB), 4 ranks,
// one epoch per case (34 cases run back to back on a shared 2-core machine).
// Quick: 512 samples in 4 MiB shards, 2 ranks.
const FULL: Config = {
  samples: 2_048,
  meanBytes: 110_000,
  shardBytes: 8 * MiB,
  batchSize: 64,
  world: 4,
  epochs: 1,
};
const QUICK: Config = {
  samples: 512,
  meanBytes: 110_000,
  shardBytes: 4 * MiB,
  batchSize: 32,
  world: 2,
  epochs: 1,
};

type Mode = 'auto' | 'ranges' | 'min-bytes';
type LinkName = 'loopback' | 'link';

interface RankEpoch {
  rank: number;
  epoch: number;
  openedAt: number;
  /** When the rank's first batch arrived (0: none). */
  firstBatchAt: number;
  lastAckAt: number;
  samples: number;
  bytes: number;
  selectedCount: number;
  selectedBytes: number;
}

interface PeerStats {
  gets: number;
  bytesRequested: number;
}

type Msg =
  | { type: 'ready'; address?: string; endpoint?: string }
  | { type: 'epoch'; result: RankEpoch }
  | { type: 'done' }
  | { type: 'job-ok' }
  | {
      type: 'stats';
      stats: LoaderStats | PeerStats;
      rss: number;
      peakRss: number;
      /** The loader's setup log lines (job opened, epoch plan loaded) since the last stats. */
      events?: LogEvent[];
    }
  | { type: 'events'; events: LogEvent[] }
  | { type: 'raw'; seconds: number; bytes: number; objects: number }
  | { type: 'cpu'; userMs: number; systemMs: number }
  | { type: 'error'; message: string };

const now = (): number => performance.timeOrigin + performance.now();

/** A log line of a child (pino JSON) with its wall-clock time in ms. */
interface LogEvent {
  msg: string;
  at: number;
  [field: string]: unknown;
}

/** The epoch-setup lines a child logs, kept for the case's timeline. */
const TIMELINE_MESSAGES = new Set([
  'job opened',
  'epoch plan fetched',
  'epoch plan loaded',
  'plan computed',
  'next epoch prefetched at boundary',
]);

/** A logger whose timeline lines are kept in memory until taken. */
async function captureLogger(): Promise<{
  logger: Logger;
  take: () => LogEvent[];
}> {
  const { Writable } = await import('node:stream');
  const { createLogger } = await import('../common/logger.js');
  let events: LogEvent[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        const o = JSON.parse(line) as { msg?: string; time?: string };
        if (o.msg && TIMELINE_MESSAGES.has(o.msg))
          events.push({ ...o, msg: o.msg, at: Date.parse(o.time ?? '') });
      }
      cb();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  return {
    logger,
    take: () => {
      const out = events;
      events = [];
      return out;
    },
  };
}

/** SADP_BENCH_TIMELINE's directory (undefined: no timeline). */
const TIMELINE_DIR = process.env.SADP_BENCH_TIMELINE;

/** Timeline lines of this process, written at exit (nothing while it is measured). */
function timeline(name: string): (line: string) => void {
  if (TIMELINE_DIR === undefined) return () => undefined;
  const lines: string[] = [];
  process.on('exit', () =>
    appendFileSync(join(TIMELINE_DIR, `${name}-${process.pid}.log`), lines.join('\n') + '\n'),
  );
  return (line) => void lines.push(`${now().toFixed(1)} ${line}`);
}
const send = (m: Msg): void => void process.send?.(m);
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

// ---------------------------------------------------------------- child roles

async function roleScorer(): Promise<void> {
  const { createScorerClient, createScorerServer } = await import('../scorer/index.js');
  const dir = await mkdtemp(join(tmpdir(), 'sadpb-scorer-'));
  const capture = await captureLogger();
  const scorer = await createScorerServer({
    host: '127.0.0.1',
    port: 0,
    stateUrl: join(dir, 'state'),
    logger: capture.logger,
  });
  const client = createScorerClient({ address: scorer.address });
  process.on(
    'message',
    (m: { type: string; jobId?: string; samples?: number; r?: number; epochs?: number }) => {
      if (m.type === 'stop') {
        client.close();
        void scorer
          .close(500)
          .then(() => rm(dir, { recursive: true, force: true }))
          .finally(() => process.exit(0));
      }
      if (m.type === 'events') send({ type: 'events', events: capture.take() });
      if (m.type !== 'job') return;
      const r = m.r ?? 0;
      client
        .createJob({
          jobId: m.jobId ?? '',
          datasetSize: m.samples ?? 0,
          policy: r > 0 ? 'random' : 'full',
          pruneRatio: r,
          ...(r > 0 ? { maxPruneRatio: r } : {}),
          epochs: m.epochs ?? 1,
          seed: 2026n,
          datasetUrl: `s3://${BUCKET}/${PREFIX}/manifest.json`,
        })
        .then(
          () => send({ type: 'job-ok' }),
          (err: unknown) => send({ type: 'error', message: `createJob: ${String(err)}` }),
        );
    },
  );
  send({ type: 'ready', address: scorer.address });
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

/** Peak RSS from the kernel's high-water mark (polling memoryUsage.rss() cost the loader ~25 us per sample). */
function rssTracker(): { peak: () => number; stop: () => void } {
  return { peak: () => process.resourceUsage().maxRSS * 1024, stop: () => undefined };
}

async function roleLoader(args: {
  scorerAddress: string;
  s3: S3Options;
  mode: Mode;
  readThreads?: number;
  shuffle?: 'shard-buffer';
}): Promise<void> {
  const { createLoaderServer } = await import('../loader/index.js');
  const capture = await captureLogger();
  const log = timeline(`loader-${args.mode}`);
  const server = await createLoaderServer({
    scorerAddress: args.scorerAddress,
    s3: args.s3,
    logger: capture.logger,
    ...(args.shuffle ? { shuffle: args.shuffle } : {}),
    ...(TIMELINE_DIR === undefined
      ? {}
      : { onStorageRequest: (r) => log(`get ${r.key} ${r.start} ${r.end} ${r.attempt}`) }),
    // The read planner's mode; ignored by a loader without one (see the header).
    readerOptions: { planner: args.mode, threads: args.readThreads ?? 0 },
  });
  const rss = rssTracker();
  send({ type: 'ready', address: server.address });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats')
      send({
        type: 'stats',
        stats: server.stats(),
        rss: process.memoryUsage.rss(),
        peakRss: rss.peak(),
        events: capture.take(),
      });
    if (m.type === 'stop') {
      rss.stop();
      void server.close(1_000).finally(() => process.exit(0));
    }
  });
}

/** The whole-shard streaming peer: a StreamEpoch server that reads whole shards. */
async function rolePeer(args: { scorerAddress: string; s3: S3Options }): Promise<void> {
  const grpc = await import('@grpc/grpc-js');
  const { LoaderService, pb } = await import('../proto/index.js');
  const { createScorerClient } = await import('../scorer/index.js');
  const { openDataset } = await import('../loader/index.js');
  const { cutSample } = await import('../loader/fetch/cut.js');
  const { createS3Client } = await import('../storage/index.js');
  const { splitBatch } = await import('../loader/service/session/batch-parts.js');
  // The loader's process setting for Buffer-heavy serving (loader/service/buffer-gc.ts), so
  // the comparison is of the read paths, not of GC settings.
  const { applyBufferGc } = await import('../loader/service/buffer-gc.js');
  applyBufferGc('heap-limit');
  const client = createS3Client({ ...args.s3 });
  const dataset = await openDataset(`s3://${BUCKET}/${PREFIX}/manifest.json`, { client });
  const scorer = createScorerClient({ address: args.scorerAddress });
  const stats: PeerStats = { gets: 0, bytesRequested: 0 };
  const rss = rssTracker();
  const server = new grpc.Server({ 'grpc.max_send_message_length': 8 * MiB });
  type Call = grpcTypes.ServerDuplexStream<
    sadp.v1.StreamEpochRequest,
    sadp.v1.StreamEpochResponse | Uint8Array
  >;
  server.addService(LoaderService, {
    describeEpoch: (_: unknown, cb: grpcTypes.sendUnaryData<unknown>) =>
      cb({ code: grpc.status.UNIMPLEMENTED }),
    streamEpoch: (call: Call) => {
      let done = false;
      let lastBatch = -1;
      let ended = false;
      const finish = (): void => {
        if (!ended && done) {
          ended = true;
          call.end();
        }
      };
      call.on('data', (req: sadp.v1.StreamEpochRequest) => {
        if (req.ack) {
          call.write(pb.StreamEpochResponse.create({ committed: { throughIndex: req.ack.index ?? 0 } }));
          if ((req.ack.index ?? 0) >= lastBatch) finish();
          return;
        }
        const open = req.open;
        if (!open) return;
        void (async () => {
          const plan = await scorer.getPlan(open.jobId ?? '', open.epoch ?? 0);
          const selected = new Set(plan.ids);
          const weightOf = new Map<number, number>();
          plan.ids.forEach((id: number, i: number) => weightOf.set(id, plan.weights[i] as number));
          const W = open.worldSize ?? 1;
          const B = open.batchSize ?? 1;
          const shards = [...Array(dataset.shardCount).keys()].filter((s) => s % W === (open.rank ?? 0));
          let count = 0;
          let bytes = 0;
          for (const s of shards) {
            const idx = dataset.shardIndex(s);
            for (const e of idx.samples) {
              const id = idx.firstId + idx.samples.indexOf(e);
              if (selected.has(id)) {
                count++;
                bytes += e.end - e.offset;
              }
            }
          }
          const steps = Math.ceil(count / B);
          lastBatch = steps - 1;
          call.write(
            pb.StreamEpochResponse.create({
              info: {
                jobId: open.jobId,
                epoch: open.epoch,
                datasetSize: dataset.size,
                selectedCount: plan.ids.length,
                samplesPerRank: count,
                steps,
                pruneRatio: plan.pruneRatio,
                expectedSize: plan.expectedSize,
                planDigest: plan.digest,
                fields: ['cls', 'jpg'],
                datasetBytes: dataset.manifest.bytes,
                selectedBytes: bytes,
                epochs: 1,
              },
            }),
          );
          // Sequential whole-shard reads, two ahead.
          const read = (s: number): Promise<Uint8Array> => {
            stats.gets++;
            return dataset.store.get(dataset.shardKey(s)).then((b) => {
              stats.bytesRequested += b.byteLength;
              return b;
            });
          };
          const pending = shards.slice(0, 2).map(read);
          let batch: ReturnType<typeof cutSample>[] = [];
          let index = 0;
          const flush = async (): Promise<void> => {
            const spec = {
              index,
              ids: Uint32Array.from(batch, (x) => x.id),
              weights: Float64Array.from(batch, (x) => weightOf.get(x.id) ?? 1),
              padded: new Uint8Array(batch.length),
              bytes: 0,
            };
            for (const part of splitBatch(spec, batch, 3 * MiB).parts) {
              if (!call.write(part)) await new Promise((r) => call.once('drain', r));
            }
            index++;
            batch = [];
          };
          for (let k = 0; k < shards.length; k++) {
            const s = shards[k] as number;
            const buf = await (pending[k] as Promise<Uint8Array>);
            if (k + 2 < shards.length) pending.push(read(shards[k + 2] as number));
            const idx = dataset.shardIndex(s);
            for (let j = 0; j < idx.samples.length; j++) {
              const id = idx.firstId + j;
              if (!selected.has(id)) continue;
              batch.push(cutSample(buf, 0, idx, id, dataset.shardKey(s)));
              if (batch.length === B) await flush();
            }
          }
          if (batch.length > 0) await flush();
          done = true;
          if (steps === 0) finish();
        })().catch((err: unknown) => {
          call.destroy(err instanceof Error ? err : new Error(String(err)));
        });
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  send({ type: 'ready', address: `127.0.0.1:${port}` });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats')
      send({ type: 'stats', stats, rss: process.memoryUsage.rss(), peakRss: rss.peak() });
    if (m.type === 'stop') {
      rss.stop();
      server.forceShutdown();
      process.exit(0);
    }
  });
}

interface RunRequest {
  type: 'run';
  address: string;
  job: string;
  epochs: number;
  batchSize: number;
  world: number;
}

async function roleTrainer(rank: number): Promise<void> {
  const { createLoaderClient } = await import('../trainer/client/index.js');
  const log = timeline(`trainer-${rank}`);
  const run = async (req: RunRequest): Promise<void> => {
    const client = createLoaderClient({ address: req.address });
    try {
      for (let epoch = 0; epoch < req.epochs; epoch++) {
        const stream = client.epoch({
          job: req.job,
          epoch,
          rank,
          worldSize: req.world,
          batchSize: req.batchSize,
        });
        const r: RankEpoch = {
          rank,
          epoch,
          openedAt: now(),
          firstBatchAt: 0,
          lastAckAt: 0,
          samples: 0,
          bytes: 0,
          selectedCount: 0,
          selectedBytes: 0,
        };
        log(`open ${req.job} ${epoch}`);
        for await (const batch of stream) {
          if (r.firstBatchAt === 0) r.firstBatchAt = now();
          log(`batch ${req.job} ${epoch} ${r.samples}`);
          r.samples += batch.size;
          for (const list of Object.values(batch.fields)) for (const b of list) r.bytes += b.byteLength;
          const jpg = batch.fields.jpg ?? [];
          const scores = new Float32Array(batch.size);
          for (let j = 0; j < batch.size; j++) scores[j] = 0.05 + (jpg[j]?.[0] ?? 0) / 256;
          await batch.ack({ scores });
          r.lastAckAt = now();
        }
        r.selectedCount = stream.info?.selectedCount ?? 0;
        r.selectedBytes = stream.info?.selectedBytes ?? 0;
        send({ type: 'epoch', result: r });
      }
      send({ type: 'done' });
    } finally {
      client.close();
    }
  };
  process.on('message', (m: RunRequest | { type: 'stop' }) => {
    if (m.type === 'stop') process.exit(0);
    if (m.type === 'run')
      run(m).catch((err: unknown) => send({ type: 'error', message: `rank ${rank}: ${String(err)}` }));
  });
  send({ type: 'ready' });
}

async function roleRaw(args: { s3: S3Options; keys: string[]; concurrency: number }): Promise<void> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { createS3Client } = await import('../storage/index.js');
  const { forEachLimited } = await import('../common/pool.js');
  const client = createS3Client({ ...args.s3, maxAttempts: 1 });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') {
      client.destroy();
      process.exit(0);
    }
    if (m.type !== 'pass') return;
    void (async () => {
      const started = performance.now();
      let bytes = 0;
      await forEachLimited(args.keys, { concurrency: args.concurrency, what: 'raw read' }, async (key) => {
        const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        for await (const chunk of res.Body as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
      });
      send({ type: 'raw', seconds: (performance.now() - started) / 1000, bytes, objects: args.keys.length });
    })().catch((err: unknown) => send({ type: 'error', message: `raw: ${String(err)}` }));
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------- children

interface Child {
  readonly name: string;
  next<T extends Msg['type']>(type: T): Promise<Extract<Msg, { type: T }>>;
  send(m: object): void;
  stop(): Promise<void>;
}

/** Where --profile puts CPU profiles (undefined: not profiling). */
const PROFILE_DIR = ((): string | undefined => {
  const at = process.argv.indexOf('--profile');
  return at >= 0 ? resolve(process.argv[at + 1] ?? 'bench/results/profiles') : undefined;
})();
const PROFILED_ROLES = new Set(['loader', 'peer']);
const READ_THREADS = ((): number => {
  const at = process.argv.indexOf('--read-threads');
  return at >= 0 ? Number(process.argv[at + 1]) : 0;
})();

/** A role of this script as a child process, in network namespace `ns` when given. */
function startChild(name: string, role: string, arg: unknown, ns?: string): Child {
  const profile =
    PROFILE_DIR && PROFILED_ROLES.has(role)
      ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, name.replace(/[^\w.-]+/g, '_'))]
      : [];
  const node = [process.execPath, ...process.execArgv, ...profile, SELF, '--role', role, JSON.stringify(arg)];
  const [cmd, ...argv] = ns ? ['ip', 'netns', 'exec', ns, ...node] : node;
  const proc: ChildProcess = spawn(cmd as string, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function cpuMs(c: Child): Promise<number> {
  c.send({ type: 'cpu' });
  const m = await c.next('cpu');
  return m.userMs + m.systemMs;
}

// ---------------------------------------------------------------- setup

function sh(cmd: string, args: string[], allowFail = false): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail)
    throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

function requireTools(): void {
  if (process.getuid?.() !== 0) throw new Error('bench:loader needs root (network namespaces, tc)');
  if (spawnSync('nginx', ['-v']).status !== 0) {
    const apt = spawnSync('apt-get', ['install', '-y', 'nginx-light'], { stdio: 'inherit' });
    if (apt.status !== 0 || spawnSync('nginx', ['-v']).status !== 0) {
      throw new Error('bench:loader needs nginx: apt-get install -y nginx-light');
    }
  }
}

async function startNginx(dir: string, www: string, listen: string, ns?: string): Promise<ChildProcess> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'nginx.conf'), nginxConf({ dir, www, listen, workerConnections: 4096 }));
  const args = ['-c', join(dir, 'nginx.conf')];
  const proc = ns
    ? spawn('ip', ['netns', 'exec', ns, 'nginx', ...args], { stdio: 'inherit' })
    : spawn('nginx', args, { stdio: 'inherit' });
  const [host, port] = listen.split(':');
  for (let i = 0; i < 100; i++) {
    const probe = spawnSync(
      ns ? 'ip' : 'bash',
      ns
        ? ['netns', 'exec', ns, 'bash', '-c', `echo > /dev/tcp/${host}/${port}`]
        : ['-c', `echo > /dev/tcp/${host}/${port}`],
    );
    if (probe.status === 0) return proc;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`nginx did not listen on ${listen}`);
}

function setupNamespaces(): void {
  teardownNamespaces();
  sh('ip', ['netns', 'add', NS_S3]);
  sh('ip', ['netns', 'add', NS_CLI]);
  sh('ip', ['link', 'add', 'sadpb-veth-s', 'type', 'veth', 'peer', 'name', 'sadpb-veth-c']);
  sh('ip', ['link', 'set', 'sadpb-veth-s', 'netns', NS_S3]);
  sh('ip', ['link', 'set', 'sadpb-veth-c', 'netns', NS_CLI]);
  sh('ip', ['-n', NS_S3, 'addr', 'add', `${S3_ADDR}/30`, 'dev', 'sadpb-veth-s']);
  sh('ip', ['-n', NS_CLI, 'addr', 'add', `${CLI_ADDR}/30`, 'dev', 'sadpb-veth-c']);
  for (const ns of [NS_S3, NS_CLI]) sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', NS_S3, 'link', 'set', 'sadpb-veth-s', 'up']);
  sh('ip', ['-n', NS_CLI, 'link', 'set', 'sadpb-veth-c', 'up']);
  for (const [ns, dev] of [
    [NS_S3, 'sadpb-veth-s'],
    [NS_CLI, 'sadpb-veth-c'],
  ] as const) {
    sh('tc', [
      '-n',
      ns,
      'qdisc',
      'replace',
      'dev',
      dev,
      'root',
      'tbf',
      'rate',
      '1gbit',
      'burst',
      '256kb',
      'latency',
      '20ms',
    ]);
  }
}

function teardownNamespaces(): void {
  for (const ns of [NS_S3, NS_CLI]) sh('ip', ['netns', 'del', ns], true);
}

/** nginx's ETag of a static file: hex(mtime seconds)-hex(size), quotes stripped. */
async function nginxEtag(path: string): Promise<{ etag: string; size: number }> {
  const st = await stat(path);
  return { etag: `${Math.floor(st.mtimeMs / 1000).toString(16)}-${st.size.toString(16)}`, size: st.size };
}

// ---------------------------------------------------------------- cases

interface CaseResult {
  link: LinkName;
  r: number;
  kind: 'auto' | 'ranges' | 'min-bytes' | 'peer' | 'raw' | 'auto-50ms' | 'auto-proxy' | 'auto-shard-buffer';
  epochSeconds: number;
  samplesPerSecond: number;
  samples: number;
  getsPerSample: number;
  fetchedOverSelected: number;
  cpuUsPerSample: number | null;
  rssPeakMiB: number | null;
  /** Every round's epoch time, in run order, when the case ran more than once (--repeats). */
  epochSecondsRounds?: number[];
  /**
   * The loader's read-planner cost model after the case (CPU us per GET and per KB,
   * first-byte latency in ms, link us per KB) and the GETs it was fitted on.
   */
  plannerCost?: {
    perRequestUs: number;
    perKbUs: number;
    latencyMs: number;
    linkPerKbUs: number;
    costSamples: number;
    /** GETs the reader allowed in flight at the end of the case (absent before the limit adapted). */
    inFlightLimit?: number;
  };
  /** Where each epoch's time went (timelineOf). */
  timeline?: Timeline[];
}

/**
 * Each case's median round by epoch time (the lower middle one for an even
 * count), with every round's epoch time beside it.
 */
function medianRounds(runs: CaseResult[]): CaseResult[] {
  const groups = new Map<string, CaseResult[]>();
  for (const c of runs) {
    const key = `${c.link} ${c.kind} ${c.r}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return [...groups.values()].map((g) => {
    const sorted = [...g].sort((a, b) => a.epochSeconds - b.epochSeconds);
    const median = sorted[(sorted.length - 1) >> 1] as CaseResult;
    return g.length > 1 ? { ...median, epochSecondsRounds: g.map((c) => c.epochSeconds) } : median;
  });
}

/**
 * One epoch's critical path, ms after its start: the first rank's StreamEpoch
 * call for epoch 0, the last ack of the epoch before (the boundary) for the
 * others. The loader's job setup and plan load (from its log), the scorer's
 * plan task, each rank's open, first batch and last ack.
 */
interface Timeline {
  epoch: number;
  jobOpenedMs?: number;
  describeMs?: number;
  datasetMs?: number;
  planLoadedMs?: number;
  planFetchedMs?: number;
  /** When the loader's boundary prefetch had the plan and started warming the ranks' first batches (epoch > 0). */
  prefetchedMs?: number;
  gateMs?: number;
  getPlanMs?: number;
  shuffleMs?: number;
  scorerTaskMs?: number;
  scorerComputeMs?: number;
  openedMs: number[];
  firstBatchMs: number[];
  lastAckMs: number[];
  /** Time to the last rank's first batch over the epoch time. */
  startShare: number;
  /** The slowest rank's lead over the fastest at the end, over the epoch time. */
  tailShare: number;
}

function timelineOf(
  job: string,
  epoch: number,
  ranks: RankEpoch[],
  previous: RankEpoch[],
  loader: LogEvent[],
  scorer: LogEvent[],
): Timeline {
  const t0 =
    previous.length > 0
      ? Math.max(...previous.map((x) => x.lastAckAt))
      : Math.min(...ranks.map((x) => x.openedAt));
  const rel = (at: number | undefined): number | undefined => (at ? Math.round(at - t0) : undefined);
  const num = (e: LogEvent | undefined, k: string): number | undefined =>
    typeof e?.[k] === 'number' ? e[k] : undefined;
  const find = (msg: string, jobKey = 'job'): LogEvent | undefined =>
    loader.find((e) => e.msg === msg && e[jobKey] === job && (e.epoch === undefined || e.epoch === epoch));
  const opened = epoch === 0 ? find('job opened') : undefined;
  const loaded = find('epoch plan loaded');
  // Loaders that fetch the plan beside the dataset log it apart.
  const fetched = find('epoch plan fetched') ?? loaded;
  const prefetched = find('next epoch prefetched at boundary');
  const planned = scorer.find((e) => e.msg === 'plan computed' && e.jobId === job && e.epoch === epoch);
  const byRank = [...ranks].sort((a, b) => a.rank - b.rank);
  const openedMs = byRank.map((x) => Math.round(x.openedAt - t0));
  const firstBatchMs = byRank.map((x) => Math.round(x.firstBatchAt - t0));
  const lastAckMs = byRank.map((x) => Math.round(x.lastAckAt - t0));
  const epochMs = Math.max(...lastAckMs);
  return {
    epoch,
    jobOpenedMs: rel(opened?.at),
    describeMs: num(opened, 'describeMs'),
    datasetMs: num(opened, 'datasetMs'),
    planLoadedMs: rel(loaded?.at),
    planFetchedMs: rel(fetched?.at),
    prefetchedMs: rel(prefetched?.at),
    gateMs: num(fetched, 'gateMs'),
    getPlanMs: num(fetched, 'planMs'),
    shuffleMs: num(loaded, 'shuffleMs'),
    scorerTaskMs: num(planned, 'taskMs'),
    scorerComputeMs: num(planned, 'computeMs'),
    openedMs,
    firstBatchMs,
    lastAckMs,
    startShare: round(Math.max(...firstBatchMs) / epochMs, 3),
    tailShare: round((epochMs - Math.min(...lastAckMs)) / epochMs, 3),
  };
}

interface LinkEnv {
  name: LinkName;
  scorer: Child;
  trainers: Child[];
  servers: Record<
    'auto' | 'ranges' | 'min-bytes' | 'peer' | 'auto-50ms' | 'auto-proxy' | 'auto-shard-buffer',
    Child | undefined
  >;
  addresses: Record<string, string>;
  raw: Child;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const cold = process.argv.includes('--cold');
  const repeatsAt = process.argv.indexOf('--repeats');
  const countArg = (at: number, name: string): number => {
    const n = Number(process.argv[at + 1]);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${name} takes a whole number >= 1, got ${process.argv[at + 1]}`);
    return n;
  };
  const repeats = repeatsAt >= 0 ? countArg(repeatsAt, '--repeats') : quick ? 1 : 3;
  const epochsAt = process.argv.indexOf('--epochs');
  const config = { ...(quick ? QUICK : FULL) };
  // --epochs <n>: epochs per case (each after the first also shows the epoch boundary).
  if (epochsAt >= 0) config.epochs = countArg(epochsAt, '--epochs');
  const t0 = Date.now();
  const log = (line: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}`);
  requireTools();
  const watchdog = setTimeout(() => {
    console.error('bench:loader: no result after 20 minutes, giving up');
    process.exit(1);
  }, 20 * 60_000);
  watchdog.unref();
  const dir = await mkdtemp(join(tmpdir(), 'sadpb-loader-'));
  // nginx's workers run unprivileged: the tree they serve must be readable.
  await chmod(dir, 0o755);
  const www = join(dir, 'www');
  const children: Child[] = [];
  const nginxes: ChildProcess[] = [];
  const start = (name: string, role: string, arg: unknown, ns?: string): Child => {
    const c = startChild(name, role, arg, ns);
    children.push(c);
    return c;
  };
  /** Every round of every case; `results` keeps each case's median round. */
  const runs: CaseResult[] = [];
  const results: CaseResult[] = [];
  let planner = false;
  try {
    // Shards on disk under www/<bucket>/<prefix>, the manifest rewritten with nginx's ETags.
    const { buildShards, syntheticSource } = await import('../loader/shards/index.js');
    const root = join(www, BUCKET, PREFIX);
    await mkdir(root, { recursive: true });
    const built = await buildShards(
      syntheticSource({ count: config.samples, meanBytes: config.meanBytes, seed: 12 }),
      {
        out: root,
        shardBytes: config.shardBytes,
      },
    );
    const manifestPath = join(root, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as {
      shards: { url: string; etag: string; size: number; index: string }[];
      bytes: number;
    };
    // A fixed mtime so both nginx instances give the same ETag.
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000);
    for (const s of manifest.shards) {
      await utimes(join(root, s.url), mtime, mtime);
      const { etag } = await nginxEtag(join(root, s.url));
      s.etag = etag;
      const idxPath = join(root, s.index);
      const idx = JSON.parse(await readFile(idxPath, 'utf8')) as { etag: string };
      idx.etag = etag;
      await writeFile(idxPath, JSON.stringify(idx));
    }
    await writeFile(manifestPath, JSON.stringify(manifest));
    const keys = manifest.shards.map((s) => `${PREFIX}/${s.url}`);
    log(
      `dataset: ${built.samples} samples, ${manifest.shards.length} shards, ${(manifest.bytes / MB).toFixed(0)} MB of samples`,
    );
    const hasPlanner = await import('../loader/index.js').then(
      (m) => 'planner' in (m.resolveRangeReaderOptions({}) as object),
    );
    planner = hasPlanner;

    nginxes.push(await startNginx(join(dir, 'nginx-lo'), www, `127.0.0.1:${NGINX_PORT}`));
    setupNamespaces();
    nginxes.push(await startNginx(join(dir, 'nginx-ns'), www, `${S3_ADDR}:${NGINX_PORT}`, NS_S3));
    log(`nginx up on 127.0.0.1 and ${S3_ADDR} (namespace ${NS_S3}, veth shaped by tbf 1gbit)`);

    // Both links' processes start at once (process start-up is most of a quick run).
    const setupLink = async (name: LinkName): Promise<LinkEnv> => {
      const ns = name === 'link' ? NS_CLI : undefined;
      const origin = name === 'link' ? `http://${S3_ADDR}:${NGINX_PORT}` : `http://127.0.0.1:${NGINX_PORT}`;
      let endpoint = origin;
      if (name === 'link') {
        const proxy = start('proxy(20ms)', 'proxy', { target: origin, latencyMs: LINK_LATENCY_MS }, ns);
        endpoint = (await proxy.next('ready')).endpoint as string;
      }
      const s3: S3Options = { endpoint, region: 'us-east-1', forcePathStyle: true, ...CREDS };
      const scorer = start(`scorer(${name})`, 'scorer', null, ns);
      const scorerAddress = (await scorer.next('ready')).address as string;
      const servers: LinkEnv['servers'] = {
        auto: undefined,
        ranges: undefined,
        'min-bytes': undefined,
        peer: undefined,
        'auto-50ms': undefined,
        'auto-proxy': undefined,
        'auto-shard-buffer': undefined,
      };
      const addresses: Record<string, string> = {};
      servers.auto = start(
        `loader-auto(${name})`,
        'loader',
        { scorerAddress, s3, mode: 'auto', readThreads: READ_THREADS },
        ns,
      );
      servers.ranges = start(
        `loader-ranges(${name})`,
        'loader',
        { scorerAddress, s3, mode: 'ranges', readThreads: READ_THREADS },
        ns,
      );
      servers.peer = start(`peer(${name})`, 'peer', { scorerAddress, s3 }, ns);
      servers['auto-shard-buffer'] = start(
        `loader-auto-shard-buffer(${name})`,
        'loader',
        { scorerAddress, s3, mode: 'auto', readThreads: READ_THREADS, shuffle: 'shard-buffer' },
        ns,
      );
      if (name === 'loopback') {
        servers['min-bytes'] = start(
          `loader-min-bytes(${name})`,
          'loader',
          { scorerAddress, s3, mode: 'min-bytes', readThreads: READ_THREADS },
          ns,
        );
        const proxy = start('proxy(50ms)', 'proxy', { target: origin, latencyMs: HIGH_LATENCY_MS }, ns);
        const slow = (await proxy.next('ready')).endpoint as string;
        servers['auto-50ms'] = start(
          `loader-auto-50ms(${name})`,
          'loader',
          { scorerAddress, s3: { ...s3, endpoint: slow }, mode: 'auto', readThreads: READ_THREADS },
          ns,
        );
        const relay = start('proxy(0ms)', 'proxy', { target: origin, latencyMs: 0 }, ns);
        const relayed = (await relay.next('ready')).endpoint as string;
        servers['auto-proxy'] = start(
          `loader-auto-proxy(${name})`,
          'loader',
          { scorerAddress, s3: { ...s3, endpoint: relayed }, mode: 'auto', readThreads: READ_THREADS },
          ns,
        );
      }
      for (const [k, c] of Object.entries(servers))
        if (c) addresses[k] = (await c.next('ready')).address as string;
      const trainers = Array.from({ length: config.world }, (_, rank) =>
        start(`trainer${rank}(${name})`, 'trainer', rank, ns),
      );
      for (const t of trainers) await t.next('ready');
      const raw = start(`raw(${name})`, 'raw', { s3, keys, concurrency: 16 }, ns);
      await raw.next('ready');
      log(
        `${name}: scorer, loaders (auto, ranges${name === 'loopback' ? ', min-bytes, auto+50ms, auto+proxy' : ''}), peer, ${config.world} trainers, raw reader up`,
      );
      return { name, scorer, trainers, servers, addresses, raw };
    };
    const links = await Promise.all([setupLink('loopback'), setupLink('link')]);

    let jobNo = 0;
    const runCase = async (
      env: LinkEnv,
      kind: Exclude<CaseResult['kind'], 'raw'>,
      r: number,
    ): Promise<CaseResult> => {
      const server = env.servers[kind] as Child;
      const job = `b${++jobNo}-${kind}-${r}`;
      env.scorer.send({ type: 'job', jobId: job, samples: config.samples, r, epochs: config.epochs });
      await env.scorer.next('job-ok');
      env.scorer.send({ type: 'events' });
      await env.scorer.next('events');
      server.send({ type: 'stats' });
      const before = await server.next('stats');
      const cpu0 = await cpuMs(server);
      for (const t of env.trainers) {
        t.send({
          type: 'run',
          address: env.addresses[kind] as string,
          job,
          epochs: config.epochs,
          batchSize: config.batchSize,
          world: config.world,
        } satisfies RunRequest);
      }
      const perRank = await Promise.all(
        env.trainers.map(async (t) => {
          const epochs: RankEpoch[] = [];
          for (let e = 0; e < config.epochs; e++) epochs.push((await t.next('epoch')).result);
          await t.next('done');
          return epochs;
        }),
      );
      const cpu1 = await cpuMs(server);
      server.send({ type: 'stats' });
      const after = await server.next('stats');
      env.scorer.send({ type: 'events' });
      const scorerEvents = (await env.scorer.next('events')).events;
      const all = perRank.flat();
      const epochSeconds: number[] = [];
      for (let e = 0; e < config.epochs; e++) {
        const rs = all.filter((x) => x.epoch === e);
        epochSeconds.push(
          (Math.max(...rs.map((x) => x.lastAckAt)) - Math.min(...rs.map((x) => x.openedAt))) / 1000,
        );
      }
      const samples = all.reduce((a, x) => a + x.samples, 0);
      const seconds = epochSeconds.reduce((a, b) => a + b, 0);
      const selectedBytes =
        kind === 'peer'
          ? all.reduce((a, x) => a + x.selectedBytes, 0)
          : all.filter((x) => x.rank === 0).reduce((a, x) => a + x.selectedBytes, 0);
      const gets =
        'io' in after.stats
          ? after.stats.io.requests - (before.stats as LoaderStats).io.requests
          : after.stats.gets - (before.stats as PeerStats).gets;
      const fetched =
        'io' in after.stats
          ? after.stats.io.bytesRequested - (before.stats as LoaderStats).io.bytesRequested
          : after.stats.bytesRequested - (before.stats as PeerStats).bytesRequested;
      const result: CaseResult = {
        link: env.name,
        r,
        kind,
        epochSeconds: round(seconds / config.epochs, 3),
        samplesPerSecond: round(samples / seconds),
        samples,
        getsPerSample: round(gets / Math.max(1, samples), 3),
        fetchedOverSelected: round(fetched / Math.max(1, selectedBytes), 3),
        cpuUsPerSample: round(((cpu1 - cpu0) * 1000) / Math.max(1, samples), 0),
        rssPeakMiB: round(after.peakRss / MiB, 0),
      };
      result.timeline = [];
      for (let e = 0; e < config.epochs; e++) {
        const ranks = all.filter((x) => x.epoch === e);
        const previous = all.filter((x) => x.epoch === e - 1);
        const t = timelineOf(job, e, ranks, previous, after.events ?? [], scorerEvents);
        result.timeline.push(t);
        // Steps a process does not log (the peer has no job setup) are left out.
        const ms = (label: string, v: number | undefined, inner = ''): string =>
          v === undefined ? '' : `${label} ${v}${inner}, `;
        const sub = (parts: [string, number | undefined][]): string => {
          const known = parts.filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`);
          return known.length ? ` (${known.join(', ')})` : '';
        };
        log(
          `${env.name} r=${r} ${kind} epoch ${e} timeline (ms after ${e === 0 ? 'the first OpenEpoch' : 'the last ack of the epoch before'}): ` +
            (e === 0
              ? ms(
                  'job opened',
                  t.jobOpenedMs,
                  sub([
                    ['describe', t.describeMs],
                    ['dataset', t.datasetMs],
                  ]),
                )
              : '') +
            `ranks opened ${t.openedMs.join('/')}, ` +
            ms(
              'plan fetched',
              t.planFetchedMs,
              sub([
                ['gate', t.gateMs],
                ['GetPlan', t.getPlanMs],
                ['scorer task', t.scorerTaskMs],
                ['compute', t.scorerComputeMs],
              ]),
            ) +
            ms('plan loaded', t.planLoadedMs, sub([['shuffle', t.shuffleMs]])) +
            ms('boundary prefetch', t.prefetchedMs) +
            `first batch ${t.firstBatchMs.join('/')}, last ack ${t.lastAckMs.join('/')}; ` +
            `start ${(t.startShare * 100).toFixed(0)} %, tail ${(t.tailShare * 100).toFixed(0)} % of the epoch`,
        );
      }
      if ('planner' in after.stats) {
        const p = after.stats.planner;
        result.plannerCost = {
          perRequestUs: round(p.perRequestUs, 0),
          perKbUs: round(p.perByteUs * 1000, 3),
          latencyMs: round(p.latencyUs / 1000, 2),
          linkPerKbUs: round(p.linkPerByteUs * 1000, 3),
          costSamples: p.costSamples,
          ...('inFlightLimit' in p ? { inFlightLimit: p.inFlightLimit } : {}),
        };
      }
      log(
        `${env.name} r=${r} ${kind}: epoch ${result.epochSeconds} s, ${result.samplesPerSecond} samples/s, ` +
          `${result.getsPerSample} GETs/sample, fetched/selected ${result.fetchedOverSelected}, ` +
          `${result.cpuUsPerSample} CPU us/sample, RSS peak ${result.rssPeakMiB} MiB` +
          (result.plannerCost
            ? `, cost model CPU ${result.plannerCost.perRequestUs} us/GET + ${result.plannerCost.perKbUs} us/KB, ` +
              `latency ${result.plannerCost.latencyMs} ms, link ${result.plannerCost.linkPerKbUs} us/KB` +
              (result.plannerCost.inFlightLimit === undefined
                ? ''
                : `, ${result.plannerCost.inFlightLimit} GETs in flight allowed`)
            : ''),
      );
      return result;
    };
    const runRaw = async (env: LinkEnv): Promise<CaseResult> => {
      env.raw.send({ type: 'pass' });
      const m = await env.raw.next('raw');
      const result: CaseResult = {
        link: env.name,
        r: 0,
        kind: 'raw',
        epochSeconds: round(m.seconds, 3),
        samplesPerSecond: round(config.samples / m.seconds),
        samples: config.samples,
        getsPerSample: round(m.objects / config.samples, 3),
        fetchedOverSelected: round(m.bytes / manifest.bytes, 3),
        cpuUsPerSample: null,
        rssPeakMiB: null,
      };
      log(
        `${env.name} raw GetObject: ${result.epochSeconds} s, ${result.samplesPerSecond} samples/s (bytes only)`,
      );
      return result;
    };

    for (const env of links) {
      if (!cold) {
        const warm = (Object.keys(env.servers) as (keyof LinkEnv['servers'])[]).filter((k) => env.servers[k]);
        log(`${env.name}: a warm-up epoch for ${warm.join(', ')} (not recorded)`);
        for (const kind of warm) await runCase(env, kind, 0.7);
      }
      // Rounds of every case, side by side: one epoch varies by tens of percent on a
      // shared 2-core machine, so each case's figures are those of its median round.
      for (let pass = 1; pass <= repeats; pass++) {
        if (repeats > 1) log(`${env.name}: round ${pass} of ${repeats}`);
        runs.push(await runRaw(env));
        for (const r of RATIOS) {
          // Side by side: the cases of one r follow each other.
          for (const kind of ['auto', 'ranges', 'peer', 'auto-shard-buffer'] as const)
            runs.push(await runCase(env, kind, r));
          if (env.name === 'loopback' && r >= 0.3) runs.push(await runCase(env, 'min-bytes', r));
        }
        if (env.name === 'loopback') {
          // Side by side, the reference first.
          runs.push(await runCase(env, 'auto-proxy', 0));
          runs.push(await runCase(env, 'auto-50ms', 0));
        }
      }
    }
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    for (const n of nginxes) n.kill('SIGQUIT');
    await new Promise((r) => setTimeout(r, 300));
    for (const n of nginxes) if (n.exitCode === null) n.kill('SIGKILL');
    teardownNamespaces();
    await rm(dir, { recursive: true, force: true });
  }

  results.push(...medianRounds(runs));
  const pick = (link: LinkName, kind: CaseResult['kind'], r: number): CaseResult | undefined =>
    results.find((x) => x.link === link && x.kind === kind && x.r === r);
  const ratio = (a?: number, b?: number): number | null => (a && b ? round(a / b, 3) : null);
  const timeRatio = Object.fromEntries(
    (['loopback', 'link'] as const).map((link) => [
      link,
      Object.fromEntries(
        RATIOS.map((r) => [
          String(r),
          ratio(pick(link, 'auto', r)?.epochSeconds, pick(link, 'peer', r)?.epochSeconds),
        ]),
      ),
    ]),
  );
  const goals = {
    cpuUsPerSampleR0: pick('loopback', 'auto', 0)?.cpuUsPerSample ?? null,
    timeRatio,
    fetchedOverSelectedMinBytes: Object.fromEntries(
      [0.3, 0.5, 0.7].map((r) => [String(r), pick('loopback', 'min-bytes', r)?.fetchedOverSelected ?? null]),
    ),
    latency50Ratio: ratio(
      pick('loopback', 'auto-50ms', 0)?.samplesPerSecond,
      pick('loopback', 'auto-proxy', 0)?.samplesPerSecond,
    ),
  };
  // The same 50 ms case against the loader reading nginx directly (no relay).
  const latency50RatioDirect = ratio(
    pick('loopback', 'auto-50ms', 0)?.samplesPerSecond,
    pick('loopback', 'auto', 0)?.samplesPerSecond,
  );
  const out = {
    benchmark: 'loader',
    generatedAt: new Date().toISOString(),
    quick,
    warmUp: !cold,
    command: `npm run bench:loader${quick ? ' -- --quick' : ''}`,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      totalMemoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      loadavg: loadavg().map((x) => round(x, 2)),
    },
    config,
    readThreads: READ_THREADS,
    planner,
    links: {
      loopback: 'nginx on 127.0.0.1',
      link: `veth + tbf 1gbit both ends, +${LINK_LATENCY_MS} ms per request (fault proxy)`,
    },
    goals,
    latency50RatioDirect,
    targets: {
      cpuUsPerSampleR0: '<= 300',
      timeRatio: {
        link: { '0': '<= 1.1', '0.3': '<= 0.8', '0.5': '<= 0.6', '0.7': '<= 0.4' },
        loopback: '<= 1.1 at every r',
      },
      fetchedOverSelectedMinBytes: '<= 1.05',
      latency50Ratio: '>= 0.8',
    },
    cases: results,
    wallSeconds: round((Date.now() - t0) / 1000, 1),
  };
  const { packageRoot } = await import('../common/paths.js');
  await mkdir(join(packageRoot, 'bench/results'), { recursive: true });
  await writeFile(
    join(packageRoot, 'bench/results', quick ? 'loader-quick.json' : 'loader.json'),
    `${JSON.stringify(out, null, 2)}\n`,
  );
  log(`goals: ${JSON.stringify(goals)}`);
  if (PROFILE_DIR) await printProfiles(PROFILE_DIR);
  log(`done in ${out.wallSeconds} s`);
}

/** Each profiled process's CPU by package (--profile). */
async function printProfiles(dir: string): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  const { summarizeProfile } = await import('./cpu-profile.js');
  for (const name of (await readdir(dir)).sort()) {
    for (const file of await readdir(join(dir, name))) {
      if (!file.endsWith('.cpuprofile')) continue;
      const { busyMs, groups } = await summarizeProfile(join(dir, name, file));
      console.log(`\n${name} (${join(dir, name, file)}): ${busyMs.toFixed(0)} ms busy`);
      for (const g of groups.slice(0, 25)) {
        console.log(
          `  ${(100 * g.share).toFixed(1).padStart(5)} %  ${g.ms.toFixed(0).padStart(7)} ms  ${g.group}`,
        );
      }
    }
  }
}

const roleAt = process.argv.indexOf('--role');
if (roleAt >= 0) {
  const role = process.argv[roleAt + 1];
  const arg = JSON.parse(process.argv[roleAt + 2] ?? 'null') as unknown;
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: { type: string }) => {
    if (m.type !== 'cpu') return;
    const { user, system } = process.cpuUsage();
    send({ type: 'cpu', userMs: user / 1000, systemMs: system / 1000 });
  });
  if (role === 'scorer') await roleScorer();
  else if (role === 'proxy') await roleProxy(arg as { target: string; latencyMs: number });
  else if (role === 'loader') await roleLoader(arg as Parameters<typeof roleLoader>[0]);
  else if (role === 'peer') await rolePeer(arg as { scorerAddress: string; s3: S3Options });
  else if (role === 'trainer') await roleTrainer(arg as number);
  else if (role === 'raw') await roleRaw(arg as { s3: S3Options; keys: string[]; concurrency: number });
  else throw new Error(`unknown role ${role}`);
} else {
  await main();
}
