// Smoke test of the accuracy benchmark on a tiny grid: every policy yields a
// well-formed result, each epoch trains exactly the scorer's plan with its
// weights, the scores and losses go back into the planner's input, and the
// forked-worker grid gives the same results as training in process.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  QUICK_SETTINGS,
  checkTargets,
  loadAccuracyData,
  markdownTable,
  planRuns,
  resolveSettings,
  runAccuracyBenchmark,
  runAccuracyRun,
  summarize,
  writeAccuracyPlot,
  type AccuracyData,
  type AccuracySettings,
  type RunResult,
} from '../../bench/accuracy/index.js';
import { isSadpError } from '../../common/errors.js';
import {
  POLICY_NAMES,
  defaultHyperparameters,
  planEpoch,
  pruneRatioAt,
  type PolicyName,
} from '../../scorer/index.js';
import { createSpikingMlp, selectBackend } from '../../trainer/index.js';

const R = 0.5;
const SETTINGS: AccuracySettings = {
  ...QUICK_SETTINGS,
  trainSize: 600,
  testSize: 400,
  epochEvalSize: 200,
  // K = 3 with r = 0.5 (r_max 0.7, beta 0.3): epoch 1 keeps 43% with SADP's
  // non-uniform probabilities; epoch 2 keeps 30% = beta, where they are uniform.
  epochs: 3,
  seeds: [1],
  ratios: [R],
  batchSize: 64,
};

let data: AccuracyData;

before(async () => {
  await selectBackend('wasm');
  data = await loadAccuracyData(SETTINGS);
});

interface Captured {
  plans: { ids: Uint32Array; weights: Float64Array; expectedSize: number; digest: string }[];
  /** Planner input at each epoch's start (copies). */
  inputs: { scores: Float64Array; losses: Float64Array; scored: Uint8Array }[];
  /** Per epoch: id -> [weight, score, loss] as trained and reported. */
  batches: Map<number, [number, number, number]>[];
  /** Ids trained in more than one batch of an epoch. */
  repeats: number;
}

async function capturedRun(policy: PolicyName): Promise<{ result: RunResult; c: Captured }> {
  const c: Captured = { plans: [], inputs: [], batches: [], repeats: 0 };
  const result = await runAccuracyRun(
    { index: 0, policy, pruneRatio: policy === 'full' ? 0 : R, seed: 1 },
    SETTINGS,
    data,
    {
      hooks: {
        onPlan: ({ plan, input }) => {
          c.plans.push({
            ids: plan.ids.slice(),
            weights: plan.weights.slice(),
            expectedSize: plan.expectedSize,
            digest: plan.digest,
          });
          c.inputs.push({
            scores: input.scores.slice(),
            losses: input.losses.slice(),
            scored: input.scored.slice(),
          });
          c.batches.push(new Map());
        },
        onBatch: ({ epoch, ids, weights, scores, losses }) => {
          const seen = c.batches[epoch]!;
          ids.forEach((id, j) => {
            if (seen.has(id)) c.repeats++;
            seen.set(id, [weights[j]!, scores[j]!, losses[j]!]);
          });
        },
      },
    },
  );
  return { result, c };
}

/** The plan of `epoch` computed here from scratch, for inputs no report has touched. */
function unscoredPlan(policy: PolicyName, epoch: number) {
  const n = SETTINGS.trainSize;
  const r = policy === 'full' ? 0 : R;
  const h = defaultHyperparameters(r);
  return planEpoch({
    policy,
    datasetSize: n,
    pruneRatio: r,
    maxPruneRatio: h.maxPruneRatio,
    smoothing: h.smoothing,
    epochs: SETTINGS.epochs,
    epoch,
    seed: 1n,
    scores: new Float64Array(n),
    losses: new Float64Array(n),
    scored: new Uint8Array(n),
  });
}

/** |count - expected| within 5 binomial standard deviations (at most sqrt(N)/2). */
function nearExpected(count: number, expected: number, what: string): void {
  const sd = Math.sqrt(SETTINGS.trainSize) / 2;
  assert.ok(
    Math.abs(count - expected) <= 5 * sd,
    `${what}: ${count} samples, expected ~${expected.toFixed(1)}`,
  );
}

