// Scorer benchmark: the SADP math (bench/scorer-math.ts) plus the service:
// score ingestion in process and over gRPC on loopback into a local-directory
// state store (durable before acknowledged), and streaming an ImageNet-sized
// plan (N = 1,281,167) over gRPC.
//
//   npm run bench:scorer [-- --quick]
//
// Writes bench/results/scorer.json. Client and server share this process
// (and its one JavaScript thread), so the gRPC numbers are a lower bound for
// a scorer whose reporters run elsewhere. Requests are serialized once up
// front, as a trainer would do on its own machine.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { packageRoot } from '../common/paths.js';
import { forEachLimited } from '../common/pool.js';
import { pb, ScorerClient, ScorerService, type sadp } from '../proto/index.js';
import {
  Job,
  createScorerClient,
  createScorerServer,
  openScorerCore,
  resolveJobSpec,
} from '../scorer/index.js';
import { openStore } from '../storage/index.js';
import { runMathBench } from './scorer-math.js';
import { mulberry32 } from '../test/helpers/random.js';

const IMAGENET_N = 1_281_167;
const BATCH = 65_536;
const TARGET_IN_PROCESS = 5_000_000;
const TARGET_GRPC = 1_000_000;

const quick = process.argv.includes('--quick');

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

interface Batch {
  ids: number[];
  scores: number[];
  losses: number[];
}

/** Reports covering ids 0..n-1 in shuffled blocks of BATCH, as plain arrays (what protobuf decoding yields). */
function makeBatches(n: number, seed: number): Batch[] {
  const next = mulberry32(seed);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  const batches: Batch[] = [];
  for (let from = 0; from < n; from += BATCH) {
    const ids = Array.from(order.subarray(from, Math.min(n, from + BATCH)));
    // Lognormal-ish scores, losses in [0, 5).
    batches.push({
      ids,
      scores: ids.map(() => Math.exp(2 * (next() - 0.5) * 2)),
      losses: ids.map(() => 5 * next()),
    });
  }
  return batches;
}

function progress(label: string, done: number, total: number, startedMs: number): void {
  const elapsed = (performance.now() - startedMs) / 1000;
  const rate = done / elapsed;
  const eta = rate > 0 ? (total - done) / rate : 0;
  log(`  ${label}: ${fmt(done)}/${fmt(total)} entries, ${fmt(rate)}/s, ETA ${eta.toFixed(1)} s`);
}

function benchInProcess(batches: Batch[], passes: number) {
  log(
    `in-process Job.report (validate + apply), ${passes} passes over N = ${fmt(IMAGENET_N)} in batches of ${fmt(BATCH)}`,
  );
  const record = resolveJobSpec(
    { jobId: 'bench', datasetSize: IMAGENET_N, policy: 'sadp', pruneRatio: 0.5, epochs: 100, seed: 1n },
    { maxDatasetSize: 2 ** 28 },
  );
  const job = new Job(record);
  // Warm-up pass: JIT, page faults of the score table.
  for (const b of batches) job.report({ epoch: 0, ...b });
  const total = passes * IMAGENET_N;
  const started = performance.now();
  let done = 0;
  for (let p = 0; p < passes; p++) {
    for (const b of batches) done += job.report({ epoch: p, ...b });
    if (p === 0 || p === passes - 1) progress('Job.report', done, total, started);
  }
  const seconds = (performance.now() - started) / 1000;
  const rate = done / seconds;

  // Typed-array input (what an in-process reporter would pass).
  const typed = batches.map((b) => ({
    ids: Uint32Array.from(b.ids),
    scores: Float64Array.from(b.scores),
    losses: Float64Array.from(b.losses),
  }));
  const t0 = performance.now();
  let typedDone = 0;
  for (let p = 0; p < passes; p++) for (const b of typed) typedDone += job.report({ epoch: p, ...b });
  const typedRate = typedDone / ((performance.now() - t0) / 1000);
  log(
    `  -> ${fmt(rate)} scores/s from arrays, ${fmt(typedRate)} scores/s from typed arrays (target >= ${fmt(TARGET_IN_PROCESS)})`,
  );
  return {
    entries: done,
    seconds: round(seconds, 3),
    scoresPerSecond: Math.round(rate),
    typedArrayScoresPerSecond: Math.round(typedRate),
    targetScoresPerSecond: TARGET_IN_PROCESS,
    targetMet: rate >= TARGET_IN_PROCESS,
  };
}

