// The gradient tap: an identity op whose backward pass hands the incoming
// gradient to a sink before passing it through unchanged. Placed on a layer's
// pre-activation current I[t], it exposes delta[t] = dl/dI[t] from the backward
// pass that trains, so the spike-aware score needs no extra backward pass.
import * as tf from '@tensorflow/tfjs';
import { unaryCustomGrad } from './custom-grad.js';

/**
 * Receives dy (same shape as the tapped tensor) inside the backward pass. It
 * runs inside TF.js's backward `tidy`: anything it wants to outlive the pass
 * must be `tf.keep`-ed and later disposed by the owner.
 */
export type TapSink = (dy: tf.Tensor) => void;

export function gradientTap(sink: TapSink): (x: tf.Tensor) => tf.Tensor {
  return unaryCustomGrad((x) => ({
    // A clone, not x itself: the tape must see a new tensor id for the output.
    value: x.clone(),
    gradFunc: (dy) => {
      sink(dy);
      return dy;
    },
  }));
}

/** Per-example L2 norms at each step: x [T * B, ...] (time-major) -> [T, B]. */
export function stepRowNorms(x: tf.Tensor, timeSteps: number, batch: number): tf.Tensor {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(tf.reshape(x, [timeSteps, batch, -1])), 2)));
}
