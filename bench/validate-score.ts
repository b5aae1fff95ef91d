// Does the spike-aware score track the exact per-example gradient norm better
// than the loss does (paper Fig. 1a / Fig. 4)? On a fixed probe of Fashion-MNIST
// training examples, at several points of training, compare the score taken
// from the training pass against the exact norm (one backward pass per
// example), for the output layer and for all layers; also measure training
// speed per TF.js backend.
//
//   npm run validate:score [-- --quick] [-- --backend wasm] [-- --models mlp,cnn]
//
// Writes bench/results/score.json and the scatter plots bench/results/score.svg.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { sampleCorrelation, sampleRankCorrelation } from 'simple-statistics';
import { readFashionMnist, type IdxImages } from '../common/datasets/fashion-mnist.js';
import { packageRoot } from '../common/paths.js';
import { selectBackend, type BackendName, type BackendPreference } from '../trainer/index.js';
import { createSpikingCnn, createSpikingMlp, type SpikingModel } from '../trainer/index.js';
import { writeScatterSvg, type ScatterPoint } from './plot.js';
import { mulberry32 } from '../test/helpers/random.js';

const PIXELS = 784;
const BATCH = 64;
const EVAL_EXAMPLES = 2000;

type ModelKind = 'mlp' | 'cnn';

interface Plan {
  probe: number;
  trainSubset: Record<ModelKind, number>;
  checkpoints: number[];
  speedExamples: Record<ModelKind, number>;
}

const FULL: Plan = {
  probe: 512,
  trainSubset: { mlp: 6000, cnn: 3000 },
  checkpoints: [0, 1, 3],
  speedExamples: { mlp: 1280, cnn: 256 },
};
const QUICK: Plan = {
  probe: 256,
  trainSubset: { mlp: 2000, cnn: 1000 },
  checkpoints: [0, 1],
  speedExamples: { mlp: 640, cnn: 128 },
};

