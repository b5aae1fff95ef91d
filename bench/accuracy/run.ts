// One training run of the accuracy benchmark, in process: the scorer's own
// job table and planner decide each epoch's examples and weights, the
// loader's shuffle orders them, the trainer's spiking network trains on them
// and its per-example scores and losses go back into the job table as the
// scorer service would store them (latest report wins). No S3 and no gRPC:
// this measures the method, the data path is benchmarked elsewhere.
import * as tf from '@tensorflow/tfjs';
import { SadpError, Status, invalidArgument } from '../../common/errors.js';
import { readFashionMnist } from '../../common/datasets/fashion-mnist.js';
import { shufflePlan } from '../../loader/index.js';
import {
  Job,
  planEpoch,
  resolveJobSpec,
  type EpochPlan,
  type PlanInput,
  type PolicyName,
} from '../../scorer/index.js';
import {
  CosineSchedule,
  createSpikingCnn,
  createSpikingMlp,
  estimateTotalSteps,
  type EpochShape,
  type SpikingModel,
} from '../../trainer/index.js';
import { configKey, type AccuracySettings, type RunSpec } from './settings.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const CLASSES = 10;
const EVAL_BATCH = 500;

interface Split {
  /** count * 784 pixels, 0..255. */
  pixels: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface AccuracyData {
  train: Split;
  test: Split;
}

/** The first `trainSize` train and `testSize` test examples of Fashion-MNIST (views, no copies). */
export async function loadAccuracyData(s: AccuracySettings): Promise<AccuracyData> {
  const [train, test] = await Promise.all([
    readFashionMnist('train', s.datasetDir),
    readFashionMnist('test', s.datasetDir),
  ]);
  const take = (split: typeof train, n: number, name: string): Split => {
    if (n > split.count) {
      throw invalidArgument(
        'SADP_BENCH_BAD_FLAG',
        `--${name}-size ${n} exceeds the ${split.count} examples of the Fashion-MNIST ${name} split`,
      );
    }
    return { pixels: split.pixels.subarray(0, n * PIXELS), labels: split.labels.subarray(0, n), count: n };
  };
  return { train: take(train, s.trainSize, 'train'), test: take(test, s.testSize, 'test') };
}

export interface EpochRecord {
  epoch: number;
  /** The plan's r_k (SADP), r (random), expected realized ratio (InfoBatch), 0 (full). */
  planPruneRatio: number;
  /** Sum of the selection probabilities. */
  expectedSize: number;
  /** Examples the plan selected = samples trained this epoch. */
  samples: number;
  steps: number;
  planDigest: string;
  weightMin: number;
  weightMean: number;
  weightMax: number;
  /** Importance-weighted mean loss (what the steps minimised) and the unweighted mean. */
  loss: number;
  unweightedLoss: number;
  /** Rate of the epoch's last step. */
  lr: number;
  /** Wall and CPU time of plan + shuffle + steps (evaluation excluded). */
  trainMs: number;
  cpuMs: number;
  planMs: number;
  /** On the first epochEvalSize test examples; absent when that is 0. */
  testAccuracy?: number;
}

export interface RunResult extends RunSpec {
  config: string;
  /** beta and r_max the scorer's job spec resolved (paper Table II defaults). */
  smoothing: number;
  maxPruneRatio: number;
  /** Samples trained over the run, and 1 - that / (N K). */
  samplesTrained: number;
  realizedPruneFraction: number;
  steps: number;
  /** Sum of the epochs' training wall / CPU time, in seconds. */
  trainSeconds: number;
  cpuSeconds: number;
  /** Final accuracy and mean loss on the first testSize test examples. */
  testAccuracy: number;
  testLoss: number;
  epochs: EpochRecord[];
}

export interface RunHooks {
  /** Before an epoch trains. `input` holds the job's live arrays: copy what you keep. */
  onPlan?(event: { epoch: number; plan: EpochPlan; input: PlanInput }): void;
  /** After each step: the batch as trained (ids, weights) and what was reported back. */
  onBatch?(event: {
    epoch: number;
    ids: Uint32Array;
    weights: Float32Array;
    scores: Float32Array;
    losses: Float32Array;
  }): void;
  onEpoch?(event: { spec: RunSpec; record: EpochRecord }): void;
}

function createModel(s: AccuracySettings, seed: number): SpikingModel {
  const common = { seed, timeSteps: s.timeSteps, classes: CLASSES };
  return s.model === 'mlp'
    ? createSpikingMlp({ ...common, inputSize: PIXELS, hidden: s.hidden })
    : createSpikingCnn({ ...common, inputShape: [SIDE, SIDE, 1], channels: s.channels });
}

/** TF.js optimizers read `learningRate` on every step; there is no scheduler API. */
function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { learningRate?: unknown };
  if (typeof o.learningRate !== 'number') {
    throw new SadpError('SADP_BENCH_LR', 'the TF.js optimizer has no numeric learningRate to schedule', {
      status: Status.INTERNAL,
    });
  }
  o.learningRate = lr;
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1000;
}

/**
 * Trains one (policy, r, seed) run from scratch and evaluates it. The
 * caller selects the TF.js backend first. Every model tensor is disposed on
 * return or throw.
 */
