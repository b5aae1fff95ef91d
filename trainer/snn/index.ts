// Spiking neural networks in TF.js whose training step also yields each
// example's spike-aware importance score (SADP, paper Eq. 29-38).
export { createSpikingCnn, createSpikingMlp } from './model.js';
export type {
  EvalResult,
  ExactGradientNorms,
  InputBatch,
  Labels,
  SpikingModel,
  StepResult,
} from './model.js';
export type {
  InputEncoding,
  NetworkOptions,
  NeuronOptions,
  ScoreLayers,
  SpikingCnnOptions,
  SpikingMlpOptions,
  SurrogateKind,
} from './options.js';
export { decodeWeights, encodeWeights } from './weights-io.js';
export type { NamedWeights } from './weights-io.js';
