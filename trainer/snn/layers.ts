// Weight layers of the spiking networks: dense, and 3x3 'same' convolutions
// with a hand-written gradient (see conv2dSame).
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-grad.js';

export interface DenseLayer {
  kind: 'dense';
  name: string;
  inSize: number;
  outSize: number;
  /** [inSize, outSize]. */
  kernel: tf.Variable;
  bias: tf.Variable;
}

export interface ConvLayer {
  kind: 'conv';
  name: string;
  /** Input [height, width, channels]; stride 1, 'same' padding. */
  inShape: [number, number, number];
  filters: number;
  /** Odd kernel size k. */
  size: number;
  /** [k, k, inChannels, filters], the layout of tf.conv2d. */
  kernel: tf.Variable;
  bias: tf.Variable;
}

export type WeightLayer = DenseLayer | ConvLayer;

/**
 * Constant c with ||unfold(o)||_F <= c ||o||_F (Eq. 35): with stride 1 each
 * input element appears in at most k * k patches, so c = k. Tighter than the
 * paper's sqrt(N_patch) and still a valid bound; 1 for dense layers.
 */
export function unfoldBound(layer: WeightLayer): number {
  return layer.kind === 'conv' ? layer.size : 1;
}

/** A trainable variable holding `init`; the initial tensor is disposed (tf.variable copies it). */
function variableFrom(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init);
  init.dispose();
  return v;
}

/** He-uniform kernel, zero bias, seeded. */
export function createDense(name: string, inSize: number, outSize: number, seed: number): DenseLayer {
  const limit = Math.sqrt(6 / inSize);
  return {
    kind: 'dense',
    name,
    inSize,
    outSize,
    kernel: variableFrom(tf.randomUniform([inSize, outSize], -limit, limit, 'float32', seed)),
    bias: variableFrom(tf.zeros([outSize])),
  };
}

/**
 * He-uniform kernel times `gain`, zero bias, seeded. A 2x2 average pool after
 * the conv halves the current's spread, so the CNN passes gain 2 to keep the
 * initial firing rate up (99.5% silent output-layer inputs otherwise).
 */
export function createConv(
  name: string,
  inShape: [number, number, number],
  filters: number,
  size: number,
  seed: number,
  gain = 1,
): ConvLayer {
  const fanIn = size * size * inShape[2];
  const limit = gain * Math.sqrt(6 / fanIn);
  return {
    kind: 'conv',
    name,
    inShape,
    filters,
    size,
    kernel: variableFrom(tf.randomUniform([size, size, inShape[2], filters], -limit, limit, 'float32', seed)),
    bias: variableFrom(tf.zeros([filters])),
  };
}

/** x [N, inSize] -> [N, outSize]. */
export function applyDense(layer: DenseLayer, x: tf.Tensor): tf.Tensor {
  return tf.add(tf.matMul(tf.reshape(x, [-1, layer.inSize]), layer.kernel), layer.bias);
}

/**
 * x [N, H, W, C] -> [N, H, W, filters]. `inputGrad` false skips dL/dx (the
 * first layer's input is data).
 */
export function applyConv(layer: ConvLayer, x: tf.Tensor, inputGrad: boolean): tf.Tensor {
  const [h, w, c] = layer.inShape;
  return tf.add(
    conv2dSame(tf.reshape<tf.Rank.R4>(x, [-1, h, w, c]), layer.kernel as tf.Tensor4D, inputGrad),
    layer.bias,
  );
}

/**
 * Stride-1 'same' convolution with an odd k x k kernel [k, k, C, F] and a
 * hand-written gradient, because TF.js's wasm backend has no
 * Conv2DBackpropFilter kernel and its Conv2DBackpropInput and transposed
 * matmuls run ~10x slower than its XNNPACK conv2d and plain matmul:
 * dx = conv2d(dy, K rotated 180 degrees with C and F swapped);
 * dK = unfold(x)^T dy (Eq. 33), with x transposed to [C, N, H, W] first so the
 * patches concatenate along the leading axis and the product needs no transpose.
 */
export function conv2dSame(x: tf.Tensor4D, kernel: tf.Tensor4D, inputGrad: boolean): tf.Tensor4D {
  const k = kernel.shape[0];
  if (inputGrad) {
    return customOp(([xs, ks], save) => {
      save([xs!, ks!]);
      return {
        value: tf.conv2d(xs as tf.Tensor4D, ks as tf.Tensor4D, 1, 'same'),
        gradFunc: (dy, [sx, sk]) => [
          convInputGrad(dy as tf.Tensor4D, sk as tf.Tensor4D),
          convKernelGrad(sx as tf.Tensor4D, dy as tf.Tensor4D, k),
        ],
      };
    })(x, kernel) as tf.Tensor4D;
  }
  // x is data: only the kernel is an input of the op; x is saved for dK.
  return customOp(([ks], save) => {
    save([x]);
    return {
      value: tf.conv2d(x, ks as tf.Tensor4D, 1, 'same'),
      gradFunc: (dy, [sx]) => [convKernelGrad(sx as tf.Tensor4D, dy as tf.Tensor4D, k)],
    };
  })(kernel) as tf.Tensor4D;
}

function convInputGrad(dy: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
  const flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]);
  return tf.conv2d(dy, flipped, 1, 'same');
}

function convKernelGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const f = dy.shape[3];
  const r = (k - 1) / 2;
  const xt = tf.pad(tf.transpose(x, [3, 0, 1, 2]), [
    [0, 0],
    [0, 0],
    [r, r],
    [r, r],
  ]);
  const patches: tf.Tensor[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++)
      patches.push(tf.reshape(tf.slice(xt, [0, 0, i, j], [c, n, h, w]), [c, n * h * w]));
  }
  // Rows ordered (i, j, c): the layout of a [k, k, C, F] kernel.
  const cols = tf.concat(patches, 0);
  return tf.reshape(tf.matMul(cols, tf.reshape(dy, [n * h * w, f])), [k, k, c, f]);
}
