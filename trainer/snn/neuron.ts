// Leaky integrate-and-fire dynamics (paper Eq. 1-3) with surrogate gradients.
// Time is the leading axis: currents [T, ...] in, spikes [T, ...] out, so the
// weight layers around the neurons run once over all T * B rows (SpikingJelly's
// "multi-step" mode) and only the cheap elementwise recurrence loops over t.
import * as tf from '@tensorflow/tfjs';
import { unaryCustomGrad } from './custom-grad.js';
import type { ResolvedNeuron, SurrogateKind } from './options.js';

/**
 * Derivative of the surrogate that replaces the Heaviside step H(x) in the
 * backward pass: sigmoid: alpha sig(alpha x) (1 - sig(alpha x)), the
 * derivative of sig(alpha x); atan: (alpha / 2) / (1 + (pi/2 alpha x)^2), the
 * derivative of atan(pi/2 alpha x) / pi + 1/2.
 */
export function surrogateGrad(kind: SurrogateKind, alpha: number, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (kind === 'sigmoid') {
      const s = tf.sigmoid(tf.mul(x, alpha));
      return tf.mul(tf.mul(s, tf.sub(1, s)), alpha);
    }
    const z = tf.mul(x, (Math.PI / 2) * alpha);
    return tf.div(alpha / 2, tf.add(1, tf.square(z)));
  });
}

/** H(x) = 1 where x >= 0 (u >= theta fires, Eq. 2), with the surrogate gradient. */
export type SpikeFn = (x: tf.Tensor) => tf.Tensor;

export function createSpikeFn(kind: SurrogateKind, alpha: number): SpikeFn {
  return unaryCustomGrad((x, save) => {
    save([x]);
    return {
      value: tf.cast(tf.greaterEqual(x, 0), 'float32'),
      gradFunc: (dy, saved) => tf.mul(dy, surrogateGrad(kind, alpha, saved[0]!)),
    };
  });
}

/** Identity forward, zero gradient (TF.js has no public stopGradient). */
const detach = unaryCustomGrad((x) => ({ value: x.clone(), gradFunc: (dy) => tf.zerosLike(dy) }));

export interface LifResult {
  /** Spikes o[t] in {0, 1}, [T, ...]. */
  spikes: tf.Tensor;
  /** Membrane after the reset, [T, ...]; only when asked (tests). */
  membrane?: tf.Tensor;
}

/**
 * Runs the LIF recurrence over the leading time axis of `current` (I[t]):
 * u[t] = lambda u[t-1] + I[t] (u[0] = 0); o[t] = H(u[t] - theta); soft reset
 * u[t] -= theta o[t]. The reset is detached when `neuron.detachReset`. dl/dI[t]
 * equals dl/du[t] (before the reset) because u[t] depends on I[t] with slope 1,
 * which is why the gradient tap sits on I[t].
 */
export function lifMultiStep(
  current: tf.Tensor,
  neuron: ResolvedNeuron,
  spikeFn: SpikeFn,
  keepMembrane = false,
): LifResult {
  // TF.js's unstack gradient breaks for a single output, so T = 1 reshapes.
  const steps =
    current.shape[0] === 1 ? [tf.reshape(current, current.shape.slice(1))] : tf.unstack(current, 0);
  const spikes: tf.Tensor[] = [];
  const membrane: tf.Tensor[] = [];
  let u: tf.Tensor | undefined;
  steps.forEach((input, t) => {
    const v = u === undefined ? input : tf.add(tf.mul(u, neuron.decay), input);
    const o = spikeFn(tf.sub(v, neuron.threshold));
    spikes.push(o);
    if (t + 1 < steps.length || keepMembrane) {
      u = tf.sub(v, tf.mul(neuron.detachReset ? detach(o) : o, neuron.threshold));
      if (keepMembrane) membrane.push(u);
    }
  });
  return keepMembrane
    ? { spikes: tf.stack(spikes), membrane: tf.stack(membrane) }
    : { spikes: tf.stack(spikes) };
}

/**
 * Output layer: a non-firing leaky integrator; logits = mean over t of its
 * membrane u[t] = lambda u[t-1] + I[t]. That mean is a fixed linear map of the
 * currents, sum_t c_t I[t] with c_t = (1/T) sum_{s >= t} lambda^(s-t), applied
 * here as one matmul over the time axis.
 */
function readoutWeights(timeSteps: number, decay: number): Float32Array {
  const c = new Float32Array(timeSteps);
  let acc = 0;
  for (let t = timeSteps - 1; t >= 0; t--) {
    acc = 1 + decay * acc;
    c[t] = acc / timeSteps;
  }
  return c;
}

/** currents [T, B, C] -> logits [B, C]. */
export function readout(current: tf.Tensor, decay: number): tf.Tensor {
  const [timeSteps = 1, batch = 1, classes = 1] = current.shape;
  const c = tf.tensor2d(readoutWeights(timeSteps, decay), [1, timeSteps]);
  return tf.reshape(tf.matMul(c, tf.reshape(current, [timeSteps, batch * classes])), [batch, classes]);
}
