// Public API of the training loop: `runTraining` (what `sadp train` runs),
// its options, summaries and hooks, the console reporter and the LR schedule.
export { runTraining, jobEpochs } from './run-training.js';
export type { EpochSummary, BatchProgress, TrainHooks } from './run-training.js';
export { resolveTrainOptions, TRAIN_DEFAULTS } from './options.js';
export type { TrainOptions, EvalSource, ModelKind } from './options.js';
export { createTrainReporter, formatSummary, formatBytes } from './progress.js';
export type { TrainReporter, ReporterOptions } from './progress.js';
export { CosineSchedule, cosineLr, estimateTotalSteps } from './lr-schedule.js';
export type { EpochShape } from './lr-schedule.js';
export { readCheckpoint, checkpointPath } from './checkpoint.js';
export type { CheckpointMeta } from './checkpoint.js';
