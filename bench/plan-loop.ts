// Event-loop blocking while an epoch is planned at N = 10M (ImageNet-21k
// scale), measured with perf_hooks.monitorEventLoopDelay (10 ms resolution):
//
//   npm run bench:plan-loop [-- --quick]      (--quick: N = 2M)
//
// 1. scorer: getPlan of a fresh epoch on a scorer core with every example
//    scored (plan + encode + snapshot in the worker thread), against the
//    same planEpoch + encodePlan called on the loop (what the core did).
// 2. loader: the epoch shuffle (global and shard-buffer) in a worker thread
//    (what the loader does), sliced with yields on the loop (what it did),
//    and in one piece.
// Target: no loop block over 50 ms. Writes bench/results/plan-loop.json.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { packageRoot } from '../common/paths.js';
import { openStore } from '../storage/index.js';
import { encodePlan, openScorerCore, planEpoch } from '../scorer/index.js';
import { createShuffleThread, shufflePlan, shufflePlanAsync } from '../loader/index.js';

const quick = process.argv.includes('--quick');
const N = quick ? 2_000_000 : 10_000_000;
const SHARD_SAMPLES = 1_000;
const log = (line: string): void => void process.stdout.write(`${line}\n`);

/**
 * Largest loop block (ms) while `fn` runs: the histogram's max, and the
 * largest gap between ticks of a 1 ms interval (the histogram can miss a
 * block that ends right before it is disabled). On a loaded machine the OS
 * alone deschedules the loop for tens of ms, so also the loop thread's own
 * CPU time between two ticks (`maxCpuMs`): the work that blocked it, which
 * is what moving work off the loop changes.
 */
async function maxBlockMs<T>(
  fn: () => Promise<T> | T,
): Promise<{ value: T; maxMs: number; maxCpuMs: number; wallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  const cpuMs = (): number => {
    const u = process.threadCpuUsage();
    return (u.user + u.system) / 1000;
  };
  let last = performance.now();
  let lastCpu = cpuMs();
  let gap = 0;
  let cpuGap = 0;
  const tick = setInterval(() => {
    const t = performance.now();
    const c = cpuMs();
    gap = Math.max(gap, t - last);
    cpuGap = Math.max(cpuGap, c - lastCpu);
    last = t;
    lastCpu = c;
  }, 1);
  h.enable();
  // Let the monitor arm before the work starts.
  await new Promise((r) => setTimeout(r, 30));
  last = performance.now();
  lastCpu = cpuMs();
  gap = 0;
  cpuGap = 0;
  const t0 = performance.now();
  const value = await fn();
  const wallMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 30));
  await new Promise((r) => setTimeout(r, 30));
  h.disable();
  clearInterval(tick);
  const maxMs = Math.max(h.max / 1e6, gap);
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return { value, maxMs: r1(maxMs), maxCpuMs: r1(cpuGap), wallMs: Math.round(wallMs) };
}

