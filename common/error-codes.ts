// The closed set of SadpError codes, one union per component, composed into
// SadpErrorCode: `new SadpError(code, ...)` rejects an unknown literal at
// compile time. A code belongs to the component that raises it first (others
// may raise it too: SADP_CANCELLED, SADP_INTERNAL). docs/errors.md lists every
// code with its gRPC status, meaning and where it is raised
// (`node scripts/error-table.mjs --write`).
import type { status } from '@grpc/grpc-js';

/** common/: signals, pools, config, TLS, tokens, datasets and the gRPC error helpers. */
const COMMON_ERROR_CODES = [
  'SADP_CANCELLED',
  'SADP_CONFIG_INVALID',
  'SADP_DATASET_MISSING',
  'SADP_IDX_CORRUPT',
  'SADP_INVALID_OPTION',
  'SADP_INVALID_TOKEN',
  'SADP_RPC_FAILED',
  'SADP_SCORE_INVALID',
  'SADP_TLS_CONFIG',
  'SADP_TLS_FILE',
  'SADP_UNAUTHENTICATED',
] as const;
export type CommonErrorCode = (typeof COMMON_ERROR_CODES)[number];

/** storage/: object stores, S3, the embedded S3 server. */
const STORAGE_ERROR_CODES = [
  'SADP_BIND_FAILED',
  'SADP_INSECURE_BIND',
  'SADP_INVALID_BUCKET',
  'SADP_INVALID_KEY',
  'SADP_INVALID_URL',
  'SADP_OBJECT_CHANGED',
  'SADP_OBJECT_NOT_FOUND',
  'SADP_RANGE_INVALID',
  'SADP_STORAGE_BAD_RANGE',
  'SADP_STORAGE_DENIED',
  'SADP_STORAGE_FAILED',
  'SADP_STORAGE_NO_CREDENTIALS',
  'SADP_STORAGE_TIMEOUT',
  'SADP_STORAGE_UNAVAILABLE',
] as const;
export type StorageErrorCode = (typeof STORAGE_ERROR_CODES)[number];

/** loader/shards: the WebDataset format, datasets, indexing and building shards. */
const SHARD_ERROR_CODES = [
  'SADP_DATASET_LOCATION_DENIED',
  'SADP_INDEX_MISMATCH',
  'SADP_INDEX_MISSING',
  'SADP_MANIFEST_INVALID',
  'SADP_MANIFEST_MISSING',
  'SADP_NO_SHARDS',
  'SADP_NPY_INVALID',
  'SADP_OUT_OF_RANGE',
  'SADP_SHARD_INVALID',
  'SADP_SOURCE_INVALID',
  'SADP_TAR_TRUNCATED',
  'SADP_UPLOAD_MISMATCH',
] as const;
export type ShardErrorCode = (typeof SHARD_ERROR_CODES)[number];

/** loader/fetch: the range reader and the cutter. */
const FETCH_ERROR_CODES = [
  'SADP_DATASET_MISMATCH',
  'SADP_INDEX_INVALID',
  'SADP_INTERNAL',
  'SADP_SAMPLE_OUT_OF_RANGE',
  'SADP_STORAGE_TRUNCATED',
  'SADP_TAR_CORRUPT',
] as const;
export type FetchErrorCode = (typeof FETCH_ERROR_CODES)[number];

/** loader/service and loader/estimate: the loader service. */
const LOADER_ERROR_CODES = [
  'SADP_ACK_INVALID',
  'SADP_AUTH_DISABLED',
  'SADP_BAD_REQUEST',
  'SADP_CURSOR_OUT_OF_RANGE',
  'SADP_DRAINING',
  'SADP_EPOCH_OUT_OF_RANGE',
  'SADP_MESSAGE_TOO_LARGE',
  'SADP_OPEN_TIMEOUT',
  'SADP_PERMISSION_DENIED',
  'SADP_SCORER_ERROR',
  'SADP_SCORES_NOT_DURABLE',
  // The loader's shuffle thread died or failed with no SadpError. Kept apart
  // from the scorer's SADP_PLAN_WORKER_FAILED on purpose: the code says which
  // service's thread failed (what an alert or a log query keys on), codes
  // are per component here, and both names are documented, so merging would
  // break users who match on either for no gain.
  'SADP_SHUFFLE_WORKER_FAILED',
] as const;
export type LoaderErrorCode = (typeof LOADER_ERROR_CODES)[number];

