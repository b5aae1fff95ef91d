// In-process benchmark of the SADP math: how long planEpoch takes at ImageNet
// scale (N = 1,281,167) and at N = 10M, how many capping passes it needs, what
// the pieces cost, and how much memory it holds.
//
//   npm run bench:scorer-math [-- --quick]
//
// Writes bench/results/scorer-math.json. bench/scorer.ts (the gRPC part) calls
// runMathBench() and merges the result.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../common/paths.js';
import {
  cappedProbabilities,
  cappedProbabilitiesSorted,
  defaultHyperparameters,
  planDigest,
  planEpoch,
  releasePlanWorkspace,
  smoothedProbabilities,
} from '../scorer/index.js';
import type { PlanInput, PolicyName } from '../scorer/index.js';
import { mulberry32 } from '../test/helpers/random.js';

const IMAGENET_N = 1_281_167;
const TEN_MILLION = 10_000_000;
const TARGET_IMAGENET_MS = 30;
const TARGET_TEN_MILLION_MS = 300;
const EPOCHS = 200;
const PRUNE_RATIO = 0.5;

export interface MathBenchOptions {
  /** Fewer repetitions (about 20 s instead of about 1-2 min). */
  quick: boolean;
}

interface Timing {
  runs: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  maxMs: number;
}

interface PlanCase {
  name: string;
  policy: PolicyName;
  datasetSize: number;
  scoreDistribution: string;
  /** Wall-clock time of planEpoch. */
  timing: Timing;
  /** CPU time (user + system, all threads) of planEpoch: what it costs when other processes compete for the cores. */
  cpuTiming: Timing;
  cappingPasses: { median: number; max: number };
  selectedFraction: number;
  maxWeight: number;
  floorInfeasible: boolean;
  targetMs?: number;
  targetMet?: boolean;
}

function memory(): Record<string, number> {
  const m = process.memoryUsage();
  const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
  return { rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), arrayBuffersMiB: mib(m.arrayBuffers) };
}

function summarize(samples: number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const round = (x: number): number => Math.round(x * 100) / 100;
  return {
    runs: sorted.length,
    medianMs: round(at(0.5)),
    p90Ms: round(at(0.9)),
    minMs: round(sorted[0] ?? NaN),
    maxMs: round(sorted[sorted.length - 1] ?? NaN),
  };
}

/** Deterministic lognormal(0, sigma) scores (mulberry32 + Box-Muller): same data every run. */
function lognormalScores(n: number, sigma: number, seed: number): Float64Array {
  const uniform = mulberry32(seed);
  // Shifted by half a step into (0, 1): log(0) would be -Infinity.
  const next = (): number => uniform() + 0.5 / 4294967296;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
    out[i] = Math.exp(sigma * z);
  }
  return out;
}

function progress(label: string, done: number, total: number, startedMs: number): void {
  const elapsed = (performance.now() - startedMs) / 1000;
  const rate = done / Math.max(elapsed, 1e-9);
  const eta = (total - done) / Math.max(rate, 1e-9);
  process.stdout.write(
    `  ${label}: ${done}/${total} runs, ${rate.toFixed(1)} runs/s, ETA ${eta.toFixed(0)} s\n`,
  );
}

