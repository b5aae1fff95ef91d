// Network structure and the forward pass over T time steps. BPTT is TF.js
// autodiff through the unrolled recurrence. With hooks, the pass also records
// what the spike-aware score needs: per layer and step, the input-spike norms
// ||o_i[t]|| (forward) and the error norms ||delta_i[t]|| (backward, via a
// gradient tap on the layer's current I[t]).
import * as tf from '@tensorflow/tfjs';
import { applyConv, applyDense, createConv, createDense, unfoldBound, type WeightLayer } from './layers.js';
import { createSpikeFn, lifMultiStep, readout, type SpikeFn } from './neuron.js';
import type { ResolvedNetwork } from './options.js';
import { gradientTap, stepRowNorms } from './tap.js';

export interface Network {
  kind: 'mlp' | 'cnn';
  cfg: ResolvedNetwork;
  /** Shape of one example, e.g. [784] or [28, 28, 1]. */
  inputShape: number[];
  /** Values per example. */
  inputSize: number;
  /** Weight layers in order; every one but the last is followed by LIF neurons. */
  layers: WeightLayer[];
  /**
   * Per layer: 2x2 average pool of the current before the LIF neurons (conv
   * -> pool -> LIF): spikes stay binary, the neurons run at a quarter of the
   * positions, and the pool's gradient is cheap on every backend.
   */
  pool: boolean[];
  spikeFn: SpikeFn;
}

export function buildMlp(cfg: ResolvedNetwork, inputSize: number, hidden: number[]): Network {
  const sizes = [inputSize, ...hidden, cfg.classes];
  const layers: WeightLayer[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    layers.push(createDense(`fc${l + 1}`, sizes[l]!, sizes[l + 1]!, cfg.seed * 1000 + l));
  }
  return {
    kind: 'mlp',
    cfg,
    inputShape: [inputSize],
    inputSize,
    layers,
    pool: layers.map(() => false),
    spikeFn: createSpikeFn(cfg.surrogate, cfg.alpha),
  };
}

export function buildCnn(
  cfg: ResolvedNetwork,
  inputShape: [number, number, number],
  channels: number[],
): Network {
  const layers: WeightLayer[] = [];
  let [h, w, c] = inputShape;
  channels.forEach((filters, l) => {
    layers.push(createConv(`conv${l + 1}`, [h, w, c], filters, 3, cfg.seed * 1000 + l, 2));
    h = Math.floor(h / 2);
    w = Math.floor(w / 2);
    c = filters;
  });
  layers.push(createDense('fc', h * w * c, cfg.classes, cfg.seed * 1000 + channels.length));
  return {
    kind: 'cnn',
    cfg,
    inputShape: [...inputShape],
    inputSize: inputShape[0] * inputShape[1] * inputShape[2],
    layers,
    pool: layers.map((_, l) => l < channels.length),
    spikeFn: createSpikeFn(cfg.surrogate, cfg.alpha),
  };
}

/** What one tapped layer contributes to the score; tensors are kept, the owner disposes. */
interface TapRecord {
  layer: number;
  /** ||o_i[t]|| of the layer's input, [T, B]. */
  inputNorms: tf.Tensor;
  /** ||dy_i[t]|| at the layer's current, [T, B]; set by the backward pass. */
  gradNorms?: tf.Tensor;
  /** Score factor: the unfold constant (1 for dense layers) times 1/2 after a 2x2 average pool. */
  bound: number;
}

export interface ForwardHooks {
  /** Tap every weight layer, or only the output layer. */
  tapAll: boolean;
  taps: TapRecord[];
  /** Per LIF layer: total spikes (kept scalar) and the number of neuron-steps. */
  spikeSums: { sum: tf.Tensor; size: number }[];
  /** Spikes entering the output layer. */
  finalInput?: { sum: tf.Tensor; size: number };
}

export function createHooks(tapAll: boolean): ForwardHooks {
  return { tapAll, taps: [], spikeSums: [] };
}