async function benchCoreDurable(batches: Batch[], passes: number, concurrency: number) {
  log(
    `in-process ScorerCore.reportScores into a local-dir state store (durable), concurrency ${concurrency}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-core-'));
  try {
    const core = await openScorerCore({ store: openStore(dir) });
    await core.createJob({
      jobId: 'bench',
      datasetSize: IMAGENET_N,
      policy: 'sadp',
      pruneRatio: 0.5,
      epochs: 100,
      seed: 1n,
    });
    const work: Batch[] = [];
    for (let p = 0; p < passes; p++) work.push(...batches);
    const started = performance.now();
    let done = 0;
    await forEachLimited(work, { concurrency }, async (b) => {
      // Not `done += await ...`: that reads `done` before the await and loses the other calls' counts.
      const accepted = await core.reportScores('bench', { epoch: 0, ...b });
      done += accepted;
    });
    const seconds = (performance.now() - started) / 1000;
    progress('durable reports', done, done, started);
    await core.close();
    return {
      entries: done,
      seconds: round(seconds, 3),
      scoresPerSecond: Math.round(done / seconds),
      concurrency,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A client whose ReportScores takes pre-serialized bytes, so the benchmark measures the server. */
function rawReportClient(address: string) {
  const def = {
    reportScores: { ...ScorerService.reportScores, requestSerialize: (b: Buffer) => b },
  } as unknown as grpc.ServiceDefinition;
  const Ctor = grpc.makeGenericClientConstructor(def, 'Scorer');
  return new Ctor(address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 32 * 1024 * 1024,
  }) as unknown as grpc.Client & {
    reportScores(
      req: Buffer,
      cb: (err: grpc.ServiceError | null, res?: sadp.v1.ReportScoresResponse) => void,
    ): void;
  };
}

function unary<T>(fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res!))));
}

async function fetchPlan(client: ScorerClient, jobId: string, epoch: number) {
  const started = performance.now();
  let count = 0;
  let chunks = 0;
  let bytes = 0;
  const stream = client.getPlan({ jobId, epoch });
  for await (const chunk of stream as AsyncIterable<sadp.v1.PlanChunk>) {
    chunks++;
    count += chunk.ids.length;
    bytes += pb.PlanChunk.encode(chunk).len;
  }
  return { ms: performance.now() - started, count, chunks, bytes };
}

async function benchGrpc(batches: Batch[], passes: number, concurrency: number) {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-grpc-'));
  const server = await createScorerServer({ stateUrl: join(dir, 'state') });
  const client = new ScorerClient(server.address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  const scorer = createScorerClient({ address: server.address });
  // Measured paths stay raw on purpose: ReportScores with pre-serialized bytes and
  // GetPlan chunk by chunk measure the server, not the client's encoding or digest check.
  const raw = rawReportClient(server.address);
  try {
    for (const [jobId, policy] of [
      ['sadp', 'sadp'],
      ['full', 'full'],
    ] as const) {
      await scorer.createJob({
        jobId,
        datasetSize: IMAGENET_N,
        policy,
        pruneRatio: 0.5,
        epochs: 100,
        seed: 7,
      });
    }
    const requests = batches.map((b) =>
      Buffer.from(pb.ReportScoresRequest.encode({ jobId: 'sadp', epoch: 0, ...b }).finish()),
    );
    const requestBytes = requests.reduce((n, r) => n + r.byteLength, 0);
    log(
      `gRPC ReportScores on loopback, ${concurrency} concurrent calls of ${fmt(BATCH)} entries (${(requestBytes / requests.length / 1e6).toFixed(2)} MB each), ${passes} passes`,
    );
    // Warm-up.
    await unary((cb) => raw.reportScores(requests[0]!, cb));
    const work: Buffer[] = [];
    for (let p = 0; p < passes; p++) work.push(...requests);
    const total = work.length * BATCH;
    let done = 0;
    let lastReport = performance.now();
    const started = performance.now();
    await forEachLimited(work, { concurrency }, async (req) => {
      const res = await unary<sadp.v1.ReportScoresResponse>((cb) => raw.reportScores(req, cb));
      done += res.accepted;
      if (performance.now() - lastReport > 2_000) {
        lastReport = performance.now();
        progress('ReportScores', done, total, started);
      }
    });
    const seconds = (performance.now() - started) / 1000;
    const rate = done / seconds;
    log(`  -> ${fmt(rate)} scores/s durable over gRPC (target >= ${fmt(TARGET_GRPC)})`);
    const ingestion = {
      entries: done,
      seconds: round(seconds, 3),
      concurrency,
      entriesPerCall: BATCH,
      bytesPerCall: Math.round(requestBytes / requests.length),
      scoresPerSecond: Math.round(rate),
      megabytesPerSecond: round(((done / BATCH) * (requestBytes / requests.length)) / 1e6 / seconds),
      targetScoresPerSecond: TARGET_GRPC,
      targetMet: rate >= TARGET_GRPC,
    };

    log(`GetPlan streaming at N = ${fmt(IMAGENET_N)} (default 65,536-entry chunks)`);
    const streams: Record<string, unknown>[] = [];
    const repeats = quick ? 3 : 7;
    for (const jobId of ['sadp', 'full']) {
      const first = await fetchPlan(client, jobId, 0);
      const again: number[] = [];
      for (let i = 0; i < repeats; i++) again.push((await fetchPlan(client, jobId, 0)).ms);
      again.sort((a, b) => a - b);
      const median = again[Math.floor(again.length / 2)]!;
      log(
        `  ${jobId}: ${fmt(first.count)} entries in ${first.chunks} chunks (${(first.bytes / 1e6).toFixed(1)} MB): ` +
          `first call ${first.ms.toFixed(0)} ms (compute + persist + stream), cached median ${median.toFixed(0)} ms ` +
          `(${fmt(first.count / (median / 1000))} entries/s)`,
      );
      streams.push({
        policy: jobId,
        selected: first.count,
        chunks: first.chunks,
        wireBytes: first.bytes,
        firstCallMs: round(first.ms),
        cachedMedianMs: round(median),
        cachedRuns: again.map((x) => round(x)),
        entriesPerSecond: Math.round(first.count / (median / 1000)),
      });
    }
    return { ingestion, planStreaming: streams };
  } finally {
    raw.close();
    scorer.close();
    client.close();
    await server.close(1_000);
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const loadBefore = loadavg();
  log(
    `scorer bench (${quick ? 'quick' : 'full'}): ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}, load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );

  let math: Record<string, unknown> | undefined;
  if (!process.argv.includes('--skip-math')) math = await runMathBench({ quick });

  const batches = makeBatches(IMAGENET_N, 1);
  const inProcess = benchInProcess(batches, quick ? 3 : 10);
  const durable = await benchCoreDurable(batches, quick ? 2 : 5, 4);
  const grpcResults = await benchGrpc(batches, quick ? 2 : 6, 4);

  const results = {
    benchmark: 'scorer',
    mode: quick ? 'quick' : 'full',
    date: startedAt.toISOString(),
    machine: {
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryBytes: totalmem(),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadavg(),
      note: 'gRPC client and server share one process; a load average above the core count inflates times.',
    },
    ingestion: {
      inProcess,
      durableInProcess: durable,
      grpcLoopback: grpcResults.ingestion,
    },
    planStreaming: grpcResults.planStreaming,
    ...(math ? { math } : {}),
  };

  log('');
  log('| measurement | result | target |');
  log('|---|---|---|');
  log(
    `| Job.report in process (validate + apply) | ${fmt(inProcess.scoresPerSecond)} scores/s | >= ${fmt(TARGET_IN_PROCESS)} ${inProcess.targetMet ? 'met' : 'MISSED'} |`,
  );
  log(`| ScorerCore.reportScores, durable to local dir | ${fmt(durable.scoresPerSecond)} scores/s | - |`);
  log(
    `| ReportScores over gRPC, durable to local dir | ${fmt(grpcResults.ingestion.scoresPerSecond)} scores/s | >= ${fmt(TARGET_GRPC)} ${grpcResults.ingestion.targetMet ? 'met' : 'MISSED'} |`,
  );
  for (const s of grpcResults.planStreaming) {
    log(
      `| GetPlan ${String(s.policy)}, ${fmt(s.selected as number)} of ${fmt(IMAGENET_N)} (cached) | ${String(s.cachedMedianMs)} ms | - |`,
    );
    log(
      `| GetPlan ${String(s.policy)}, first call (compute + persist + stream) | ${String(s.firstCallMs)} ms | - |`,
    );
  }

  const out = join(packageRoot, 'bench/results/scorer.json');
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${out}`);
}

await main();
