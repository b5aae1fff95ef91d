// The public model: one training step returns, besides the loss, each
// example's unweighted loss and spike-aware score taken from the same forward
// and backward pass that updates the weights.
import * as tf from '@tensorflow/tfjs';
import { SadpError, Status, invalidArgument } from '../../common/errors.js';
import type { WeightLayer } from './layers.js';
import {
  buildCnn,
  buildMlp,
  createHooks,
  disposeHooks,
  forward,
  perExampleLoss,
  type ForwardHooks,
  type Network,
} from './network.js';
import {
  check,
  isCount,
  NETWORK_DEFAULTS,
  resolveNetworkOptions,
  type ResolvedNetwork,
  type SpikingCnnOptions,
  type SpikingMlpOptions,
} from './options.js';
import { decodeWeights, encodeWeights, type NamedWeights } from './weights-io.js';

/**
 * A batch of inputs: B examples of `inputSize` values each, row-major
 * (28 x 28 x 1 images: HWC). Float32Array values are intensities in [0, 1];
 * Uint8Array values are pixels 0..255 (scaled by 1/255). A tensor is used as
 * is (values in [0, 1]) and not disposed.
 */
type InputBatch = Float32Array | Uint8Array | tf.Tensor;

/** Class indices, one per example. */
type Labels = ArrayLike<number>;

interface StepResult {
  /** Weighted mean loss sum_i w_i l_i / B: the value the step minimises. */
  loss: number;
  /** Unweighted per-example losses l_i (for loss-based scoring: InfoBatch, SADP-loss). */
  losses: Float32Array;
  /**
   * Spike-aware scores G_i for the unweighted loss l_i (the importance weight
   * is divided out): summed over the output layer, or all weight layers when
   * `scoreLayers` is `all`.
   */
  scores: Float32Array;
  /** Per tapped weight layer, in layer order (only the output layer unless `all`). */
  layerScores: Float32Array[];
  /** Fraction of LIF neuron-steps that fired, over all hidden layers. */
  spikeRate: number;
  /** Fraction of nonzero inputs to the output layer (1 - its input sparsity). */
  finalInputSpikeRate: number;
}

interface EvalResult {
  accuracy: number;
  /** Mean unweighted loss. */
  loss: number;
}

interface ExactGradientNorms {
  /** ||dl_i/dW|| of the output layer's weight matrix. */
  final: Float32Array;
  /** sqrt of the sum over all weight layers of ||dl_i/dW_l||^2. */
  all: Float32Array;
  /** Per weight layer, in layer order. */
  perLayer: Float32Array[];
}

export interface SpikingModel {
  readonly kind: 'mlp' | 'cnn';
  readonly options: Readonly<ResolvedNetwork>;
  /** Values per example. */
  readonly inputSize: number;
  /** Weight layer names in order, e.g. ['fc1', 'fc2']. */
  readonly layerNames: readonly string[];
  /**
   * One optimisation step on the importance-weighted loss sum_i w_i l_i / B
   * (w = (S/N)/p from the loader: the weighted mean is unbiased for the full
   * data mean). `weights` must be finite and > 0; all 1 for unweighted data.
   */
  trainStep(
    x: InputBatch,
    labels: Labels,
    weights: Float32Array,
    optimizer: tf.Optimizer,
  ): Promise<StepResult>;
  /** The same forward and backward pass without an update (validation, probes). */
  scoreBatch(x: InputBatch, labels: Labels, weights?: Float32Array): Promise<StepResult>;
  /** Accuracy and mean loss over all examples in `x`, `batchSize` (default 256) at a time. */
  evaluate(x: InputBatch, labels: Labels, batchSize?: number): Promise<EvalResult>;
  /**
   * Exact per-example weight-gradient norms, one example per backward pass.
   * Slow by design: for validating the score, never for training. Exact only
   * for direct encoding (Poisson draws differ between passes).
   */
  exactGradientNorms(x: InputBatch, labels: Labels): Promise<ExactGradientNorms>;
  getWeights(): NamedWeights;
  setWeights(weights: NamedWeights): void;
  /** Weights as bytes (a checkpoint), and back. */
  saveWeights(): Uint8Array;
  loadWeights(bytes: Uint8Array): void;
  /** Frees the variables; the model is unusable afterwards. */
  dispose(): void;
}

