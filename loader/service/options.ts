// Options of the loader server, each default documented and justified, and
// their resolution into one fully-checked config. The knobs deployments set
// (config file, SADP_LOADER_* variables, `sadp loader` flags) are also a zod
// schema here, built from the same defaults and bounds; common/config
// composes it into the `loader` section.
import { z } from 'zod';
import { SadpError, Status } from '../../common/errors.js';
import { hostPortSchema } from '../../common/host-port.js';
import { silentLogger, type Logger } from '../../common/logger.js';
import type { TlsOptions } from '../../common/tls.js';
import { rangeReaderConfigShape, type RangeReaderOptions, type RangeRequestEvent } from '../fetch/index.js';
import type { DatasetAccess } from '../shards/index.js';
import type { S3Options } from '../../storage/index.js';
import { BUFFER_GC_MODES, type BufferGcMode } from './buffer-gc.js';
import { SCORER_CLIENT_DEFAULTS, SCORER_DEFAULTS } from '../../scorer/index.js';

/**
 * How an epoch's selected ids are ordered before they are split into ranks.
 *
 * - `global`: one Fisher-Yates shuffle of the whole subset. Maximal
 *   randomness; at ImageNet scale neighbours in a batch almost never share a
 *   shard region, so nearly every sample is its own GET (bytes fetched /
 *   bytes delivered stays ~1.0 because only selected bytes are requested).
 * - `shard-block`: shuffle the order of the shards, cut it into blocks of
 *   `shuffleBlockShards` shards, and shuffle the samples within each block
 *   (like MosaicML Streaming's py1b). A rank's prefetch window then touches at
 *   most a few shards, so its ranges merge into fewer, larger GETs, at the cost
 *   of batches correlated with their block's shards.
 * - `shard-buffer`: shuffle the order of the shards and stream their samples
 *   through a buffer of `shuffleBlockShards` shards' worth of samples, each
 *   incoming sample replacing a uniformly drawn one that is emitted
 *   (WebDataset's shard shuffle + shuffle buffer). Locality like
 *   `shard-block` without its block boundaries.
 */
export const SHUFFLE_MODES = ['global', 'shard-block', 'shard-buffer'] as const;
export type ShuffleMode = (typeof SHUFFLE_MODES)[number];

