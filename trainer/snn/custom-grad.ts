// Typed wrapper over tf.customGrad (its own typing takes variadic
// Tensor | GradSaveFunc arguments).
import * as tf from '@tensorflow/tfjs';

export interface CustomOp {
  value: tf.Tensor;
  /** One gradient per input, in input order. */
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
}

export function customOp(
  fn: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => CustomOp,
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) =>
    fn(args.slice(0, -1) as tf.Tensor[], args[args.length - 1] as tf.GradSaveFunc),
  );
  return (...inputs) => op(...inputs);
}

export type UnaryGradFn = (
  x: tf.Tensor,
  save: tf.GradSaveFunc,
) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor };

export function unaryCustomGrad(fn: UnaryGradFn): (x: tf.Tensor) => tf.Tensor {
  const op = customOp(([x], save) => {
    const r = fn(x!, save);
    return { value: r.value, gradFunc: (dy, saved) => [r.gradFunc(dy, saved)] };
  });
  return (x) => op(x);
}