export function createSpikingMlp(options: SpikingMlpOptions = {}): SpikingModel {
  const cfg = resolveNetworkOptions(options);
  const inputSize = options.inputSize ?? 784;
  const hidden = options.hidden ?? [...NETWORK_DEFAULTS.mlpHidden];
  check(isCount(inputSize), `inputSize must be a positive integer, got ${inputSize}`);
  check(hidden.every(isCount), `hidden widths must be positive integers, got [${hidden.join(', ')}]`);
  return new Model(buildMlp(cfg, inputSize, hidden));
}

export function createSpikingCnn(options: SpikingCnnOptions = {}): SpikingModel {
  const cfg = resolveNetworkOptions(options);
  const inputShape = options.inputShape ?? [28, 28, 1];
  const channels = options.channels ?? [16, 32];
  check(
    inputShape.length === 3 && inputShape.every(isCount),
    `inputShape must be [h, w, c] positive integers`,
  );
  check(channels.length > 0 && channels.every(isCount), `channels must be positive integers`);
  return new Model(buildCnn(cfg, inputShape, channels));
}

class Model implements SpikingModel {
  readonly kind: 'mlp' | 'cnn';
  readonly options: Readonly<ResolvedNetwork>;
  readonly inputSize: number;
  readonly layerNames: readonly string[];
  private readonly net: Network;
  private readonly variables: tf.Variable[];
  /** Advances per forward pass so Poisson draws differ between steps but replay from the seed. */
  private poissonCounter = 0;
  private disposed = false;

  constructor(net: Network) {
    this.net = net;
    this.kind = net.kind;
    this.options = net.cfg;
    this.inputSize = net.inputSize;
    this.layerNames = net.layers.map((l) => l.name);
    this.variables = net.layers.flatMap((l) => [l.kernel, l.bias]);
  }

  trainStep(
    x: InputBatch,
    labels: Labels,
    weights: Float32Array,
    optimizer: tf.Optimizer,
  ): Promise<StepResult> {
    return this.step(x, labels, weights, optimizer);
  }

  scoreBatch(x: InputBatch, labels: Labels, weights?: Float32Array): Promise<StepResult> {
    return this.step(x, labels, weights, undefined);
  }

  private async step(
    x: InputBatch,
    labels: Labels,
    weights: Float32Array | undefined,
    optimizer: tf.Optimizer | undefined,
  ): Promise<StepResult> {
    this.assertLive();
    const batch = labels.length;
    if (weights !== undefined) checkWeights(weights, batch);
    const { xs, ys, ws } = tf.tidy(() => ({
      xs: this.toInput(x, batch),
      ys: this.toLabels(labels),
      ws: weights === undefined ? tf.ones([batch]) : tf.tensor1d(weights, 'float32'),
    }));
    const hooks = createHooks(this.options.scoreLayers === 'all');
    let losses: tf.Tensor | undefined;
    let packed: tf.Tensor | undefined;
    try {
      const seed = this.nextPoissonSeed();
      const { value, grads } = tf.variableGrads(() => {
        const perExample = perExampleLoss(forward(this.net, xs, hooks, seed), ys, this.options.classes);
        losses = tf.keep(perExample);
        return tf.div<tf.Scalar>(tf.sum(tf.mul(perExample, ws)), batch);
      }, this.variables);
      if (optimizer !== undefined) optimizer.applyGradients(grads);
      tf.dispose(grads);
      packed = tf.tidy(() => pack(value, losses!, ws, hooks, batch));
      value.dispose();
      return unpack(await packed.data(), hooks, batch);
    } finally {
      tf.dispose([xs, ys, ws]);
      losses?.dispose();
      packed?.dispose();
      disposeHooks(hooks);
    }
  }