const AUTH_MODES = ['none', 'token'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export interface LoaderServerOptions {
  /** Interface to bind; default `127.0.0.1` (loopback: exposing it is a deliberate choice). */
  host?: string;
  /** Port to bind; default 0 (any free port, reported by `LoaderServer.port`). */
  port?: number;
  /** `host:port` of the scorer service. Required. */
  scorerAddress: string;
  /** TLS of the scorer channel (`ca`; `cert` + `key` for mutual TLS); default plaintext (same pod network / loopback). */
  scorerTls?: TlsOptions;
  /** Bearer token presented on every scorer call (a scorer with auth 'token' needs its loader credential). */
  scorerToken?: string;
  /**
   * Where jobs' datasets may be read from: `'any'` (the default; embedded and
   * single-machine setups) or only object storage plus these local
   * directories (service mode: a job creator must not reach the loader's disk).
   */
  datasetAccess?: DatasetAccess;
  /** S3 client settings for datasets on `s3://` URLs; default the AWS default chain. */
  s3?: S3Options;
  /**
   * Global bound on sample bytes fetched (or being fetched) but not yet
   * written to a trainer's socket, over all streams. Default 256 MiB: room for
   * prefetchBatches x 4 batches of 256 ImageNet samples (~110 KB) per stream
   * for ~8 streams. A single batch larger than the whole budget still goes,
   * alone. Set it to at least 2 batches per concurrent stream.
   */
  inflightBytes?: number;
  /**
   * Batches fetched ahead per stream (the batch being written included).
   * Default 4: hides a couple of storage round trips without holding much
   * memory per stream.
   */
  prefetchBatches?: number;
  /**
   * Cap on the encoded size of one BatchPart. Default 3 MiB, below the 4 MiB
   * receive limit every gRPC client has by default.
   */
  maxMessageBytes?: number;
  /** Range reader settings (merge gap, GET concurrency, retries, idle timeout); see loader/fetch. */
  readerOptions?: RangeReaderOptions;
  /** Default `global`; see ShuffleMode. */
  shuffle?: ShuffleMode;
  /** Shards per block (`shard-block`) or shards' worth of samples buffered (`shard-buffer`); default 4 (a block of ImageNet shards is ~5,000 samples). */
  shuffleBlockShards?: number;
  /**
   * Score entries per ReportScores call: a job's buffer is flushed when it
   * reaches this. Default 65,536 (~1.3 MB per request, far under 4 MiB).
   */
  scoreFlushEntries?: number;
  /** Flush a job's buffered scores at most this long after the first one arrived; default 200 ms. */
  scoreFlushMs?: number;
  /**
   * Bound on buffered score entries per job. Past it, the loader stops reading
   * acks (and so stops granting credit) until the scorer catches up, instead
   * of dropping scores or growing without bound. Default 1,048,576 (~24 MB).
   */
  scoreBufferEntries?: number;
  /**
   * How long a job's scores may fail to reach the scorer with transient
   * errors (the scorer down, or its state store, so it cannot make them
   * durable) before the loader gives them up: the streams whose acks carried
   * them end with UNAVAILABLE `SADP_SCORES_NOT_DURABLE` naming the scorer,
   * job, epoch and count, and their trainers, which keep every unconfirmed
   * ack, resend them when they reconnect. Default 60,000 ms: a scorer
   * restart (seconds) is ridden out, and it is under the trainer SDK's 120 s
   * idle timeout, so the trainer sees this error rather than a bare timeout.
   */
  scoreDurableTimeoutMs?: number;
  /**
   * `token`: every call must carry `authorization: Bearer <token>` whose
   * SHA-256 equals the job's token_sha256 (constant-time compare). Default
   * `none`.
   */
  auth?: AuthMode;
  /** Serve TLS (cert + key; mutual with ca + requireClientCert) instead of plaintext; default plaintext. */
  tls?: TlsOptions;
  /** Structured logger; default silent. */
  logger?: Logger;
  /** Called for every storage GET (tests assert pruned samples are never read). */
  onStorageRequest?: (r: RangeRequestEvent) => void;
  /**
   * Before the plan of epoch k+1 is requested, wait at most this long for
   * streams of epoch k still open on this loader to ack their last batch (so
   * their scores count). Default 10,000 ms: ranks of a data-parallel job finish
   * within a step of each other.
   */
  epochBarrierMs?: number;
  /** A stream that sends no OpenEpoch within this is ended with DEADLINE_EXCEEDED; default 30,000 ms. */
  openTimeoutMs?: number;
  /**
   * Batches prefetched for the next epoch (see README "Epoch boundary") are
   * dropped if no rank claims them within this; default 60,000 ms.
   */
  warmBatchTtlMs?: number;
  /** Deadline of one call to the scorer (DescribeJob, GetPlan, ReportScores); default 30,000 ms. */
  scorerCallTimeoutMs?: number;
  /** gRPC keepalive ping interval on trainer connections; default 60,000 ms (well below AWS NLB's 350 s idle drop). */
  keepaliveTimeMs?: number;
  /**
   * How V8 counts Buffer memory toward a full GC, for the whole process, set
   * when the server starts. Default `heap-limit`: in the heap's own growing
   * limit, grown 1.5x per GC (V8's --external-memory-accounted-in-global-limit
   * and --heap-growing-percent=50); V8's default (`v8-default`) runs a full GC
   * per ~64 MB of Buffers allocated, ~1.5x the loader's CPU per sample at
   * r = 0 for ~15 % less RSS (see buffer-gc.ts).
   */
  bufferGc?: BufferGcMode;
}

export interface ResolvedLoaderOptions {
  host: string;
  port: number;
  scorerAddress: string;
  scorerTls: TlsOptions | undefined;
  scorerToken: string | undefined;
  datasetAccess: DatasetAccess;
  s3: S3Options | undefined;
  inflightBytes: number;
  prefetchBatches: number;
  maxMessageBytes: number;
  readerOptions: RangeReaderOptions;
  shuffle: ShuffleMode;
  shuffleBlockShards: number;
  scoreFlushEntries: number;
  scoreFlushMs: number;
  scoreBufferEntries: number;
  scoreDurableTimeoutMs: number;
  auth: AuthMode;
  tls: TlsOptions | undefined;
  logger: Logger;
  onStorageRequest: ((r: RangeRequestEvent) => void) | undefined;
  epochBarrierMs: number;
  openTimeoutMs: number;
  warmBatchTtlMs: number;
  scorerCallTimeoutMs: number;
  keepaliveTimeMs: number;
  bufferGc: BufferGcMode;
}

export const LOADER_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  /** The service's address (`sadp loader`, trainers dial it by default); programmatic servers take host + port. */
  listen: '127.0.0.1:50052',
  inflightBytes: 256 * 1024 * 1024,
  prefetchBatches: 4,
  maxMessageBytes: 3 * 1024 * 1024,
  shuffle: 'global',
  shuffleBlockShards: 4,
  scoreFlushEntries: 65_536,
  scoreFlushMs: 200,
  scoreBufferEntries: 1_048_576,
  scoreDurableTimeoutMs: 60_000,
  auth: 'none',
  epochBarrierMs: 10_000,
  openTimeoutMs: 30_000,
  warmBatchTtlMs: 60_000,
  scorerCallTimeoutMs: SCORER_CLIENT_DEFAULTS.callTimeoutMs,
  keepaliveTimeMs: 60_000,
  bufferGc: 'heap-limit',
} as const;

