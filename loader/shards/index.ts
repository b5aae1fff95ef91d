// Public API of the shard layer: the on-storage format, opening a dataset,
// building shards from a source, and indexing shards written by any tool.
export type { MemberEntry, SampleEntry, ShardIndex, ShardEntry, DatasetManifest } from './format.js';
export { MANIFEST_KEY, INDEX_DIR, TAR_BLOCK, shardFileName, indexKeyFor, padded } from './format.js';
export type { Dataset, OpenDatasetOptions } from './dataset.js';
export { openDataset, DATASET_DEFAULTS } from './dataset.js';
export { checkDatasetLocation, type DatasetAccess } from './dataset-access.js';
export { splitMemberName, type MemberName } from './member-name.js';
export { TarScanner, type TarRecord } from './tar-scanner.js';
export type { IndexShardsOptions, IndexProgress } from './indexer.js';
export { indexShard, indexShards, expandShardPattern } from './indexer.js';
export type { BuildShardsOptions, BuildProgress, SampleSource, Sample } from './writer.js';
export { buildShards, BUILD_DEFAULTS } from './writer.js';
export {
  fashionMnistSource,
  imageFolderSource,
  syntheticSource,
  syntheticSampleSize,
  syntheticImagesSource,
  type SyntheticOptions,
  type SyntheticImagesOptions,
} from './sources.js';
export { encodeNpyUint8, decodeNpyUint8, NPY_HEADER_BYTES } from './npy.js';
