// Public API of the trainer client SDK: connect to a loader, iterate an
// epoch's batches, acknowledge them with scores, decode images.
export { createLoaderClient } from './loader-client.js';
export type { LoaderClient, EpochInfoRequest } from './loader-client.js';
export type { EpochRequest, EpochStream, EpochStreamStats } from './epoch-stream.js';
export type { Batch, AckReport, AckRecord, EpochInfo } from './batch.js';
export type { LoaderClientOptions, ReconnectOptions, TlsOptions } from './options.js';
export { LoaderCallError, isRetryableStatus } from './errors.js';
export { decodeImageBatch, decodeFashionMnist, IMAGE_FIELDS, LABEL_FIELDS } from './decode.js';
export type { ImageDecodeOptions, DecodedImages } from './decode.js';