/** Integer bounds [min, max], shared by resolveLoaderOptions and the config schema. */
export const LOADER_BOUNDS = {
  port: [0, 65_535],
  inflightBytes: [1, Number.MAX_SAFE_INTEGER],
  /** More than 64 batches ahead per stream only holds memory the byte budget then refuses. */
  prefetchBatches: [1, 64],
  maxMessageBytes: [1024, Number.MAX_SAFE_INTEGER],
  shuffleBlockShards: [1, Number.MAX_SAFE_INTEGER],
  /** 262,144 entries is ~5 MB per ReportScores, past the scorer's comfortable request size. */
  scoreFlushEntries: [1, 262_144],
  scoreFlushMs: [0, Number.MAX_SAFE_INTEGER],
  scoreBufferEntries: [1, Number.MAX_SAFE_INTEGER],
  scoreDurableTimeoutMs: [1, Number.MAX_SAFE_INTEGER],
  epochBarrierMs: [0, Number.MAX_SAFE_INTEGER],
  openTimeoutMs: [1, Number.MAX_SAFE_INTEGER],
  warmBatchTtlMs: [1, Number.MAX_SAFE_INTEGER],
  scorerCallTimeoutMs: [1, Number.MAX_SAFE_INTEGER],
  /** gRPC refuses pings more often than every 10 s by default; 1 s is the floor we accept. */
  keepaliveTimeMs: [1000, Number.MAX_SAFE_INTEGER],
} as const satisfies Record<string, readonly [number, number]>;

function intField(name: keyof typeof LOADER_BOUNDS): z.ZodNumber {
  const [min, max] = LOADER_BOUNDS[name];
  return z.number().int().min(min).max(max);
}

/** The `loader` config section: what a deployment sets, with the loader's own defaults and bounds. */
export const loaderConfigSchema = z
  .object({
    listen: hostPortSchema.default(LOADER_DEFAULTS.listen),
    /** Address of the scorer service. */
    scorer: hostPortSchema.default(SCORER_DEFAULTS.listen),
    /** Global bound on sample bytes fetched but not yet written to trainers. */
    inflightBytes: intField('inflightBytes').default(LOADER_DEFAULTS.inflightBytes),
    /** Batches fetched ahead per trainer stream. */
    prefetchBatches: intField('prefetchBatches').default(LOADER_DEFAULTS.prefetchBatches),
    /** Cap on one BatchPart message (clients' default receive limit is 4 MiB). */
    maxMessageBytes: intField('maxMessageBytes').default(LOADER_DEFAULTS.maxMessageBytes),
    ...rangeReaderConfigShape,
    shuffle: z.enum(SHUFFLE_MODES).default(LOADER_DEFAULTS.shuffle),
    /** How long scores may fail to reach the scorer before their streams fail (trainers resend them). */
    scoreDurableTimeoutMs: intField('scoreDurableTimeoutMs').default(LOADER_DEFAULTS.scoreDurableTimeoutMs),
    /** 'token': trainers must present the job's bearer token. */
    auth: z.enum(AUTH_MODES).default(LOADER_DEFAULTS.auth),
    /** Bearer token this loader presents to the scorer (the scorer's loaderToken). */
    scorerToken: z.string().min(1).optional(),
    /** Local directories jobs' datasets may read from (service mode reads only object storage otherwise). */
    allowLocalRoots: z.string().min(1).optional(),
  })
  .strict();

