// A short real training run: the spiking MLP learns Fashion-MNIST with BPTT
// through the surrogate gradients, and its scores track what it has learned.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { readFashionMnist, type IdxImages } from '../../../common/datasets/fashion-mnist.js';
import { selectBackend } from '../../../trainer/backend.js';
import { createSpikingMlp } from '../../../trainer/snn/index.js';

let train: IdxImages;
let testSet: IdxImages;
const PIXELS = 784;

before(async () => {
  await selectBackend('wasm');
  [train, testSet] = await Promise.all([readFashionMnist('train'), readFashionMnist('test')]);
});

test('2,000 examples x 3 epochs lower the loss and reach well-above-chance test accuracy', async (t) => {
  const N = 2000;
  const B = 50;
  const EVAL = 2000;
  const model = createSpikingMlp({ seed: 1 });
  const optimizer = tf.train.adam(1e-3);
  const ones = new Float32Array(B).fill(1);
  const before = await model.evaluate(
    testSet.pixels.subarray(0, EVAL * PIXELS),
    testSet.labels.subarray(0, EVAL),
  );
  const epochLoss: number[] = [];
  let firstScores: Float32Array | undefined;
  let lastScores: Float32Array | undefined;
  for (let epoch = 0; epoch < 3; epoch++) {
    let sum = 0;
    for (let s = 0; s < N; s += B) {
      const res = await model.trainStep(
        train.pixels.subarray(s * PIXELS, (s + B) * PIXELS),
        train.labels.subarray(s, s + B),
        ones,
        optimizer,
      );
      assert.ok(Number.isFinite(res.loss));
      sum += res.loss;
      if (s === 0) {
        if (epoch === 0) firstScores = res.scores;
        lastScores = res.scores;
      }
    }
    epochLoss.push(sum / (N / B));
  }
  const after = await model.evaluate(
    testSet.pixels.subarray(0, EVAL * PIXELS),
    testSet.labels.subarray(0, EVAL),
  );
  optimizer.dispose();
  model.dispose();
  t.diagnostic(
    `loss/epoch ${epochLoss.map((l) => l.toFixed(3)).join(' -> ')}; test accuracy ${before.accuracy.toFixed(3)} -> ${after.accuracy.toFixed(3)}`,
  );

  assert.ok(
    epochLoss[2]! < epochLoss[0]! * 0.8,
    `loss per epoch ${epochLoss.map((l) => l.toFixed(3)).join(' -> ')}`,
  );
  assert.ok(before.accuracy < 0.3, `untrained accuracy ${before.accuracy}`);
  assert.ok(after.accuracy > 0.65, `test accuracy ${after.accuracy} after 3 epochs on ${N} examples`);
  assert.ok(after.loss < before.loss);
  // Learned examples contribute smaller gradients: the batch seen first scores lower by epoch 3.
  const mean = (a: Float32Array) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(
    mean(lastScores!) < mean(firstScores!),
    `mean score ${mean(firstScores!)} -> ${mean(lastScores!)}`,
  );
});
