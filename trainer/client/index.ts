// Public API of the trainer client SDK: connect to a loader, iterate an
// epoch's batches, acknowledge them with scores, decode images.
export { createLoaderClient } from './loader-client.js';
export type { LoaderClient } from './loader-client.js';
export type { EpochStream } from './epoch-stream.js';
export type { Batch, AckRecord, EpochInfo } from './batch.js';
export type { LoaderClientOptions, TlsOptions } from './options.js';
export { LoaderCallError } from './errors.js';
export { decodeImageBatch, decodeFashionMnist } from './decode.js';
