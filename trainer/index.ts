// Public API of the trainer component: the loader client SDK, the spiking
// networks, TF.js backend selection and the training loop of `sadp train`.
export * from './client/index.js';
export * from './snn/index.js';
export * from './backend.js';
export * from './train/index.js';
