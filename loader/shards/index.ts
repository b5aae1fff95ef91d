// Public API of the shard layer: the on-storage format, opening a dataset,
// building shards from a source, and indexing shards written by any tool.
export type { ShardIndex, DatasetManifest } from './format.js';
export { TAR_BLOCK, shardFileName, padded } from './format.js';
export type { Dataset } from './dataset.js';
export { openDataset } from './dataset.js';
export { splitMemberName } from './member-name.js';
export type { DatasetAccess } from './dataset-access.js';
export { TarScanner, type TarRecord } from './tar-scanner.js';
export {
  MAX_EXTENSION_BYTES,
  TarHeaderError,
  TarType,
  decodeHeader,
  decodePax,
  decodeString,
  isExtensionType,
  isRegularType,
} from './tar-header.js';
export { indexShard, indexShards, type IndexProgress } from './indexer.js';
export type { SampleSource, Sample } from './writer.js';
export { buildShards, BUILD_DEFAULTS } from './writer.js';
export {
  fashionMnistSource,
  imageFolderSource,
  syntheticSource,
  syntheticSampleSize,
  syntheticImagesSource,
} from './sources.js';
export { encodeNpyUint8, decodeNpyUint8 } from './npy.js';
