// Public API of the loader service: the trainer-facing gRPC server.
export { createLoaderServer, type LoaderServer } from './server.js';
export {
  LOADER_DEFAULTS,
  loaderConfigSchema,
  SHUFFLE_MODES,
  type LoaderServerOptions,
  type ShuffleMode,
} from './options.js';
export type { LoaderStats } from './stages.js';
export { epochLayout, shufflePlan, shufflePlanAsync, batchSpan, orderIndexAt } from './jobs/epoch-layout.js';
export { createShuffleThread } from './jobs/shuffle-thread.js';