function bad(name: string, value: unknown, want: string): SadpError {
  return new SadpError(
    'SADP_INVALID_OPTION',
    `loader option ${name} = ${String(value)} is invalid: ${want}`,
    {
      status: Status.INVALID_ARGUMENT,
    },
  );
}

function int(name: keyof typeof LOADER_BOUNDS, value: number): number {
  const [min, max] = LOADER_BOUNDS[name];
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(name, value, `expected an integer in [${min}, ${max}]`);
  }
  return value;
}

export function resolveLoaderOptions(options: LoaderServerOptions): ResolvedLoaderOptions {
  const d = LOADER_DEFAULTS;
  if (typeof options.scorerAddress !== 'string' || options.scorerAddress.length === 0) {
    throw bad('scorerAddress', options.scorerAddress, 'expected host:port of the scorer');
  }
  const shuffle = options.shuffle ?? d.shuffle;
  if (!SHUFFLE_MODES.includes(shuffle))
    throw bad('shuffle', shuffle, `expected one of ${SHUFFLE_MODES.join(', ')}`);
  const bufferGc = options.bufferGc ?? d.bufferGc;
  if (!BUFFER_GC_MODES.includes(bufferGc))
    throw bad('bufferGc', bufferGc, `expected one of ${BUFFER_GC_MODES.join(', ')}`);
  const auth = options.auth ?? d.auth;
  if (!AUTH_MODES.includes(auth)) throw bad('auth', auth, `expected one of ${AUTH_MODES.join(', ')}`);
  if (options.tls && (!options.tls.cert || !options.tls.key))
    throw bad('tls', 'incomplete', 'cert and key are required');
  if (options.tls?.requireClientCert && !options.tls.ca)
    throw bad('tls.ca', undefined, 'requireClientCert needs a CA');
  return {
    host: options.host ?? d.host,
    port: int('port', options.port ?? d.port),
    scorerAddress: options.scorerAddress,
    scorerTls: options.scorerTls,
    scorerToken: options.scorerToken,
    datasetAccess: options.datasetAccess ?? 'any',
    s3: options.s3,
    inflightBytes: int('inflightBytes', options.inflightBytes ?? d.inflightBytes),
    prefetchBatches: int('prefetchBatches', options.prefetchBatches ?? d.prefetchBatches),
    maxMessageBytes: int('maxMessageBytes', options.maxMessageBytes ?? d.maxMessageBytes),
    readerOptions: options.readerOptions ?? {},
    shuffle,
    shuffleBlockShards: int('shuffleBlockShards', options.shuffleBlockShards ?? d.shuffleBlockShards),
    scoreFlushEntries: int('scoreFlushEntries', options.scoreFlushEntries ?? d.scoreFlushEntries),
    scoreFlushMs: int('scoreFlushMs', options.scoreFlushMs ?? d.scoreFlushMs),
    scoreBufferEntries: int('scoreBufferEntries', options.scoreBufferEntries ?? d.scoreBufferEntries),
    scoreDurableTimeoutMs: int(
      'scoreDurableTimeoutMs',
      options.scoreDurableTimeoutMs ?? d.scoreDurableTimeoutMs,
    ),
    auth,
    tls: options.tls,
    logger: options.logger ?? silentLogger,
    onStorageRequest: options.onStorageRequest,
    epochBarrierMs: int('epochBarrierMs', options.epochBarrierMs ?? d.epochBarrierMs),
    openTimeoutMs: int('openTimeoutMs', options.openTimeoutMs ?? d.openTimeoutMs),
    warmBatchTtlMs: int('warmBatchTtlMs', options.warmBatchTtlMs ?? d.warmBatchTtlMs),
    scorerCallTimeoutMs: int('scorerCallTimeoutMs', options.scorerCallTimeoutMs ?? d.scorerCallTimeoutMs),
    keepaliveTimeMs: int('keepaliveTimeMs', options.keepaliveTimeMs ?? d.keepaliveTimeMs),
    bufferGc,
  };
}
