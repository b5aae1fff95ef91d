// Public API of the range reader: fetch only the selected samples of
// WebDataset shards from object storage.
export {
  createRangeReader,
  resolveRangeReaderOptions,
  DEFAULT_GAP_BYTES,
  DEFAULT_MAX_WASTE_RATIO,
  type RangeReader,
  type RangeReaderOptions,
  type ReadPriority,
  type ResolvedRangeReaderOptions,
  type FetchedSample,
  type IoStats,
  type RangeRequestEvent,
  type PlannerStats,
} from './range-reader.js';
export {
  READ_PLANNER_MODES,
  breakEvenGapBytes,
  estimateReads,
  estimateUs,
  planReads,
  type ReadCostModel,
  type ReadEstimate,
  type ReadPlan,
  type ReadPlanMix,
  type ReadPlanOptions,
  type ReadPlannerMode,
  type ShardSelection,
} from './read-planner.js';
export {
  createCostEstimator,
  DEFAULT_READ_COST,
  type CostEstimator,
  type CostEstimatorOptions,
} from './cost-estimator.js';
export {
  planRanges,
  sortUniqueIds,
  type RangePlan,
  type PlanOptions,
  type SampleLayout,
} from './range-plan.js';
