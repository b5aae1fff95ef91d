// The spike-aware score: the gradient tap sees exactly dl/dI[t], the score is
// an upper bound of the exact per-example gradient norm (equal for T = 1),
// it does not depend on the importance weights while the update does, and
// no step leaks tensors.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { readFashionMnist, type IdxImages } from '../../../common/datasets/fashion-mnist.js';
import { isSadpError } from '../../../common/errors.js';
import { selectBackend } from '../../../trainer/backend.js';
import { createSpikingCnn, createSpikingMlp, type SpikingModel } from '../../../trainer/snn/index.js';
import { createSpikeFn, lifMultiStep, readout } from '../../../trainer/snn/neuron.js';
import { resolveNetworkOptions } from '../../../trainer/snn/options.js';
import { gradientTap } from '../../../trainer/snn/tap.js';

let data: IdxImages;
const PIXELS = 784;

before(async () => {
  await selectBackend('wasm');
  data = await readFashionMnist('train');
});

function batch(start: number, size: number): { x: Uint8Array; y: Uint8Array } {
  return {
    x: data.pixels.subarray(start * PIXELS, (start + size) * PIXELS),
    y: data.labels.subarray(start, start + size),
  };
}

/** Importance weights spread over two orders of magnitude, seeded. */
function randomWeights(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return 0.1 * 100 ** (s / 2 ** 31);
  });
}

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(1e-12, Math.abs(b));
}

test('the gradient tap hands over exactly dl/dx and passes it through unchanged', () => {
  const x = tf.randomNormal([3, 5], 0, 1, 'float32', 11);
  const f = (v: tf.Tensor) => tf.sum(tf.mul(tf.sin(v), tf.square(v)));
  let seen: Float32Array | undefined;
  const tapped = tf.grad((v: tf.Tensor) => f(gradientTap((dy) => (seen = dy.dataSync() as Float32Array))(v)))(
    x,
  );
  const direct = tf.grad(f)(x);
  assert.ok(seen);
  assert.deepEqual(Array.from(seen), Array.from(direct.dataSync()));
  assert.deepEqual(Array.from(tapped.dataSync()), Array.from(direct.dataSync()));
  tf.dispose([x, tapped, direct]);
});

test('scores equal sum_t ||dl_i/dI_i[t]|| ||o_i[t]|| with the errors from tf.grads, weights divided out', async () => {
  const T = 4;
  const B = 16;
  const model = createSpikingMlp({ hidden: [48], timeSteps: T, scoreLayers: 'all', seed: 3 });
  const { x, y } = batch(100, B);
  const w = randomWeights(B, 5);
  const res = await model.scoreBatch(x, y, w);

  // Independent recomputation from the weights with the plain ops.
  const cfg = resolveNetworkOptions({ timeSteps: T });
  const weights = model.getWeights();
  const [expected1, expectedFinal] = tf.tidy((): [tf.Tensor, tf.Tensor] => {
    const t = (name: string) => tf.tensor(weights[name]!.values, weights[name]!.shape);
    const xs = tf.div(tf.tensor2d(x, [B, PIXELS], 'int32'), 255);
    const oneHot = tf.oneHot(tf.tensor1d(y, 'int32'), 10);
    const spike = createSpikeFn(cfg.surrogate, cfg.alpha);
    const ceSum = (logits: tf.Tensor) => tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits))));
    const hiddenToLoss = (i1: tf.Tensor) => {
      const o = lifMultiStep(i1, cfg, spike).spikes; // [T, B, H]
      const i2 = tf.add(tf.matMul(tf.reshape(o, [T * B, 48]), t('fc2.kernel')), t('fc2.bias'));
      return { o, i2: tf.reshape(i2, [T, B, 10]) };
    };
    const i1 = tf.broadcastTo(tf.add(tf.matMul(xs, t('fc1.kernel')), t('fc1.bias')), [T, B, 48]);
    const { o, i2 } = hiddenToLoss(i1);
    const d2 = tf.grad((v: tf.Tensor) => ceSum(readout(v, cfg.decay)))(i2); // [T, B, 10]
    const d1 = tf.grad((v: tf.Tensor) => ceSum(readout(hiddenToLoss(v).i2, cfg.decay)))(i1); // [T, B, 48]
    const norms = (v: tf.Tensor) => tf.sqrt(tf.sum(tf.square(v), 2)); // [T, B]
    const xNorm = tf.sqrt(tf.sum(tf.square(xs), 1)); // [B]
    return [tf.sum(tf.mul(norms(d1), xNorm), 0), tf.sum(tf.mul(norms(d2), norms(o)), 0)];
  });
  const e1 = expected1.dataSync() as Float32Array;
  const eF = expectedFinal.dataSync() as Float32Array;
  tf.dispose([expected1, expectedFinal]);
  assert.equal(res.layerScores.length, 2);
  for (let i = 0; i < B; i++) {
    assert.ok(
      rel(res.layerScores[0]![i]!, e1[i]!) < 1e-3,
      `fc1 example ${i}: ${res.layerScores[0]![i]} vs ${e1[i]}`,
    );
    assert.ok(
      rel(res.layerScores[1]![i]!, eF[i]!) < 1e-3,
      `fc2 example ${i}: ${res.layerScores[1]![i]} vs ${eF[i]}`,
    );
    assert.ok(rel(res.scores[i]!, e1[i]! + eF[i]!) < 1e-3, `sum example ${i}`);
  }
  assert.ok(
    eF.some((v) => v > 0),
    'the batch has nonzero final-layer scores',
  );
  model.dispose();
});