function timePlans(
  name: string,
  policy: PolicyName,
  scores: Float64Array,
  scoreDistribution: string,
  runs: number,
  targetMs?: number,
): PlanCase {
  const n = scores.length;
  const { smoothing, maxPruneRatio } = defaultHyperparameters(PRUNE_RATIO);
  const scored = new Uint8Array(n).fill(1);
  const base: PlanInput = {
    policy,
    datasetSize: n,
    pruneRatio: PRUNE_RATIO,
    maxPruneRatio,
    smoothing,
    epochs: EPOCHS,
    epoch: 0,
    seed: 0x5ad9n,
    scores,
    losses: scores,
    scored,
  };
  // Warm up the JIT (and the workspace) on the same N; not timed.
  for (let w = 0; w < 3; w++) planEpoch({ ...base, epoch: EPOCHS - 1 - w });
  const samples: number[] = [];
  const cpuSamples: number[] = [];
  const passes: number[] = [];
  let selected = 0;
  let maxWeight = 0;
  let floorInfeasible = false;
  const started = performance.now();
  let lastReport = started;
  for (let k = 0; k < runs; k++) {
    // Spread the runs over the schedule: r_k and hence S_k change from run to run.
    const epoch = Math.floor(((k + 0.5) * EPOCHS) / runs);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const plan = planEpoch({ ...base, epoch });
    samples.push(performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    cpuSamples.push((cpu.user + cpu.system) / 1000);
    passes.push(plan.stats.cappingPasses);
    selected += plan.ids.length / n;
    maxWeight = Math.max(maxWeight, plan.stats.maxWeight);
    floorInfeasible ||= plan.stats.floorInfeasible;
    if (performance.now() - lastReport > 2000 || k === runs - 1) {
      progress(name, k + 1, runs, started);
      lastReport = performance.now();
    }
  }
  const timing = summarize(samples);
  passes.sort((a, b) => a - b);
  const result: PlanCase = {
    name,
    policy,
    datasetSize: n,
    scoreDistribution,
    timing,
    cpuTiming: summarize(cpuSamples),
    cappingPasses: {
      median: passes[Math.floor(passes.length / 2)] ?? 0,
      max: passes[passes.length - 1] ?? 0,
    },
    selectedFraction: Math.round((selected / runs) * 1e4) / 1e4,
    maxWeight,
    floorInfeasible,
  };
  if (targetMs !== undefined) {
    result.targetMs = targetMs;
    result.targetMet = timing.medianMs <= targetMs;
  }
  process.stdout.write(
    `${name}: median ${timing.medianMs} ms (p90 ${timing.p90Ms}, min ${timing.minMs}; CPU median ${result.cpuTiming.medianMs} ms)` +
      (targetMs === undefined ? '' : `, target ${targetMs} ms ${result.targetMet ? 'met' : 'MISSED'}`) +
      `, passes ${result.cappingPasses.median}\n`,
  );
  return result;
}

function timeRepeated(runs: number, fn: () => void): Timing {
  fn();
  const samples: number[] = [];
  for (let k = 0; k < runs; k++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

function target(n: number, targetMs: number, c: PlanCase | undefined): Record<string, unknown> {
  return {
    n,
    targetMs,
    medianMs: c?.timing.medianMs,
    met: c !== undefined && c.timing.medianMs <= targetMs,
    cpuMedianMs: c?.cpuTiming.medianMs,
    metInCpuTime: c !== undefined && c.cpuTiming.medianMs <= targetMs,
  };
}

/** Runs the benchmark and returns the results object (also what the JSON file holds). */
export async function runMathBench({ quick }: MathBenchOptions): Promise<Record<string, unknown>> {
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();
  const plansImageNet = quick ? 15 : 51;
  const plansTenMillion = quick ? 5 : 15;
  const componentRuns = quick ? 5 : 15;
  process.stdout.write(
    `scorer-math bench (${quick ? 'quick' : 'full'}), ${cpus().length} CPUs, load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}\n`,
  );

  const cases: PlanCase[] = [];
  const imagenet = lognormalScores(IMAGENET_N, 1, 1);
  await yieldToEventLoop();
  cases.push(
    timePlans(
      'sadp, ImageNet N, lognormal(0,1)',
      'sadp',
      imagenet,
      'lognormal(0, 1)',
      plansImageNet,
      TARGET_IMAGENET_MS,
    ),
  );
  const heavy = lognormalScores(IMAGENET_N, 2.5, 2);
  cases.push(
    timePlans('sadp, ImageNet N, lognormal(0,2.5)', 'sadp', heavy, 'lognormal(0, 2.5)', plansImageNet),
  );
  for (const policy of ['full', 'random', 'infobatch', 'sadp-loss'] as const) {
    await yieldToEventLoop();
    cases.push(timePlans(`${policy}, ImageNet N`, policy, imagenet, 'lognormal(0, 1)', quick ? 5 : 15));
  }
  const memoryAfterImageNet = memory();

  // Pieces at ImageNet scale, outside planEpoch.
  const out = new Float64Array(IMAGENET_N);
  const S = Math.floor(0.5 * IMAGENET_N);
  const components = {
    cappedIterativeMs: timeRepeated(componentRuns, () => cappedProbabilities(imagenet, S, out)),
    cappedSortedReferenceMs: timeRepeated(Math.min(componentRuns, 5), () =>
      cappedProbabilitiesSorted(imagenet, S, out),
    ),
    smoothedIterativeMs: timeRepeated(componentRuns, () => smoothedProbabilities(imagenet, S, 0.3, out)),
    digestOf640kMs: timeRepeated(componentRuns, () => planDigest(new Uint32Array(S), new Float64Array(S))),
    cappingPassesAtS: cappedProbabilities(imagenet, S, out).passes,
  };
  process.stdout.write(
    `pieces: capped ${components.cappedIterativeMs.medianMs} ms (sorted reference ${components.cappedSortedReferenceMs.medianMs} ms), smoothed ${components.smoothedIterativeMs.medianMs} ms, digest ${components.digestOf640kMs.medianMs} ms\n`,
  );

  releasePlanWorkspace();
  await yieldToEventLoop();
  const ten = lognormalScores(TEN_MILLION, 1, 3);
  cases.push(
    timePlans(
      'sadp, N = 10M, lognormal(0,1)',
      'sadp',
      ten,
      'lognormal(0, 1)',
      plansTenMillion,
      TARGET_TEN_MILLION_MS,
    ),
  );
  const memoryAfterTenMillion = memory();
  releasePlanWorkspace();

  const loadAfter = loadavg();
  return {
    benchmark: 'scorer-math',
    mode: quick ? 'quick' : 'full',
    startedAt,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAfter,
      note: 'Wall-clock medians on a shared machine; a load average above the CPU count inflates them.',
    },
    settings: { pruneRatio: PRUNE_RATIO, ...defaultHyperparameters(PRUNE_RATIO), epochs: EPOCHS },
    cases,
    components,
    memory: {
      afterImageNet: memoryAfterImageNet,
      afterTenMillion: memoryAfterTenMillion,
      workspaceBytesPerExample: { ids: 4, weights: 8, rescaledScoresWhenNeeded: 8 },
    },
    targets: {
      imagenet: target(IMAGENET_N, TARGET_IMAGENET_MS, cases[0]),
      tenMillion: target(TEN_MILLION, TARGET_TEN_MILLION_MS, cases[cases.length - 1]),
    },
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const quick = process.argv.includes('--quick');
  const results = await runMathBench({ quick });
  const file = join(packageRoot, 'bench', 'results', 'scorer-math.json');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}