  async evaluate(x: InputBatch, labels: Labels, batchSize = 256): Promise<EvalResult> {
    this.assertLive();
    check(isCount(batchSize), `batchSize must be a positive integer, got ${batchSize}`);
    const n = labels.length;
    if (n === 0) return { accuracy: 0, loss: 0 };
    const all = this.toInput(x, n);
    const ys = this.toLabels(labels);
    let correct = 0;
    let lossSum = 0;
    try {
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        const sums = tf.tidy(() => {
          const xb = tf.slice(all, [start], [size]);
          const yb = tf.slice(ys, [start], [size]);
          const logits = forward(this.net, xb, undefined, this.nextPoissonSeed());
          const hit = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), yb), 'float32'));
          return tf.stack([hit, tf.sum(perExampleLoss(logits, yb, this.options.classes))]);
        });
        const [hit = 0, loss = 0] = await sums.data();
        sums.dispose();
        correct += hit;
        lossSum += loss;
      }
    } finally {
      tf.dispose([all, ys]);
    }
    return { accuracy: correct / n, loss: lossSum / n };
  }

  async exactGradientNorms(x: InputBatch, labels: Labels): Promise<ExactGradientNorms> {
    this.assertLive();
    const n = labels.length;
    const layers = this.net.layers;
    const all = this.toInput(x, n);
    const ys = this.toLabels(labels);
    const kernels = layers.map((l) => l.kernel);
    const perLayer = layers.map(() => new Float32Array(n));
    const total = new Float32Array(n);
    try {
      for (let i = 0; i < n; i++) {
        const norms = tf.tidy(() => {
          const xi = tf.slice(all, [i], [1]);
          const yi = tf.slice(ys, [i], [1]);
          const seed = this.nextPoissonSeed();
          const { grads } = tf.variableGrads(
            () =>
              tf.sum<tf.Scalar>(
                perExampleLoss(forward(this.net, xi, undefined, seed), yi, this.options.classes),
              ),
            kernels,
          );
          return tf.stack(kernels.map((k) => tf.norm(grads[k.name]!)));
        });
        const values = await norms.data();
        norms.dispose();
        let sq = 0;
        values.forEach((v, l) => {
          perLayer[l]![i] = v;
          sq += v * v;
        });
        total[i] = Math.sqrt(sq);
      }
    } finally {
      tf.dispose([all, ys]);
    }
    return { final: perLayer[layers.length - 1]!, all: total, perLayer };
  }

  getWeights(): NamedWeights {
    this.assertLive();
    const out: NamedWeights = {};
    for (const layer of this.net.layers) {
      for (const [part, v] of parts(layer)) {
        out[`${layer.name}.${part}`] = { shape: [...v.shape], values: v.dataSync() as Float32Array };
      }
    }
    return out;
  }

  setWeights(weights: NamedWeights): void {
    this.assertLive();
    // Validate everything before assigning anything, so a bad checkpoint leaves the model intact.
    const updates: [tf.Variable, Float32Array][] = [];
    for (const layer of this.net.layers) {
      for (const [part, v] of parts(layer)) {
        const name = `${layer.name}.${part}`;
        const w = weights[name];
        if (w === undefined) throw invalidArgument('SADP_SNN_BAD_WEIGHTS', `weights lack '${name}'`);
        if (w.shape.join('x') !== v.shape.join('x') || w.values.length !== v.size) {
          throw invalidArgument(
            'SADP_SNN_BAD_WEIGHTS',
            `weights '${name}' have shape [${w.shape.join(', ')}] (${w.values.length} values), expected [${v.shape.join(', ')}]`,
          );
        }
        updates.push([v, w.values]);
      }
    }
    for (const [v, values] of updates) {
      const t = tf.tensor(values, v.shape, 'float32');
      v.assign(t);
      t.dispose(); // assign shares t's data, so this only drops the handle
    }
  }

  saveWeights(): Uint8Array {
    return encodeWeights(this.getWeights());
  }

  loadWeights(bytes: Uint8Array): void {
    this.setWeights(decodeWeights(bytes));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.variables);
  }

  private assertLive(): void {
    if (this.disposed) {
      throw new SadpError('SADP_SNN_DISPOSED', `spiking ${this.kind} model used after dispose()`, {
        status: Status.FAILED_PRECONDITION,
      });
    }
  }

  private nextPoissonSeed(): number {
    return this.options.seed * 1_000_003 + this.poissonCounter++;
  }

  /** Tensor [B, ...inputShape] in [0, 1]. */
  private toInput(x: InputBatch, batch: number): tf.Tensor {
    const shape = [batch, ...this.net.inputShape];
    const size = x instanceof tf.Tensor ? x.size : x.length;
    if (size !== batch * this.inputSize) {
      throw invalidArgument(
        'SADP_SNN_BAD_INPUT',
        `input has ${size} values for ${batch} labels; expected ${batch} x ${this.inputSize}`,
      );
    }
    if (x instanceof tf.Tensor) return tf.reshape(x, shape);
    if (x instanceof Uint8Array) return tf.tidy(() => tf.div(tf.tensor(x, shape, 'int32'), 255));
    return tf.tensor(x, shape, 'float32');
  }

  private toLabels(labels: Labels): tf.Tensor {
    const classes = this.options.classes;
    const out = new Int32Array(labels.length);
    for (let i = 0; i < labels.length; i++) {
      const y = labels[i]!;
      if (!Number.isInteger(y) || y < 0 || y >= classes) {
        throw invalidArgument(
          'SADP_SNN_BAD_LABEL',
          `label ${y} of example ${i} is not a class in [0, ${classes})`,
        );
      }
      out[i] = y;
    }
    return tf.tensor1d(out, 'int32');
  }
}