const dir = await mkdtemp(join(tmpdir(), 'sadp-plan-loop-'));
const results: Record<string, { maxBlockMs: number; maxBlockCpuMs: number; wallMs: number }> = {};
const record = (name: string, m: { maxMs: number; maxCpuMs: number; wallMs: number }): void => {
  results[name] = { maxBlockMs: m.maxMs, maxBlockCpuMs: m.maxCpuMs, wallMs: m.wallMs };
};
try {
  // The noise floor: no work at all, on this machine now.
  const idle = await maxBlockMs(() => new Promise((r) => setTimeout(r, 2_000)));
  record('idle', idle);
  log(`idle loop (2 s): max block ${idle.maxMs} ms (loop CPU ${idle.maxCpuMs} ms)`);
  // Small jobs are planned on the loop (plan-thread.ts PLAN_ON_LOOP_MAX_EXAMPLES):
  // the loop block of a plan + snapshot there, every example scored, around the bound.
  for (const n of [50_000, 100_000, 200_000]) {
    const small = await openScorerCore({
      store: openStore(join(dir, `loop-${n}`)),
      planOnLoopMaxExamples: Number.MAX_SAFE_INTEGER,
    });
    await small.createJob({
      jobId: 's',
      datasetSize: n,
      policy: 'sadp',
      pruneRatio: 0.5,
      epochs: 4,
      seed: 3n,
    });
    const ids = Uint32Array.from({ length: n }, (_, i) => i);
    const scores = Float64Array.from(ids, (i) => ((i * 2654435761) % 1000) / 1000 + 0.01);
    await small.reportScores('s', { epoch: 0, ids, scores, losses: scores });
    await small.getPlan('s', 0); // warm-up (JIT)
    const m = await maxBlockMs(async () => {
      for (let e = 1; e < 4; e++) await small.getPlan('s', e);
    });
    record(`scorerOnLoop-${n}`, m);
    log(`scorer getPlan on the loop at N = ${n}: max loop block ${m.maxMs} ms (loop CPU ${m.maxCpuMs} ms)`);
    await small.close();
  }

  const core = await openScorerCore({ store: openStore(dir) });
  await core.createJob({ jobId: 'j', datasetSize: N, policy: 'sadp', pruneRatio: 0.5, epochs: 4, seed: 3n });
  const chunk = 1 << 20;
  let x = 0x9e3779b9;
  for (let from = 0; from < N; from += chunk) {
    const n = Math.min(chunk, N - from);
    const ids = new Uint32Array(n);
    const scores = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      ids[i] = from + i;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      scores[i] = (x >>> 0) / 2 ** 32;
    }
    await core.reportScores('j', { epoch: 0, ids, scores, losses: scores });
  }
  log(`scorer: ${N} examples scored`);

  const off = await maxBlockMs(() => core.getPlan('j', 0));
  record('scorerWorker', off);
  log(
    `scorer getPlan (worker thread): max loop block ${off.maxMs} ms (loop CPU ${off.maxCpuMs} ms), wall ${off.wallMs} ms`,
  );
  // The next epoch's plan in the same, kept thread (no thread start).
  const kept = await maxBlockMs(() => core.getPlan('j', 1));
  record('scorerWorkerKept', kept);
  log(
    `scorer getPlan of the next epoch (kept thread): max loop block ${kept.maxMs} ms (loop CPU ${kept.maxCpuMs} ms), wall ${kept.wallMs} ms`,
  );

  // The old path: the same computation on the loop.
  const scores = new Float64Array(N);
  for (let i = 0; i < N; i++) scores[i] = (i * 2654435761) % 1000003;
  const input = {
    policy: 'sadp' as const,
    datasetSize: N,
    pruneRatio: 0.5,
    maxPruneRatio: 0.7,
    smoothing: 0.3,
    epochs: 4,
    epoch: 1,
    seed: 3n,
    scores,
    losses: scores,
    scored: new Uint8Array(N).fill(1),
  };
  const on = await maxBlockMs(() => encodePlan(planEpoch(input)).byteLength);
  record('scorerOnLoop', on);
  log(
    `scorer planEpoch + encodePlan on the loop: max loop block ${on.maxMs} ms (loop CPU ${on.maxCpuMs} ms)`,
  );

  const plan = off.value;
  const shardOf = (id: number): number => Math.floor(id / SHARD_SAMPLES);
  const shardStarts = Uint32Array.from({ length: Math.ceil(N / SHARD_SAMPLES) }, (_, s) => s * SHARD_SAMPLES);
  const shuffleThread = createShuffleThread();
  for (const mode of ['global', 'shard-buffer'] as const) {
    const shuffleInput = { ids: plan.ids, seed: 3n, epoch: 0, mode, blockShards: 4, shardOf };
    const worker = await maxBlockMs(() => shuffleThread.shuffle({ ...shuffleInput, shardStarts }));
    record(`loaderShuffle-${mode}`, worker);
    const sliced = await maxBlockMs(() => shufflePlanAsync(shuffleInput));
    record(`loaderShuffleSliced-${mode}`, sliced);
    const whole = await maxBlockMs(() => shufflePlan(shuffleInput));
    record(`loaderShuffleOnLoop-${mode}`, whole);
    log(
      `loader ${mode} shuffle of ${plan.ids.length}: worker thread max block ${worker.maxMs} ms ` +
        `(loop CPU ${worker.maxCpuMs} ms), sliced ${sliced.maxMs} (${sliced.maxCpuMs}) ms, ` +
        `one piece ${whole.maxMs} (${whole.maxCpuMs}) ms`,
    );
  }
  await shuffleThread.close();
  await core.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}

const out = {
  benchmark: 'plan-loop',
  generatedAt: new Date().toISOString(),
  quick,
  machine: {
    cores: cpus().length,
    node: process.version,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
  },
  datasetSize: N,
  targetMaxBlockMs: 50,
  note: "maxBlockMs includes time the OS ran other processes (see idle); maxBlockCpuMs is the loop thread's own work between two ticks",
  results,
};
await mkdir(join(packageRoot, 'bench/results'), { recursive: true });
await writeFile(
  join(packageRoot, 'bench/results', quick ? 'plan-loop-quick.json' : 'plan-loop.json'),
  `${JSON.stringify(out, null, 2)}\n`,
);
