// Public API of the range reader: fetch only the selected samples of
// WebDataset shards from object storage.
export { createRangeReader, type RangeReader } from './range-reader.js';
export type { IoStats, RangeRequestEvent, PlannerStats } from './reader-metrics.js';
export {
  resolveRangeReaderOptions,
  DEFAULT_GAP_BYTES,
  DEFAULT_MAX_WASTE_RATIO,
  type RangeReaderOptions,
} from './reader-config.js';
export {
  READ_PLANNER_MODES,
  breakEvenGapBytes,
  estimateReads,
  estimateUs,
  planReads,
  type ReadCostModel,
  type ReadPlan,
  type ReadPlannerMode,
  type ReadPlanOptions,
} from './read-planner.js';
export {
  createCostEstimator,
  DEFAULT_READ_COST,
  CPU_PER_REQUEST_US,
  CPU_PER_BYTE_US,
} from './cost-estimator.js';
export { rangeReaderConfigShape } from './reader-config.js';
export { planRanges, sortUniqueIds, type SampleLayout } from './range-plan.js';
export { cutSample, type FetchedSample } from './cut.js';
export type { Arena } from './slab-pool.js';
export { footprintBytes } from './slab-pool.js';
export { IN_FLIGHT_FLOOR } from './in-flight-limit.js';
