// Public API of the loader component: the gRPC loader service, the shard
// layer (format, datasets, shard building and indexing) and the range reader.
export * from './service/index.js';
export * from './shards/index.js';
export * from './fetch/index.js';
export * from './estimate/index.js';
