// Public API of the loader component: what the CLI, the trainer, benches and
// other components use. Everything else under loader/ is internal (tests may
// reach it through the folder indexes). The gRPC loader service:
export {
  createLoaderServer,
  LOADER_DEFAULTS,
  loaderConfigSchema,
  SHUFFLE_MODES,
  epochLayout,
  shufflePlan,
  shufflePlanAsync,
  createShuffleThread,
  batchSpan,
  orderIndexAt,
  type LoaderServer,
  type LoaderServerOptions,
  type LoaderStats,
  type ShuffleMode,
} from './service/index.js';
// The shard layer: the on-storage format, datasets, building and indexing.
export {
  BUILD_DEFAULTS,
  buildShards,
  encodeNpyUint8,
  fashionMnistSource,
  imageFolderSource,
  indexShards,
  openDataset,
  padded,
  shardFileName,
  splitMemberName,
  syntheticImagesSource,
  syntheticSampleSize,
  syntheticSource,
  type Dataset,
  type DatasetManifest,
  type IndexProgress,
  type SampleSource,
  type ShardIndex,
} from './shards/index.js';
// The I/O and cost estimator (`sadp estimate`).
export {
  estimateRun,
  uniformSubset,
  ESTIMATE_POLICIES,
  LINK_PRESETS,
  syntheticLayout,
  layoutOfDataset,
  estimatePlotSpec,
  type DatasetLayout,
  type EstimateOptions,
  type RunEstimate,
  type LinkModel,
  type LinkPreset,
} from './estimate/index.js';
// The range reader.
export {
  createRangeReader,
  planReads,
  READ_PLANNER_MODES,
  DEFAULT_READ_COST,
  type ReadCostModel,
  type ReadPlannerMode,
  resolveRangeReaderOptions,
  type RangeReaderOptions,
  planRanges,
  sortUniqueIds,
  DEFAULT_GAP_BYTES,
  DEFAULT_MAX_WASTE_RATIO,
  IN_FLIGHT_FLOOR,
  cutSample,
  type FetchedSample,
  type SampleLayout,
} from './fetch/index.js';
