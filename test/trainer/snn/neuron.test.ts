// LIF dynamics, surrogate gradients, the readout and the hand-written
// convolution gradient, each against values computed independently.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../../trainer/backend.js';
import { conv2dSame } from '../../../trainer/snn/layers.js';
import { createSpikeFn, lifMultiStep, readout, surrogateGrad } from '../../../trainer/snn/neuron.js';
import type { ResolvedNeuron } from '../../../trainer/snn/options.js';

before(async () => {
  await selectBackend('wasm');
});

const neuron = (o: Partial<ResolvedNeuron> = {}): ResolvedNeuron => ({
  decay: 0.5,
  threshold: 1,
  surrogate: 'sigmoid',
  alpha: 4,
  detachReset: true,
  ...o,
});

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
}

test('LIF spikes and soft-resets exactly as Eq. 1-3 on hand-computed currents', () => {
  // Two neurons over T = 4 steps, lambda = 0.5, theta = 1.
  // n0: I = 0.6, 0.6, 0.6, 1.5 -> u = 0.6, 0.9, 1.05 (fire, 0.05), 1.525 (fire, 0.525)
  // n1: I = 1.8, 0.65, 0, 0    -> u = 1.8 (fire, 0.8), 1.05 (fire, 0.05), 0.025, 0.0125
  // A hard reset (u = 0) would leave n1 silent at t = 1: the soft reset keeps 0.8.
  const current = tf.tensor2d(
    [
      [0.6, 1.8],
      [0.6, 0.65],
      [0.6, 0],
      [1.5, 0],
    ],
    [4, 2],
  );
  const { spikes, membrane } = lifMultiStep(current, neuron(), createSpikeFn('sigmoid', 4), true);
  close(spikes.dataSync(), [0, 1, 0, 1, 1, 0, 1, 0], 0, 'spikes');
  close(membrane!.dataSync(), [0.6, 0.8, 0.9, 0.05, 0.05, 0.025, 0.525, 0.0125], 1e-6, 'membrane');
  tf.dispose([current, spikes, membrane!]);
});

test('surrogate gradients equal finite differences of the surrogate functions', () => {
  const xs = [-1.5, -0.7, -0.2, -0.05, 0, 0.03, 0.25, 0.8, 2];
  const primitives = {
    sigmoid: (a: number, x: number) => 1 / (1 + Math.exp(-a * x)),
    atan: (a: number, x: number) => Math.atan((Math.PI / 2) * a * x) / Math.PI + 0.5,
  };
  for (const kind of ['sigmoid', 'atan'] as const) {
    for (const alpha of [1, 2, 4, 5]) {
      const spike = createSpikeFn(kind, alpha);
      const x = tf.tensor1d(xs);
      const g = tf.grad((v: tf.Tensor) => tf.sum(spike(v)))(x);
      const analytic = surrogateGrad(kind, alpha, x);
      const h = 1e-5;
      const fd = xs.map((v) => (primitives[kind](alpha, v + h) - primitives[kind](alpha, v - h)) / (2 * h));
      close(g.dataSync(), fd, 1e-4, `${kind} alpha=${alpha} grad`);
      close(analytic.dataSync(), fd, 1e-4, `${kind} alpha=${alpha} surrogateGrad`);
      // Forward stays the exact Heaviside step (fires at u >= theta).
      close(
        spike(x).dataSync(),
        xs.map((v) => (v >= 0 ? 1 : 0)),
        0,
        'spikes',
      );
      tf.dispose([x, g, analytic]);
    }
  }
});

test('the reset path gets no gradient when detached and the full one otherwise', () => {
  // L = o[1] + o[2] of one neuron; s(v) is the sigmoid surrogate at v = u - theta.
  const I1 = 1.3;
  const I2 = 0.2;
  const lambda = 0.5;
  const s = (v: number) => {
    const z = 1 / (1 + Math.exp(-4 * v));
    return 4 * z * (1 - z);
  };
  const u1 = I1; // fires: reset to 0.3
  const u2 = lambda * (u1 - 1) + I2; // 0.35, silent
  const dDetached = s(u1 - 1) + lambda * s(u2 - 1);
  const dFull = s(u1 - 1) + lambda * (1 - s(u1 - 1)) * s(u2 - 1);
  for (const [detachReset, expected] of [
    [true, dDetached],
    [false, dFull],
  ] as const) {
    const spike = createSpikeFn('sigmoid', 4);
    const current = tf.tensor2d([[I1], [I2]]);
    const g = tf.grad((c: tf.Tensor) =>
      tf.sum(lifMultiStep(c, neuron({ detachReset, decay: lambda }), spike).spikes),
    )(current);
    close([g.dataSync()[0]!], [expected], 1e-5, `dL/dI[1] detachReset=${detachReset}`);
    tf.dispose([current, g]);
  }
});

test('readout logits are the mean membrane of a non-firing leaky integrator', () => {
  const T = 5;
  const B = 3;
  const C = 4;
  const decay = 0.3;
  const current = tf.randomNormal([T, B, C], 0, 1, 'float32', 7);
  const values = current.dataSync();
  const expected = new Float32Array(B * C);
  for (let j = 0; j < B * C; j++) {
    let u = 0;
    for (let t = 0; t < T; t++) {
      u = decay * u + values[t * B * C + j]!;
      expected[j]! += u / T;
    }
  }
  const logits = readout(current, decay);
  assert.deepEqual(logits.shape, [B, C]);
  close(logits.dataSync(), expected, 1e-5, 'logits');
  tf.dispose([current, logits]);
});

test('conv2dSame matches tf.conv2d and its gradients (cpu reference)', async () => {
  const x = tf.randomNormal<tf.Rank.R4>([3, 6, 5, 4], 0, 1, 'float32', 1);
  const k = tf.randomNormal<tf.Rank.R4>([3, 3, 4, 7], 0, 1, 'float32', 2);
  const dy = tf.randomNormal([3, 6, 5, 7], 0, 1, 'float32', 3);
  const loss = (conv: (a: tf.Tensor4D, b: tf.Tensor4D) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), dy));
  const ours = {
    y: conv2dSame(x, k, true).dataSync(),
    grads: tf
      .grads(loss((a, b) => conv2dSame(a, b, true)))([x, k])
      .map((g) => g.dataSync()),
    kernelOnly: tf
      .grad((b: tf.Tensor) => loss((a, c) => conv2dSame(a, c, false))(x, b))(k)
      .dataSync(),
  };
  // TF.js's own conv gradients need Conv2DBackpropFilter, which only cpu has.
  await selectBackend('cpu');
  const xc = tf.tensor4d(x.dataSync(), x.shape);
  const kc = tf.tensor4d(k.dataSync(), k.shape);
  const dyc = tf.tensor(dy.dataSync(), dy.shape);
  const refLoss = (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), dyc));
  const ref = {
    y: tf.conv2d(xc, kc, 1, 'same').dataSync(),
    grads: tf
      .grads(refLoss)([xc, kc])
      .map((g) => g.dataSync()),
  };
  await selectBackend('wasm');
  close(ours.y, ref.y, 1e-4, 'forward');
  close(ours.grads[0]!, ref.grads[0]!, 1e-4, 'dx');
  close(ours.grads[1]!, ref.grads[1]!, 1e-4, 'dK');
  close(ours.kernelOnly, ref.grads[1]!, 1e-4, 'dK (kernel-only op)');
});
