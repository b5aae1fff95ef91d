// Public API of the loader service: the trainer-facing gRPC server.
export { createLoaderServer, type LoaderServer } from './server.js';
export { loaderConfigSchema, type LoaderServerOptions, type ShuffleMode } from './options.js';
export type { LoaderStats } from './loader-core.js';
export { epochLayout, shufflePlan, shufflePlanAsync, batchSpan, orderIndexAt } from './epoch-layout.js';