interface Corr {
  pearson: number;
  spearman: number;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function corr(a: Float32Array, b: Float32Array): Corr {
  const x = Array.from(a);
  const y = Array.from(b);
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  return { pearson: round(sampleCorrelation(x, y)), spearman: round(sampleRankCorrelation(x, y)) };
}

function median(values: number[]): number {
  const s = [...values].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function createModel(kind: ModelKind, scoreLayers: 'final' | 'all' = 'all'): SpikingModel {
  return kind === 'mlp'
    ? createSpikingMlp({ scoreLayers, seed: 1 })
    : createSpikingCnn({ scoreLayers, seed: 1 });
}

/** Seeded Fisher-Yates permutation of 0..n-1 (mulberry32). */
function permutation(n: number, seed: number): Uint32Array {
  const rand = mulberry32(seed);
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

function gather(data: IdxImages, ids: Uint32Array): { x: Uint8Array; y: Uint8Array } {
  const x = new Uint8Array(ids.length * PIXELS);
  const y = new Uint8Array(ids.length);
  ids.forEach((id, i) => {
    x.set(data.pixels.subarray(id * PIXELS, (id + 1) * PIXELS), i * PIXELS);
    y[i] = data.labels[id]!;
  });
  return { x, y };
}

async function trainEpoch(
  model: SpikingModel,
  optimizer: tf.Optimizer,
  train: IdxImages,
  subset: number,
  epoch: number,
  label: string,
): Promise<{ loss: number; examplesPerSec: number }> {
  const order = permutation(subset, 1000 + epoch);
  const ones = new Float32Array(BATCH).fill(1);
  const started = performance.now();
  let lossSum = 0;
  let steps = 0;
  let lastReport = started;
  for (let s = 0; s + BATCH <= subset; s += BATCH) {
    const { x, y } = gather(train, order.subarray(s, s + BATCH));
    lossSum += (await model.trainStep(x, y, ones, optimizer)).loss;
    steps++;
    const now = performance.now();
    if (now - lastReport > 5000) {
      const rate = (s + BATCH) / ((now - started) / 1000);
      log(
        `  ${label} epoch ${epoch + 1}: ${s + BATCH}/${subset} examples, ${rate.toFixed(0)} ex/s, ETA ${((subset - s - BATCH) / rate).toFixed(0)} s`,
      );
      lastReport = now;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return { loss: lossSum / steps, examplesPerSec: (steps * BATCH) / seconds };
}

interface Probe {
  scoreFinal: Float32Array;
  scoreAll: Float32Array;
  loss: Float32Array;
  exactFinal: Float32Array;
  exactAll: Float32Array;
  spikeRate: number;
  finalInputSpikeRate: number;
}

async function measure(model: SpikingModel, x: Uint8Array, y: Uint8Array, label: string): Promise<Probe> {
  const n = y.length;
  const scoreFinal = new Float32Array(n);
  const scoreAll = new Float32Array(n);
  const loss = new Float32Array(n);
  let spikeRate = 0;
  let finalRate = 0;
  let batches = 0;
  for (let s = 0; s < n; s += BATCH) {
    const e = Math.min(n, s + BATCH);
    // The training pass itself (forward + backward), without the update.
    const r = await model.scoreBatch(x.subarray(s * PIXELS, e * PIXELS), y.subarray(s, e));
    scoreFinal.set(r.layerScores[r.layerScores.length - 1]!, s);
    scoreAll.set(r.scores, s);
    loss.set(r.losses, s);
    spikeRate += r.spikeRate;
    finalRate += r.finalInputSpikeRate;
    batches++;
  }
  const exactFinal = new Float32Array(n);
  const exactAll = new Float32Array(n);
  const started = performance.now();
  for (let s = 0; s < n; s += BATCH) {
    const e = Math.min(n, s + BATCH);
    const g = await model.exactGradientNorms(x.subarray(s * PIXELS, e * PIXELS), y.subarray(s, e));
    exactFinal.set(g.final, s);
    exactAll.set(g.all, s);
    const rate = e / ((performance.now() - started) / 1000);
    if (e < n)
      log(
        `  ${label} exact norms: ${e}/${n} examples, ${rate.toFixed(0)} ex/s, ETA ${((n - e) / rate).toFixed(0)} s`,
      );
  }
  return {
    scoreFinal,
    scoreAll,
    loss,
    exactFinal,
    exactAll,
    spikeRate: spikeRate / batches,
    finalInputSpikeRate: finalRate / batches,
  };
}

function boundStats(score: Float32Array, exact: Float32Array) {
  const ratios: number[] = [];
  let violations = 0;
  score.forEach((s, i) => {
    const e = exact[i]!;
    if (s < e * (1 - 1e-4)) violations++;
    if (e > 0) ratios.push(s / e);
  });
  const round = (v: number) => Math.round(v * 1e3) / 1e3;
  return { violations, minRatio: round(Math.min(...ratios)), medianRatio: round(median(ratios)) };
}

async function validateModel(
  kind: ModelKind,
  plan: Plan,
  train: IdxImages,
  test: IdxImages,
  points: ScatterPoint[],
) {
  const model = createModel(kind);
  const optimizer = tf.train.adam(1e-3);
  const subset = plan.trainSubset[kind];
  // The probe is part of the training subset: scores are about examples being trained on.
  const probeIds = permutation(subset, 7).subarray(0, plan.probe);
  const probe = gather(train, probeIds);
  const testX = test.pixels.subarray(0, EVAL_EXAMPLES * PIXELS);
  const testY = test.labels.subarray(0, EVAL_EXAMPLES);
  const checkpoints = [];
  let epoch = 0;
  let trainLoss: number | undefined;
  let trainRate: number | undefined;
  for (const at of plan.checkpoints) {
    while (epoch < at) {
      const r = await trainEpoch(model, optimizer, train, subset, epoch, kind);
      trainLoss = r.loss;
      trainRate = r.examplesPerSec;
      epoch++;
      log(
        `${kind}: epoch ${epoch} trained on ${subset} examples, loss ${r.loss.toFixed(3)}, ${r.examplesPerSec.toFixed(0)} ex/s`,
      );
    }
    const p = await measure(model, probe.x, probe.y, `${kind} @${epoch}`);
    const evaluation = await model.evaluate(testX, testY);
    const c = {
      final: { score: corr(p.scoreFinal, p.exactFinal), loss: corr(p.loss, p.exactFinal) },
      all: { score: corr(p.scoreAll, p.exactAll), loss: corr(p.loss, p.exactAll) },
    };
    const entry = {
      epoch,
      trainLoss,
      trainExamplesPerSec: trainRate,
      testAccuracy: Math.round(evaluation.accuracy * 1e4) / 1e4,
      probe: {
        examples: plan.probe,
        meanLoss: p.loss.reduce((a, b) => a + b, 0) / p.loss.length,
        hiddenSpikeRate: p.spikeRate,
        outputLayerInputSparsity: 1 - p.finalInputSpikeRate,
      },
      correlationWithExactNorm: c,
      scoreBeatsLoss: {
        final: c.final.score.pearson > c.final.loss.pearson && c.final.score.spearman > c.final.loss.spearman,
        all: c.all.score.pearson > c.all.loss.pearson && c.all.score.spearman > c.all.loss.spearman,
      },
      upperBound: { final: boundStats(p.scoreFinal, p.exactFinal), all: boundStats(p.scoreAll, p.exactAll) },
    };
    checkpoints.push(entry);
    log(
      `${kind} @ epoch ${epoch}: test acc ${entry.testAccuracy.toFixed(3)}, output-input sparsity ${entry.probe.outputLayerInputSparsity.toFixed(3)}; ` +
        `final layer: score r=${c.final.score.pearson.toFixed(3)} rho=${c.final.score.spearman.toFixed(3)} vs loss r=${c.final.loss.pearson.toFixed(3)} rho=${c.final.loss.spearman.toFixed(3)}; ` +
        `all layers: score r=${c.all.score.pearson.toFixed(3)} rho=${c.all.score.spearman.toFixed(3)} vs loss r=${c.all.loss.pearson.toFixed(3)} rho=${c.all.loss.spearman.toFixed(3)}`,
    );
    for (let i = 0; i < plan.probe; i++) {
      const series = `epoch ${epoch}`;
      points.push({
        x: p.scoreFinal[i]!,
        y: p.exactFinal[i]!,
        series,
        column: 'spike-aware score (output layer)',
        row: kind,
      });
      points.push({ x: p.loss[i]!, y: p.exactFinal[i]!, series, column: 'loss', row: kind });
    }
  }
  optimizer.dispose();
  model.dispose();
  return { model: kind, trainSubset: subset, checkpoints };
}

/** Training-step throughput; CPU time too, since other processes may share the cores. */
async function speed(backend: BackendName, kind: ModelKind, examples: number, scoreLayers: 'final' | 'all') {
  await selectBackend(backend);
  const model = createModel(kind, scoreLayers);
  const optimizer = tf.train.adam(1e-3);
  const data = await readFashionMnist('train');
  const ones = new Float32Array(BATCH).fill(1);
  const step = (s: number) =>
    model.trainStep(
      data.pixels.subarray(s * PIXELS, (s + BATCH) * PIXELS),
      data.labels.subarray(s, s + BATCH),
      ones,
      optimizer,
    );
  await step(0); // warm-up: kernels, optimizer slots
  const wall = performance.now();
  const cpu = process.cpuUsage();
  const steps = Math.max(1, Math.floor(examples / BATCH));
  for (let i = 0; i < steps; i++) await step(i * BATCH);
  const seconds = (performance.now() - wall) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  optimizer.dispose();
  model.dispose();
  const r = {
    backend,
    model: kind,
    scoreLayers,
    batchSize: BATCH,
    examples: steps * BATCH,
    examplesPerSec: Math.round((steps * BATCH) / seconds),
    examplesPerCpuSec: Math.round((steps * BATCH) / cpuSeconds),
  };
  log(
    `speed ${backend} ${kind} (score: ${scoreLayers}): ${r.examplesPerSec} ex/s wall, ${r.examplesPerCpuSec} ex/CPU-s`,
  );
  return r;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'auto' },
      models: { type: 'string', default: 'mlp,cnn' },
    },
  });
  const plan = values.quick ? QUICK : FULL;
  const kinds = values.models.split(',').filter((m): m is ModelKind => m === 'mlp' || m === 'cnn');
  const started = performance.now();
  const selection = await selectBackend(values.backend as BackendPreference);
  const skipped = selection.tried.filter((t) => t.error).map((t) => `${t.name}: ${t.error}`);
  log(`TF.js backend: ${selection.name}${skipped.length > 0 ? ` (unavailable: ${skipped.join('; ')})` : ''}`);
  const [train, test] = await Promise.all([readFashionMnist('train'), readFashionMnist('test')]);

  const points: ScatterPoint[] = [];
  const models = [];
  for (const kind of kinds) models.push(await validateModel(kind, plan, train, test, points));

  const speeds = [];
  const backends: BackendName[] = [...new Set<BackendName>([selection.name, 'wasm', 'cpu'])];
  for (const backend of backends) {
    for (const kind of kinds) {
      const examples =
        backend === 'cpu' ? Math.max(BATCH, plan.speedExamples[kind] / 4) : plan.speedExamples[kind];
      speeds.push(await speed(backend, kind, examples, 'final'));
      // The cost of scoring every layer instead of the output layer only.
      if (backend === selection.name) speeds.push(await speed(backend, kind, examples, 'all'));
    }
  }
  await selectBackend(selection.name);

  const result = {
    benchmark: 'validate-score',
    generatedAt: new Date().toISOString(),
    quick: values.quick,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: loadavg() },
    backend: selection,
    setup: {
      dataset: 'Fashion-MNIST (train split; test accuracy on the first 2,000 test images)',
      probeExamples: plan.probe,
      batchSize: BATCH,
      optimizer: 'Adam lr 1e-3',
      network:
        'T=4, lambda=0.5, theta=1, sigmoid surrogate alpha=4, direct encoding; MLP 784-256-10; CNN conv16-pool-conv32-pool-fc10',
      exactNorm: 'Frobenius norm of dl_i/dW (weights, not biases), one example per backward pass',
      score:
        'sum_t ||dl_i/dI_i[t]|| ||o_i[t]|| from the batched training pass (conv layers x k, pooled x 1/2)',
    },
    models,
    speed: speeds,
    durationSec: Math.round((performance.now() - started) / 100) / 10,
  };
  const dir = join(packageRoot, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'score.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeScatterSvg(join(dir, 'score.svg'), points, {
    title: 'Per-example proxies vs exact output-layer gradient norm (Fashion-MNIST probe)',
    xLabel: 'proxy',
    yLabel: 'exact ||dl_i/dW_out||',
    seriesLabel: 'checkpoint',
    independentY: true,
  });
  log(`wrote bench/results/score.json and bench/results/score.svg in ${result.durationSec} s`);
}

await main();