async function boundCheck(model: SpikingModel, start: number, size: number) {
  const { x, y } = batch(start, size);
  const res = await model.scoreBatch(x, y);
  const exact = await model.exactGradientNorms(x, y);
  return { res, exact };
}

test('the spike-aware score bounds the exact per-example gradient norm, MLP', async () => {
  const model = createSpikingMlp({ hidden: [64], timeSteps: 4, scoreLayers: 'all', seed: 2 });
  const { res, exact } = await boundCheck(model, 0, 24);
  let strict = 0;
  for (let i = 0; i < 24; i++) {
    const final = res.layerScores[1]![i]!;
    assert.ok(final >= exact.final[i]! * (1 - 1e-5), `final example ${i}: ${final} < ${exact.final[i]}`);
    assert.ok(
      res.scores[i]! >= exact.all[i]! * (1 - 1e-5),
      `all example ${i}: ${res.scores[i]} < ${exact.all[i]}`,
    );
    if (final > exact.final[i]! * 1.001) strict++;
  }
  assert.ok(strict > 0, 'with T = 4 the bound is not tight for every example');
  model.dispose();
});

test('with T = 1 the score of every dense layer equals its exact gradient norm', async () => {
  const model = createSpikingMlp({ hidden: [64, 32], timeSteps: 1, scoreLayers: 'all', seed: 4 });
  const { res, exact } = await boundCheck(model, 40, 24);
  for (let l = 0; l < 3; l++) {
    for (let i = 0; i < 24; i++) {
      const s = res.layerScores[l]![i]!;
      const e = exact.perLayer[l]![i]!;
      assert.ok(Math.abs(s - e) <= 1e-4 * Math.max(e, 1e-6), `layer ${l} example ${i}: ${s} vs ${e}`);
    }
  }
  assert.ok(exact.final.some((v) => v > 0));
  model.dispose();
});

test('the spike-aware score bounds the exact gradient norm per layer of a CNN (unfold constant)', async () => {
  const model = createSpikingCnn({ channels: [4, 8], timeSteps: 2, scoreLayers: 'all', seed: 5 });
  const { res, exact } = await boundCheck(model, 200, 10);
  assert.equal(res.layerScores.length, 3);
  for (let l = 0; l < 3; l++) {
    for (let i = 0; i < 10; i++) {
      const s = res.layerScores[l]![i]!;
      const e = exact.perLayer[l]![i]!;
      assert.ok(s >= e * (1 - 1e-5), `layer ${l} example ${i}: ${s} < ${e}`);
    }
  }
  for (let i = 0; i < 10; i++) assert.ok(res.scores[i]! >= exact.all[i]! * (1 - 1e-5));
  assert.ok(
    exact.perLayer[0]!.some((v) => v > 0),
    'the first conv layer gets gradient',
  );
  model.dispose();
});

