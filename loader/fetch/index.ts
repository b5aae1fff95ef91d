// Public API of the range reader: fetch only the selected samples of
// WebDataset shards from object storage.
export {
  createRangeReader,
  resolveRangeReaderOptions,
  DEFAULT_GAP_BYTES,
  DEFAULT_MAX_WASTE_RATIO,
  type RangeReader,
  type RangeReaderOptions,
  type IoStats,
  type RangeRequestEvent,
} from './range-reader.js';
export { planRanges, sortUniqueIds, type PlanOptions, type SampleLayout } from './range-plan.js';
export type { FetchedSample } from './cut.js';