function parts(layer: WeightLayer): [string, tf.Variable][] {
  return [
    ['kernel', layer.kernel],
    ['bias', layer.bias],
  ];
}

function checkWeights(weights: Float32Array, batch: number): void {
  if (weights.length !== batch) {
    throw invalidArgument('SADP_SNN_BAD_INPUT', `${weights.length} importance weights for ${batch} examples`);
  }
  for (let i = 0; i < batch; i++) {
    const w = weights[i]!;
    // The score divides the weight out, so it must be > 0 (the loader's w = (S/N)/p is).
    if (!(w > 0 && Number.isFinite(w))) {
      throw invalidArgument(
        'SADP_SNN_BAD_INPUT',
        `importance weight ${w} of example ${i} is not finite and > 0`,
      );
    }
  }
}

/**
 * One flat tensor [loss, losses(B), per-tap scores (L x B), per-LIF spike
 * sums, final-input spike sum] so the step needs a single device read.
 */
function pack(
  value: tf.Tensor,
  losses: tf.Tensor,
  ws: tf.Tensor,
  hooks: ForwardHooks,
  batch: number,
): tf.Tensor {
  // dy_i[t] = (w_i / B) delta_i[t] for the weighted loss: divide it out so the
  // score belongs to the unweighted loss (DESIGN.md pitfall).
  const unweight = tf.div(batch, ws);
  const scores = hooks.taps.map((tap) => {
    const grad = tap.gradNorms ?? tf.zerosLike(tap.inputNorms);
    return tf.mul(tf.sum(tf.mul(grad, tap.inputNorms), 0), tf.mul(unweight, tap.bound));
  });
  const spikes = hooks.spikeSums.map((s) => s.sum);
  return tf.concat([
    tf.reshape(value, [1]),
    losses,
    ...scores,
    tf.stack(spikes.length > 0 ? spikes : [tf.scalar(0)]),
    tf.reshape(hooks.finalInput?.sum ?? tf.scalar(0), [1]),
  ]);
}

function unpack(
  data: Float32Array | Int32Array | Uint8Array,
  hooks: ForwardHooks,
  batch: number,
): StepResult {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  let at = 1;
  const losses = f.slice(at, (at += batch));
  const layerScores = hooks.taps.map(() => f.slice(at, (at += batch)));
  const scores = new Float32Array(batch);
  for (const s of layerScores) for (let i = 0; i < batch; i++) scores[i]! += s[i]!;
  const nSums = Math.max(1, hooks.spikeSums.length);
  let fired = 0;
  for (let i = 0; i < hooks.spikeSums.length; i++) fired += f[at + i]!;
  const size = hooks.spikeSums.reduce((acc, s) => acc + s.size, 0);
  at += nSums;
  const finalFired = f[at]!;
  return {
    loss: f[0]!,
    losses,
    scores,
    layerScores,
    spikeRate: size > 0 ? fired / size : 0,
    finalInputSpikeRate: hooks.finalInput ? finalFired / hooks.finalInput.size : 0,
  };
}