test('scores and losses do not depend on the importance weights; the update scales with them', async () => {
  const B = 32;
  const { x, y } = batch(300, B);
  const model = createSpikingMlp({ hidden: [64], seed: 6 });
  const plain = await model.scoreBatch(x, y, new Float32Array(B).fill(1));
  const w = randomWeights(B, 9);
  const weighted = await model.scoreBatch(x, y, w);
  for (let i = 0; i < B; i++) {
    assert.ok(
      rel(weighted.scores[i]!, plain.scores[i]!) < 1e-4,
      `score ${i}: ${weighted.scores[i]} vs ${plain.scores[i]}`,
    );
    assert.ok(rel(weighted.losses[i]!, plain.losses[i]!) < 1e-6);
  }
  const expectedLoss = plain.losses.reduce((acc, l, i) => acc + l * w[i]!, 0) / B;
  assert.ok(rel(weighted.loss, expectedLoss) < 1e-4, `weighted loss ${weighted.loss} vs ${expectedLoss}`);
  model.dispose();

  // Same init, same batch, SGD: weights 3x -> the update of every parameter is 3x.
  const deltas = [];
  for (const scale of [1, 3]) {
    const m = createSpikingMlp({ hidden: [64], seed: 6 });
    const before = m.getWeights();
    const opt = tf.train.sgd(0.05);
    await m.trainStep(x, y, new Float32Array(B).fill(scale), opt);
    const after = m.getWeights();
    deltas.push(after['fc2.kernel']!.values.map((v, i) => v - before['fc2.kernel']!.values[i]!));
    opt.dispose();
    m.dispose();
  }
  const [d1, d3] = deltas as [Float32Array, Float32Array];
  const norm = Math.hypot(...d1);
  assert.ok(norm > 0, 'the step changed the output layer');
  const err = Math.hypot(...d3.map((v, i) => v - 3 * d1[i]!));
  assert.ok(
    err < 1e-3 * 3 * norm,
    `update with weight 3 is 3x the update with weight 1 (err ${err}, norm ${norm})`,
  );
});

test('training, scoring, evaluation and checkpoints leak no tensors', async () => {
  const model = createSpikingCnn({ channels: [4, 8], scoreLayers: 'all', encoding: 'poisson', seed: 8 });
  const opt = tf.train.adam(1e-3);
  const { x, y } = batch(500, 8);
  const w = new Float32Array(8).fill(1);
  await model.trainStep(x, y, w, opt); // creates the optimizer's slots
  const baseline = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const r = await model.trainStep(x, y, w, opt);
    assert.ok(r.scores.every((s) => Number.isFinite(s) && s >= 0));
    assert.ok(r.spikeRate >= 0 && r.spikeRate <= 1);
  }
  await model.scoreBatch(x, y);
  await model.evaluate(x, y, 3);
  await model.exactGradientNorms(x.subarray(0, 2 * PIXELS), y.subarray(0, 2));
  model.loadWeights(model.saveWeights());
  assert.equal(tf.memory().numTensors, baseline);
  opt.dispose();
  model.dispose();
});

test('checkpoints round-trip and bad inputs are rejected with codes naming the culprit', async () => {
  const { x, y } = batch(600, 8);
  const a = createSpikingMlp({ hidden: [32], seed: 1 });
  const b = createSpikingMlp({ hidden: [32], seed: 2 });
  const before = await b.scoreBatch(x, y);
  b.loadWeights(a.saveWeights());
  const [ra, rb] = [await a.scoreBatch(x, y), await b.scoreBatch(x, y)];
  assert.deepEqual(rb.scores, ra.scores);
  assert.notDeepEqual(before.scores, ra.scores);

  const bytes = a.saveWeights();
  assert.throws(
    () => b.loadWeights(bytes.subarray(0, bytes.length - 4)),
    (e) => isSadpError(e, 'SADP_SNN_BAD_CHECKPOINT'),
  );
  const other = createSpikingMlp({ hidden: [16] });
  assert.throws(
    () => b.loadWeights(other.saveWeights()),
    (e) => isSadpError(e, 'SADP_SNN_BAD_WEIGHTS'),
  );
  assert.deepEqual(
    (await b.scoreBatch(x, y)).scores,
    ra.scores,
    'a rejected checkpoint leaves the model intact',
  );

  const bad = Uint8Array.from(y);
  bad[3] = 10;
  await assert.rejects(
    a.scoreBatch(x, bad),
    (e) => isSadpError(e, 'SADP_SNN_BAD_LABEL') && /example 3/.test(e.message),
  );
  const w = new Float32Array(8).fill(1);
  w[5] = 0;
  await assert.rejects(
    a.scoreBatch(x, y, w),
    (e) => isSadpError(e, 'SADP_SNN_BAD_INPUT') && /example 5/.test(e.message),
  );
  await assert.rejects(a.scoreBatch(x.subarray(1), y), (e) => isSadpError(e, 'SADP_SNN_BAD_INPUT'));
  for (const m of [a, b, other]) m.dispose();
  await assert.rejects(a.scoreBatch(x, y), (e) => isSadpError(e, 'SADP_SNN_DISPOSED'));
});

test('creating and disposing a network leaves no tensors behind', () => {
  const before = tf.memory().numTensors;
  createSpikingMlp({ seed: 1 }).dispose();
  createSpikingCnn({ channels: [2, 2], seed: 1 }).dispose();
  assert.equal(tf.memory().numTensors, before, 'initial values of the weight variables must be disposed');
});