export async function runAccuracyRun(
  spec: RunSpec,
  s: AccuracySettings,
  data: AccuracyData,
  options: { hooks?: RunHooks; signal?: AbortSignal } = {},
): Promise<RunResult> {
  const { hooks, signal } = options;
  const n = data.train.count;
  const K = s.epochs;
  const B = s.batchSize;
  const policy: PolicyName = spec.policy;
  const record = resolveJobSpec(
    {
      jobId: `accuracy-${spec.index}`,
      datasetSize: n,
      policy,
      pruneRatio: spec.pruneRatio,
      epochs: K,
      seed: BigInt(spec.seed),
    },
    { maxDatasetSize: n },
  );
  const job = new Job(record);
  const model = createModel(s, spec.seed);
  const optimizer = tf.train.adam(s.lr);
  const schedule = new CosineSchedule(s.lr, s.minLr);
  const history: EpochShape[] = [];
  const x = new Uint8Array(B * PIXELS);
  const y = new Uint8Array(B);
  const w = new Float32Array(B);
  const batchIds = new Uint32Array(B);
  const epochs: EpochRecord[] = [];
  let step = 0;
  let samplesTrained = 0;
  try {
    for (let epoch = 0; epoch < K; epoch++) {
      const started = performance.now();
      const cpu = process.cpuUsage();
      const input = job.planInput(epoch);
      const plan = planEpoch(input);
      hooks?.onPlan?.({ epoch, plan, input });
      const m = plan.ids.length;
      // The loader's shuffle (global unless --shuffle), so batches hold what a loader-fed trainer gets.
      const order = shufflePlan({
        ids: plan.ids,
        seed: job.seed,
        epoch,
        mode: s.shuffle,
        blockShards: s.shuffleBlockShards,
        shardOf: (id) => Math.floor(id / s.shardSamples),
      });
      const steps = Math.ceil(m / B);
      schedule.setTotal(estimateTotalSteps(K, { epoch, steps, pruneRatio: plan.pruneRatio }, history));
      let lossSum = 0;
      let unweightedSum = 0;
      let wMin = Infinity;
      let wMax = 0;
      let wSum = 0;
      let lr = s.lr;
      for (let b = 0; b < steps; b++) {
        signal?.throwIfAborted();
        const from = b * B;
        const size = Math.min(B, m - from);
        for (let j = 0; j < size; j++) {
          const pos = order[from + j]!;
          const id = plan.ids[pos]!;
          const weight = plan.weights[pos]!;
          batchIds[j] = id;
          x.set(data.train.pixels.subarray(id * PIXELS, (id + 1) * PIXELS), j * PIXELS);
          y[j] = data.train.labels[id]!;
          w[j] = weight;
          wSum += weight;
          if (weight < wMin) wMin = weight;
          if (weight > wMax) wMax = weight;
        }
        lr = schedule.rate(step);
        setLearningRate(optimizer, lr);
        const ids = batchIds.subarray(0, size);
        const weights = w.subarray(0, size);
        const res = await model.trainStep(
          x.subarray(0, size * PIXELS),
          y.subarray(0, size),
          weights,
          optimizer,
        );
        step++;
        // What the loader forwards to the scorer: the unweighted-loss scores and the losses.
        job.report({ epoch, ids, scores: res.scores, losses: res.losses });
        hooks?.onBatch?.({ epoch, ids, weights, scores: res.scores, losses: res.losses });
        lossSum += res.loss * size;
        for (let j = 0; j < size; j++) unweightedSum += res.losses[j]!;
      }
      history.push({ epoch, steps, pruneRatio: plan.pruneRatio });
      samplesTrained += m;
      const trainMs = performance.now() - started;
      const cpuMs = cpuMsSince(cpu);
      const rec: EpochRecord = {
        epoch,
        planPruneRatio: plan.pruneRatio,
        expectedSize: plan.expectedSize,
        samples: m,
        steps,
        planDigest: plan.digest,
        weightMin: m > 0 ? wMin : 0,
        weightMean: m > 0 ? wSum / m : 0,
        weightMax: wMax,
        loss: m > 0 ? lossSum / m : 0,
        unweightedLoss: m > 0 ? unweightedSum / m : 0,
        lr,
        trainMs,
        cpuMs,
        planMs: plan.stats.computeMs,
      };
      if (s.epochEvalSize > 0) {
        signal?.throwIfAborted();
        const count = Math.min(s.epochEvalSize, data.test.count);
        const ev = await model.evaluate(
          data.test.pixels.subarray(0, count * PIXELS),
          data.test.labels.subarray(0, count),
          EVAL_BATCH,
        );
        rec.testAccuracy = ev.accuracy;
      }
      epochs.push(rec);
      hooks?.onEpoch?.({ spec, record: rec });
    }
    signal?.throwIfAborted();
    const final = await model.evaluate(data.test.pixels, data.test.labels, EVAL_BATCH);
    return {
      ...spec,
      config: configKey(policy, spec.pruneRatio),
      smoothing: record.effectiveSmoothing,
      maxPruneRatio: record.effectiveMaxPruneRatio,
      samplesTrained,
      realizedPruneFraction: 1 - samplesTrained / (n * K),
      steps: step,
      trainSeconds: epochs.reduce((a, e) => a + e.trainMs, 0) / 1000,
      cpuSeconds: epochs.reduce((a, e) => a + e.cpuMs, 0) / 1000,
      testAccuracy: final.accuracy,
      testLoss: final.loss,
      epochs,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

/** Two steps on a throwaway model, so the first timed run does not pay for kernel set-up. */
export async function warmUp(s: AccuracySettings, data: AccuracyData): Promise<void> {
  const model = createModel(s, 0);
  const optimizer = tf.train.adam(s.lr);
  try {
    const size = Math.min(s.batchSize, data.train.count);
    const ones = new Float32Array(size).fill(1);
    for (let i = 0; i < 2; i++) {
      await model.trainStep(
        data.train.pixels.subarray(0, size * PIXELS),
        data.train.labels.subarray(0, size),
        ones,
        optimizer,
      );
    }
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