test('every policy trains exactly its plans, with their weights, and feeds scores back', async () => {
  const n = SETTINGS.trainSize;
  const K = SETTINGS.epochs;
  // Whatever a bare create + dispose() leaves (nothing since the weight
  // variables dispose their initial values), the harness must add none.
  const bare = tf.memory().numTensors;
  createSpikingMlp({ seed: 1, hidden: SETTINGS.hidden }).dispose();
  const modelLeak = tf.memory().numTensors - bare;
  const tensorsBefore = tf.memory().numTensors;
  const digests = new Map<PolicyName, string[]>();
  for (const policy of POLICY_NAMES) {
    const { result, c } = await capturedRun(policy);
    const what = (e: number) => `${policy} epoch ${e}`;

    // Well-formed result.
    assert.equal(result.policy, policy);
    assert.equal(result.config, policy === 'full' ? 'full' : `${policy}@${R}`);
    assert.equal(result.epochs.length, K);
    assert.ok(
      result.testAccuracy > 0.1 && result.testAccuracy <= 1,
      `${policy} accuracy ${result.testAccuracy}`,
    );
    assert.ok(Number.isFinite(result.testLoss) && result.testLoss > 0);
    assert.ok(result.trainSeconds > 0 && result.cpuSeconds > 0);
    const trained = result.epochs.reduce((a, e) => a + e.samples, 0);
    assert.equal(result.samplesTrained, trained);
    assert.equal(result.realizedPruneFraction, 1 - trained / (n * K));
    assert.equal(
      result.steps,
      result.epochs.reduce((a, e) => a + Math.ceil(e.samples / SETTINGS.batchSize), 0),
    );
    assert.equal(c.repeats, 0, `${policy}: an id was trained twice in one epoch`);

    for (let e = 0; e < K; e++) {
      const plan = c.plans[e]!;
      const rec = result.epochs[e]!;
      assert.equal(rec.planDigest, plan.digest);
      assert.equal(rec.samples, plan.ids.length, what(e));
      assert.ok(rec.testAccuracy !== undefined && rec.testAccuracy >= 0 && rec.testAccuracy <= 1);
      // The epoch's batches are the plan: same ids, each with its plan weight.
      const trainedNow = c.batches[e]!;
      assert.equal(trainedNow.size, plan.ids.length, what(e));
      plan.ids.forEach((id, j) => {
        const got = trainedNow.get(id);
        assert.ok(got, `${what(e)}: planned id ${id} was not trained`);
        assert.equal(got[0], Math.fround(plan.weights[j]!), `${what(e)}: weight of id ${id}`);
      });
      // The next plan's input holds the latest report of every id trained so far.
      const next = c.inputs[e + 1];
      if (next) {
        const latest = new Map<number, [number, number, number]>();
        for (let k = 0; k <= e; k++) for (const [id, v] of c.batches[k]!) latest.set(id, v);
        for (let id = 0; id < n; id++) {
          const v = latest.get(id);
          assert.equal(next.scored[id], v ? 1 : 0, `${what(e + 1)}: scored flag of id ${id}`);
          if (v) {
            assert.equal(next.scores[id], v[1], `${what(e + 1)}: score of id ${id}`);
            assert.equal(next.losses[id], v[2], `${what(e + 1)}: loss of id ${id}`);
          }
        }
      }
    }
    // Nothing is scored before the first epoch: its plan is the scorer's from scratch.
    assert.equal(c.plans[0]!.digest, unscoredPlan(policy, 0).digest);
    assert.equal(
      c.inputs[0]!.scored.reduce((a, b) => a + b, 0),
      0,
    );

    const weights = (e: number) => c.plans[e]!.weights;
    switch (policy) {
      case 'full':
        for (const rec of result.epochs) assert.equal(rec.samples, n);
        assert.equal(result.realizedPruneFraction, 0);
        for (let e = 0; e < K; e++) assert.ok(weights(e).every((w) => w === 1));
        break;
      case 'random':
        for (let e = 0; e < K; e++) {
          // Scores play no part: every epoch is the scorer's plan from scratch, ~S = (1 - r) N samples.
          assert.equal(c.plans[e]!.digest, unscoredPlan('random', e).digest);
          nearExpected(result.epochs[e]!.samples, (1 - R) * n, what(e));
          assert.ok(weights(e).every((w) => w === 1));
        }
        break;
      case 'infobatch':
        // Never-scored examples are kept, so the first epoch is full; later ones
        // keep below-mean examples with probability 1 - r and weight 1 / (1 - r).
        assert.equal(result.epochs[0]!.samples, n);
        for (let e = 1; e < K; e++) {
          assert.ok(result.epochs[e]!.samples < n, what(e));
          assert.ok(
            weights(e).every((w) => w === 1 || w === 1 / (1 - R)),
            what(e),
          );
          assert.ok(
            weights(e).some((w) => w === 1 / (1 - R)),
            what(e),
          );
          nearExpected(result.epochs[e]!.samples, c.plans[e]!.expectedSize, what(e));
        }
        break;
      case 'sadp':
      case 'sadp-loss': {
        const h = defaultHyperparameters(R);
        for (let e = 0; e < K; e++) {
          const rk = pruneRatioAt(e, R, h.maxPruneRatio, K, n);
          assert.equal(result.epochs[e]!.planPruneRatio, rk, what(e));
          nearExpected(result.epochs[e]!.samples, (1 - rk) * n, what(e));
        }
        // Epoch 0 is uniform (nothing scored): w = (S/N) / p = 1.
        assert.ok(weights(0).every((w) => Math.abs(w - 1) < 1e-12));
        // Epoch 1 follows the reported values: unequal p, so w = (S/N) / p on both sides of 1.
        const w1 = result.epochs[1]!;
        assert.ok(
          w1.weightMin < 1 && w1.weightMax > 1,
          `${what(1)}: weights ${w1.weightMin}..${w1.weightMax}`,
        );
        break;
      }
    }
    digests.set(
      policy,
      c.plans.map((p) => p.digest),
    );
  }
  // The spike-aware score and the loss rank examples differently: different epoch-1 plans.
  assert.notEqual(digests.get('sadp')![1], digests.get('sadp-loss')![1]);
  assert.equal(
    tf.memory().numTensors - tensorsBefore,
    POLICY_NAMES.length * modelLeak,
    'the harness leaked tensors',
  );
});