/** scorer/: the SADP math, the scorer service, its state and client. */
const SCORER_ERROR_CODES = [
  'SADP_AUTH_CONFIG',
  'SADP_INVALID_CHUNK_SIZE',
  'SADP_INVALID_JOB_ID',
  'SADP_INVALID_JOB_SPEC',
  'SADP_JOB_EXISTS',
  'SADP_JOB_NOT_FOUND',
  'SADP_MATH_BAD_COUNTER',
  'SADP_MATH_BAD_DATASET_SIZE',
  'SADP_MATH_BAD_EPOCH',
  'SADP_MATH_BAD_EPOCHS',
  'SADP_MATH_BAD_EXPECTED_SIZE',
  'SADP_MATH_BAD_INPUT_LENGTH',
  'SADP_MATH_BAD_MAX_PRUNE_RATIO',
  'SADP_MATH_BAD_OUTPUT',
  'SADP_MATH_BAD_POLICY',
  'SADP_MATH_BAD_PRUNE_RATIO',
  'SADP_MATH_BAD_SEED',
  'SADP_MATH_BAD_SMOOTHING',
  'SADP_PLAN_BAD_ARRAYS',
  'SADP_PLAN_BAD_DIGEST',
  'SADP_PLAN_CORRUPT',
  'SADP_PLAN_NOT_COMPUTED',
  'SADP_PLAN_WORKER_FAILED',
  'SADP_REPORT_EMPTY',
  'SADP_REPORT_ID_OUT_OF_RANGE',
  'SADP_REPORT_LENGTH_MISMATCH',
  'SADP_REPORT_NO_VALUES',
  'SADP_REPORT_TOO_LARGE',
  'SADP_SCORER_NO_STATE',
  'SADP_SCORER_OVERLOADED',
  'SADP_SCORER_SHUTTING_DOWN',
  'SADP_SCORER_UNAVAILABLE',
  'SADP_STATE_CORRUPT',
  'SADP_STATE_WRITE_FAILED',
] as const;
export type ScorerErrorCode = (typeof SCORER_ERROR_CODES)[number];

/** trainer/: the trainer SDK (client), the training loop and the SNN. */
const TRAINER_ERROR_CODES = [
  'SADP_BACKEND_UNAVAILABLE',
  'SADP_BACKEND_UNKNOWN',
  'SADP_CHECKPOINT_CORRUPT',
  'SADP_CHECKPOINT_MISMATCH',
  'SADP_CHECKPOINT_READ',
  'SADP_CHECKPOINT_WRITE',
  'SADP_EPOCH_STREAM_REUSED',
  'SADP_EVAL_SHAPE',
  'SADP_LOADER_CURSOR_RANGE',
  'SADP_LOADER_PLAN_CHANGED',
  'SADP_LOADER_PROTOCOL',
  'SADP_LOADER_RETRIES_EXHAUSTED',
  'SADP_LOADER_STREAM_ENDED',
  'SADP_LOADER_TIMEOUT',
  'SADP_SAMPLE_DECODE',
  'SADP_SNN_BAD_CHECKPOINT',
  'SADP_SNN_BAD_INPUT',
  'SADP_SNN_BAD_LABEL',
  'SADP_SNN_BAD_OPTION',
  'SADP_SNN_BAD_WEIGHTS',
  'SADP_SNN_DISPOSED',
  'SADP_TRAIN_EPOCHS_UNKNOWN',
  'SADP_TRAIN_LR',
  'SADP_TRAIN_NO_INFO',
  'SADP_TRAIN_OPTION',
] as const;
/** The trainer SDK's `SADP_LOADER_<STATUS>` for a loader answer it cannot retry. */
type LoaderStatusErrorCode = `SADP_LOADER_${keyof typeof status}` | `SADP_LOADER_STATUS_${number}`;
export type TrainerErrorCode = (typeof TRAINER_ERROR_CODES)[number] | LoaderStatusErrorCode;

/** cli/: the sadp command. */
const CLI_ERROR_CODES = ['SADP_TOKEN_FILE'] as const;
export type CliErrorCode = (typeof CLI_ERROR_CODES)[number];

/** bench/: the benchmarks (not raised to users, so not in docs/errors.md). */
const BENCH_ERROR_CODES = ['SADP_BENCH_BAD_FLAG', 'SADP_BENCH_LR', 'SADP_BENCH_WORKER'] as const;
type BenchErrorCode = (typeof BENCH_ERROR_CODES)[number];

export type SadpErrorCode =
  | CommonErrorCode
  | StorageErrorCode
  | ShardErrorCode
  | FetchErrorCode
  | LoaderErrorCode
  | ScorerErrorCode
  | TrainerErrorCode
  | CliErrorCode
  | BenchErrorCode;

/** Every code of this version (the `SADP_LOADER_<STATUS>` family aside). */
export const SADP_ERROR_CODES: ReadonlySet<string> = new Set<string>([
  ...COMMON_ERROR_CODES,
  ...STORAGE_ERROR_CODES,
  ...SHARD_ERROR_CODES,
  ...FETCH_ERROR_CODES,
  ...LOADER_ERROR_CODES,
  ...SCORER_ERROR_CODES,
  ...TRAINER_ERROR_CODES,
  ...CLI_ERROR_CODES,
  ...BENCH_ERROR_CODES,
]);

/** True for a code of this version (e.g. one parsed from a peer's status details). */
export function isSadpErrorCode(code: string): code is SadpErrorCode {
  return SADP_ERROR_CODES.has(code) || /^SADP_LOADER_(?:[A-Z_]+|STATUS_\d+)$/.test(code);
}