export function disposeHooks(hooks: ForwardHooks): void {
  for (const t of hooks.taps) {
    t.inputNorms.dispose();
    t.gradNorms?.dispose();
  }
  for (const s of hooks.spikeSums) s.sum.dispose();
  hooks.finalInput?.sum.dispose();
}

/**
 * x [B, ...inputShape] in [0, 1] -> logits [B, classes]. `poissonSeed` seeds
 * the input spikes when the encoding is `poisson`.
 */
export function forward(net: Network, x: tf.Tensor, hooks?: ForwardHooks, poissonSeed = 0): tf.Tensor {
  const { cfg } = net;
  const T = cfg.timeSteps;
  const batch = x.shape[0] ?? 0;
  const rows = [batch, ...net.inputShape];
  // A static input is [B, ...]: the same at every step (direct encoding), so
  // the first layer runs once and its current is repeated over time.
  let input: tf.Tensor;
  let isStatic: boolean;
  if (cfg.encoding === 'direct') {
    input = tf.reshape(x, rows);
    isStatic = true;
  } else {
    const u = tf.randomUniform([T, ...rows], 0, 1, 'float32', poissonSeed);
    input = tf.reshape(tf.cast(tf.less(u, tf.reshape(x, rows)), 'float32'), [T * batch, ...net.inputShape]);
    isStatic = false;
  }
  const last = net.layers.length - 1;
  for (let l = 0; l <= last; l++) {
    const layer = net.layers[l]!;
    let current = layer.kind === 'dense' ? applyDense(layer, input) : applyConv(layer, input, l > 0);
    // Pool before the time repeat so a static input pools once.
    if (net.pool[l]) current = tf.avgPool(current as tf.Tensor4D, 2, 2, 'valid');
    if (isStatic) {
      // Repeat over t by a broadcasting add: its gradient is one sum over t,
      // where concat's (a split) is a slow slice per step on wasm and tile has
      // no gradient above rank 4.
      const shape = current.shape.slice(1);
      const flat = tf.reshape(current, [1, current.size]);
      current = tf.reshape(tf.add(tf.zeros([T, 1]), flat), [T * batch, ...shape]);
    }
    if (hooks && (hooks.tapAll || l === last)) {
      const inputNorms = isStatic
        ? tf.tile(tf.reshape(stepRowNorms(input, 1, batch), [1, batch]), [T, 1])
        : stepRowNorms(input, T, batch);
      // A 2x2 average pool hands each of its inputs a quarter of each output
      // gradient, so ||dl/dI|| = ||dl/dpool(I)|| / 2 exactly: the tap can sit
      // after the pool.
      const bound = unfoldBound(layer) * (net.pool[l] ? 0.5 : 1);
      const record: TapRecord = { layer: l, inputNorms: tf.keep(inputNorms), bound };
      hooks.taps.push(record);
      current = gradientTap((dy) => {
        // dy is d(loss)/dI[t] for every row at once; only its norms leave the pass.
        record.gradNorms = tf.keep(stepRowNorms(dy, T, batch));
      })(current);
    }
    const perStep = tf.reshape(current, [T, batch, ...current.shape.slice(1)]);
    if (l === last) return readout(perStep, cfg.decay);
    const { spikes } = lifMultiStep(perStep, cfg, net.spikeFn);
    if (hooks) hooks.spikeSums.push({ sum: tf.keep(tf.sum(spikes)), size: spikes.size });
    input = tf.reshape(spikes, [T * batch, ...spikes.shape.slice(2)]);
    isStatic = false;
    if (hooks && l + 1 === last) hooks.finalInput = { sum: tf.keep(tf.sum(input)), size: input.size };
  }
  throw new Error('unreachable: a network has at least one layer');
}

/** Unweighted softmax cross-entropy per example: logits [B, C], labels [B] int32 -> [B]. */
export function perExampleLoss(logits: tf.Tensor, labels: tf.Tensor, classes: number): tf.Tensor {
  return tf.neg(tf.sum(tf.mul(tf.oneHot(labels as tf.Tensor1D, classes), tf.logSoftmax(logits)), 1));
}