test('the grid in two worker processes matches in-process training, and summarizes', async () => {
  const settings: AccuracySettings = {
    ...SETTINGS,
    trainSize: 300,
    epochs: 2,
    seeds: [1, 2],
    epochEvalSize: 0,
  };
  const forked = await runAccuracyBenchmark(settings, { jobs: 2 });
  const here = await runAccuracyBenchmark(settings, { jobs: 1 });
  const specs = planRuns(settings);
  assert.equal(specs.length, 2 * POLICY_NAMES.length);
  assert.equal(forked.jobs, 2);
  assert.deepEqual(
    forked.runs.map((r) => r.index),
    specs.map((s) => s.index),
  );
  for (const [i, r] of forked.runs.entries()) {
    const h = here.runs[i]!;
    assert.equal(r.config, h.config);
    assert.equal(r.seed, h.seed);
    assert.deepEqual(
      r.epochs.map((e) => e.planDigest),
      h.epochs.map((e) => e.planDigest),
      `${r.config} seed ${r.seed}: plans differ between worker and in-process training`,
    );
    assert.equal(r.testAccuracy, h.testAccuracy);
  }

  const configs = summarize(forked.runs);
  assert.equal(configs.length, POLICY_NAMES.length);
  for (const c of configs) {
    assert.deepEqual(c.seeds, [1, 2]);
    assert.equal(c.accuracy.n, 2);
    const accs = forked.runs.filter((r) => r.config === c.config).map((r) => r.testAccuracy);
    assert.ok(Math.abs(c.accuracy.mean - (accs[0]! + accs[1]!) / 2) < 1e-12);
    assert.ok(c.timeRatio && c.timeRatio.mean > 0);
    assert.ok(Math.abs(c.idealTimeRatio - (1 - c.realizedPruneFraction.mean)) < 1e-12);
  }
  assert.equal(configs.find((c) => c.policy === 'full')!.timeRatio!.mean, 1);
  const table = markdownTable(configs);
  assert.equal(table.split('\n').length, 2 + configs.length);
  // This grid has no r = 0.3 or 0.7 runs: those claims cannot be checked.
  const checks = checkTargets(configs);
  assert.equal(checks.filter((t) => t.met === null).length, 2);
  assert.ok(checks.some((t) => t.target.includes('r = 0.5') && t.met !== null));

  const dir = await mkdtemp(join(tmpdir(), 'sadp-accuracy-'));
  try {
    const path = join(dir, 'accuracy.svg');
    await writeAccuracyPlot(path, configs, 'smoke');
    const svg = await readFile(path, 'utf8');
    assert.match(svg, /^<svg/);
    assert.match(svg, /SADP/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('flags resolve over the defaults and name the bad one', () => {
  const s = resolveSettings({ seeds: '3', ratios: '0.3,0.7', policies: 'full,sadp', epochs: '4' });
  assert.deepEqual(s.seeds, [1, 2, 3]);
  assert.deepEqual(s.ratios, [0.3, 0.7]);
  assert.equal(planRuns(s).length, 3 * (1 + 2));
  assert.deepEqual(resolveSettings({ seeds: '4,9' }).seeds, [4, 9]);
  assert.equal(resolveSettings({ quick: true }).trainSize, QUICK_SETTINGS.trainSize);
  for (const [flag, value] of [
    ['ratios', '0.3,1'],
    ['policies', 'sadp,magic'],
    ['epochs', '0'],
    ['model', 'rnn'],
  ] as const) {
    assert.throws(
      () => resolveSettings({ [flag]: value }),
      (err: unknown) => isSadpError(err, 'SADP_BENCH_BAD_FLAG') && err.message.includes(`--${flag}`),
    );
  }
});
