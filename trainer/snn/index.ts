// Spiking neural networks in TF.js whose training step also yields each
// example's spike-aware importance score (SADP, paper Eq. 29-38).
export { createSpikingCnn, createSpikingMlp } from './model.js';
export type { SpikingModel } from './model.js';
export { NETWORK_DEFAULTS, type NetworkOptions } from './options.js';
export { decodeWeights, encodeWeights } from './weights-io.js';
export type { NamedWeights } from './weights-io.js';
