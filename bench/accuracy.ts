// Does SADP keep accuracy while cutting training time? Trains the spiking
// network on Fashion-MNIST under full data, random pruning, InfoBatch,
// SADP with the loss as score (the paper's ablation) and SADP, for several
// pruning ratios and seeds, with the scorer's own planner choosing each
// epoch's examples and weights. Reports test accuracy, the realized pruned
// fraction and training time relative to full data.
//
//   npm run bench:accuracy [-- --quick] [-- --jobs 1] [-- --train-size 20000 --epochs 10
//     --seeds 3 --ratios 0.3,0.5,0.7 --policies full,random,infobatch,sadp,sadp-loss
//     --model mlp --hidden 256 --time-steps 4 --batch-size 128 --lr 1e-3]
//
// Writes bench/results/accuracy.json and accuracy.svg (--quick: accuracy-quick.*,
// so a smoke run never overwrites a full result; --out <prefix> to choose).
// --replot recomputes the summaries, table and plot from that JSON's runs
// without training.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { invalidArgument } from '../common/errors.js';
import { packageRoot } from '../common/paths.js';
import {
  checkTargets,
  markdownTable,
  markdownTargets,
  planRuns,
  resolveSettings,
  runAccuracyBenchmark,
  summarize,
  writeAccuracyPlot,
  type AccuracySettings,
  type RunResult,
} from './accuracy/index.js';

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

function describeNetwork(s: AccuracySettings): string {
  const shape =
    s.model === 'mlp' ? `784-${s.hidden.join('-')}-10 MLP` : `CNN channels ${s.channels.join('-')}`;
  return `spiking ${shape}, LIF (lambda 0.5, theta 1, sigmoid surrogate alpha 4, detached reset), T=${s.timeSteps}, direct encoding, spike-aware score of the output layer`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      replot: { type: 'boolean', default: false },
      jobs: { type: 'string' },
      out: { type: 'string' },
      'train-size': { type: 'string' },
      'test-size': { type: 'string' },
      'epoch-eval-size': { type: 'string' },
      epochs: { type: 'string' },
      seeds: { type: 'string' },
      ratios: { type: 'string' },
      policies: { type: 'string' },
      model: { type: 'string' },
      hidden: { type: 'string' },
      channels: { type: 'string' },
      'time-steps': { type: 'string' },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      backend: { type: 'string' },
      'dataset-dir': { type: 'string' },
      shuffle: { type: 'string' },
      'shard-samples': { type: 'string' },
    },
  });
  const settings = resolveSettings(values);
  // One process per core: the wasm backend runs single-threaded.
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw invalidArgument('SADP_BENCH_BAD_FLAG', `--jobs must be an integer >= 1, got '${values.jobs}'`);
  }
  const prefix = resolve(
    values.out ?? join(packageRoot, 'bench', 'results', values.quick ? 'accuracy-quick' : 'accuracy'),
  );
  if (values.replot) {
    const saved = JSON.parse(await readFile(`${prefix}.json`, 'utf8')) as ResultFile;
    await writeResults(prefix, saved, saved.settings);
    log(`rewrote ${prefix}.json and ${prefix}.svg from its ${saved.runs.length} runs`);
    return;
  }
  const runs = planRuns(settings);
  const loadStart = loadavg();
  log(
    `accuracy benchmark: ${runs.length} runs (${settings.policies.join(', ')}; r ${settings.ratios.join(', ')}; ` +
      `seeds ${settings.seeds.join(', ')}), N=${settings.trainSize}, K=${settings.epochs}, batch ${settings.batchSize}, ` +
      `${jobs} job(s); load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const output = await runAccuracyBenchmark(settings, {
    jobs,
    signal: controller.signal,
    onRunDone: ({ done, total, result: r, elapsedSeconds, etaSeconds }) => {
      log(
        `[${done}/${total}] ${r.config} seed ${r.seed}: test acc ${(100 * r.testAccuracy).toFixed(2)}%, ` +
          `pruned ${(100 * r.realizedPruneFraction).toFixed(1)}%, train ${r.trainSeconds.toFixed(1)} s ` +
          `(CPU ${r.cpuSeconds.toFixed(1)} s, ${Math.round(r.samplesTrained / r.trainSeconds)} samples/s) | ` +
          `elapsed ${duration(elapsedSeconds)}, ETA ${duration(etaSeconds)}`,
      );
    },
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const loadEnd = loadavg();
  const result = {
    benchmark: 'accuracy',
    generatedAt: new Date().toISOString(),
    quick: values.quick,
    machine: {
      cpuModel: cpus()[0]?.model,
      cores: cpus().length,
      totalMemoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      loadavgStart: loadStart,
      loadavgEnd: loadEnd,
    },
    backend: output.backend,
    settings: {
      ...settings,
      jobs: output.jobs,
      dataset: `Fashion-MNIST: first ${settings.trainSize} train examples; accuracy on the first ${settings.testSize} test examples (per-epoch curve on the first ${settings.epochEvalSize})`,
      network: describeNetwork(settings),
      optimizer: `Adam, peak lr ${settings.lr}, cosine-annealed to ${settings.minLr} over the run's actual steps (trainer CosineSchedule, total re-estimated each epoch from the plan sizes); batch ${settings.batchSize}, last batch of an epoch partial; loss sum_i w_i l_i / B`,
      planning:
        "scorer Job table + planEpoch each epoch (job spec defaults: paper Table II beta / r_max); every trained example's unweighted-loss score and loss reported back after its step (latest wins); " +
        `the loader's ${settings.shuffle} shuffle (shufflePlan${settings.shuffle === 'global' ? '' : `, shards of ${settings.shardSamples} consecutive examples, ${settings.shuffleBlockShards} per block`})`,
      timing:
        'per run: wall and CPU time of plan + shuffle + training steps, summed over epochs; evaluation excluded. Time ratios pair each run with the full-data run of the same seed',
    },
    wallSeconds: output.wallSeconds,
    runs: output.runs,
  };
  await writeResults(prefix, result, settings);
  log(
    `wrote ${prefix}.json and ${prefix}.svg in ${duration(output.wallSeconds)}; load average ${loadEnd.map((l) => l.toFixed(2)).join(' ')}`,
  );
}

interface ResultFile {
  settings: AccuracySettings;
  runs: RunResult[];
  [key: string]: unknown;
}

/** Adds the summaries, targets and markdown to `result`, writes it and the plot, prints the table. */
async function writeResults(prefix: string, result: ResultFile, settings: AccuracySettings): Promise<void> {
  const configs = summarize(result.runs);
  const targets = checkTargets(configs);
  const table = markdownTable(configs);
  const { runs, ...head } = result;
  // Runs last: the summaries are what a reader opens the file for.
  const out = { ...head, configs, targets, markdown: { table, targets: markdownTargets(targets) }, runs };
  await mkdir(dirname(prefix), { recursive: true });
  await writeFile(`${prefix}.json`, `${JSON.stringify(out, null, 2)}\n`);
  await writeAccuracyPlot(
    `${prefix}.svg`,
    configs,
    `Fashion-MNIST, ${describeNetwork(settings).split(',')[0]}: N=${settings.trainSize}, K=${settings.epochs}, ${settings.seeds.length} seed(s)`,
  );
  log('');
  log(table);
  log('');
  log(markdownTargets(targets));
  log('');
}

await main();
