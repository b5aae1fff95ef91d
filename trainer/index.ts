// Public API of the trainer component: the loader client SDK, the spiking
// networks, TF.js backend selection and the training loop of `sadp train`.
export { createLoaderClient } from './client/index.js';
export { createSpikingCnn, createSpikingMlp, NETWORK_DEFAULTS, type SpikingModel } from './snn/index.js';
export {
  AUTO_BACKEND_ORDER,
  selectBackend,
  type BackendName,
  type BackendPreference,
  type BackendSelection,
} from './backend.js';
export {
  CosineSchedule,
  checkpointPath,
  cosineLr,
  createTrainReporter,
  estimateTotalSteps,
  formatBytes,
  readCheckpoint,
  runTraining,
  TRAIN_DEFAULTS,
  type EpochShape,
  type EpochSummary,
  type EvalSource,
  type TrainOptions,
} from './train/index.js';
