// Public API of the estimator: a training run's GETs, bytes, dollars and
// read time before it runs (`sadp estimate`).
export {
  estimateRun,
  uniformSubset,
  ESTIMATE_POLICIES,
  type DatasetLayout,
  type EstimateOptions,
  type RunEstimate,
} from './estimate.js';
export { LINK_PRESETS, type LinkModel, type LinkPreset } from './link-model.js';
export { syntheticLayout, layoutOfDataset } from './layouts.js';
export { estimatePlotSpec } from './plot-spec.js';
