// Public API of the loader service: the trainer-facing gRPC server.
export { createLoaderServer, type LoaderServer } from './server.js';
export {
  LOADER_DEFAULTS,
  resolveLoaderOptions,
  type AuthMode,
  type LoaderServerOptions,
  type LoaderTlsOptions,
  type ResolvedLoaderOptions,
  type ShuffleMode,
} from './options.js';
export type { LoaderStats } from './loader-core.js';
export { MAX_BATCH_SIZE } from './loader-core.js';
export { DEFAULT_MAX_UNACKED } from './epoch-stream.js';
export {
  epochLayout,
  shufflePlan,
  batchSpan,
  orderIndexAt,
  type EpochLayout,
  type ShuffleInput,
} from './epoch-layout.js';
