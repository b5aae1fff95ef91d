// Public API of the training loop: `runTraining` (what `sadp train` runs),
// its options, summaries and hooks, the console reporter and the LR schedule.
export { runTraining } from './run-training.js';
export type { EpochSummary } from './run-training.js';
export { TRAIN_DEFAULTS, type TrainOptions, type EvalSource } from './options.js';
export { createTrainReporter, formatBytes } from './progress.js';
export { CosineSchedule, cosineLr, estimateTotalSteps } from './lr-schedule.js';
export type { EpochShape } from './lr-schedule.js';
export { readCheckpoint, checkpointPath } from './checkpoint.js';
