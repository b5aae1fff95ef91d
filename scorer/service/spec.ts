// Job specs: validation at CreateJob (naming the bad field, with proto field
// names so any client can find it), defaults from the paper's Table II, and
// the comparison that makes CreateJob idempotent.
import { createHash } from 'node:crypto';
import { invalidArgument } from '../../common/errors.js';
import { POLICY_NAMES, defaultHyperparameters, type PolicyName } from '../math/index.js';
import type { JobRecord } from '../state/index.js';

/** What CreateJob takes, in the core's terms (the gRPC layer converts enums and Longs). */
export interface JobSpecInput {
  jobId: string;
  datasetSize: number;
  policy: string;
  pruneRatio: number;
  /** Unset (undefined or null): the Table II value for `pruneRatio`. */
  maxPruneRatio?: number | null;
  smoothing?: number | null;
  epochs: number;
  seed: bigint | number;
  datasetUrl?: string;
  /** Bearer token for the loader; kept only as its SHA-256. Empty or unset: none. */
  token?: string;
}

export interface SpecLimits {
  maxDatasetSize: number;
}

const JOB_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_URL_CHARS = 4096;
const MAX_TOKEN_CHARS = 4096;
const U64_MAX = (1n << 64n) - 1n;

const SpecErrorCode = {
  INVALID_SPEC: 'SADP_INVALID_JOB_SPEC',
  INVALID_JOB_ID: 'SADP_INVALID_JOB_ID',
} as const;

function bad(field: string, message: string): never {
  throw invalidArgument(SpecErrorCode.INVALID_SPEC, `spec.${field} ${message}`);
}

export function checkJobId(jobId: unknown, field = 'job_id'): string {
  // '.' and '..' match the character set but would name a directory, not a job.
  if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId) || jobId === '.' || jobId === '..') {
    throw invalidArgument(
      SpecErrorCode.INVALID_JOB_ID,
      `${field} must be 1-128 characters of [A-Za-z0-9._-] (and not '.' or '..'), got ${JSON.stringify(jobId)}`,
    );
  }
  return jobId;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function isIn(x: number, lo: number, hi: number, hiInclusive: boolean): boolean {
  return Number.isFinite(x) && x >= lo && (hiInclusive ? x <= hi : x < hi);
}

/** Validates a spec and applies defaults; the result is what gets persisted. */
export function resolveJobSpec(input: JobSpecInput, limits: SpecLimits, now = new Date()): JobRecord {
  const jobId = checkJobId(input.jobId, 'spec.job_id');
  const n = input.datasetSize;
  if (!Number.isInteger(n) || n < 1 || n > limits.maxDatasetSize) {
    bad('dataset_size', `must be an integer in [1, ${limits.maxDatasetSize}], got ${n}`);
  }
  if (!(POLICY_NAMES as readonly string[]).includes(input.policy)) {
    bad('policy', `must be one of ${POLICY_NAMES.join(', ')}, got ${JSON.stringify(input.policy)}`);
  }
  const policy = input.policy as PolicyName;
  const r = input.pruneRatio;
  if (!isIn(r, 0, 1, false)) bad('prune_ratio', `must be in [0, 1), got ${r}`);
  const defaults = defaultHyperparameters(r);
  const givenMax = input.maxPruneRatio ?? null;
  const givenBeta = input.smoothing ?? null;
  const rMax = givenMax ?? defaults.maxPruneRatio;
  if (!Number.isFinite(rMax) || rMax < r || rMax > 1) {
    bad('max_prune_ratio', `must be in [prune_ratio, 1] = [${r}, 1], got ${rMax}`);
  }
  const beta = givenBeta ?? defaults.smoothing;
  if (!isIn(beta, 0, 1, true)) bad('smoothing', `must be in [0, 1], got ${beta}`);
  const k = input.epochs;
  if (!Number.isInteger(k) || k < 1 || k > 0xffffffff) bad('epochs', `must be an integer >= 1, got ${k}`);
  let seed: bigint;
  try {
    seed = typeof input.seed === 'bigint' ? input.seed : BigInt(input.seed);
  } catch {
    bad('seed', `must be an unsigned 64-bit integer, got ${String(input.seed)}`);
  }
  if (seed < 0n || seed > U64_MAX) bad('seed', `must be an unsigned 64-bit integer, got ${seed}`);
  const datasetUrl = input.datasetUrl ?? '';
  if (datasetUrl.length > MAX_URL_CHARS) bad('dataset_url', `is longer than ${MAX_URL_CHARS} characters`);
  const token = input.token ?? '';
  if (token.length > MAX_TOKEN_CHARS) bad('token', `is longer than ${MAX_TOKEN_CHARS} characters`);
  return {
    format: 'sadp-scorer-job/1',
    jobId,
    datasetSize: n,
    policy,
    pruneRatio: r,
    maxPruneRatio: givenMax,
    smoothing: givenBeta,
    effectiveMaxPruneRatio: rMax,
    effectiveSmoothing: beta,
    epochs: k,
    seed: seed.toString(),
    datasetUrl,
    tokenSha256: token === '' ? '' : sha256Hex(token),
    createdAt: now.toISOString(),
  };
}

/**
 * The first field (proto name) in which two specs differ, comparing the
 * effective values: a retry that spells out a default is the same job.
 */
export function firstDifference(a: JobRecord, b: JobRecord): string | undefined {
  const fields: [string, unknown, unknown][] = [
    ['dataset_size', a.datasetSize, b.datasetSize],
    ['policy', a.policy, b.policy],
    ['prune_ratio', a.pruneRatio, b.pruneRatio],
    ['max_prune_ratio', a.effectiveMaxPruneRatio, b.effectiveMaxPruneRatio],
    ['smoothing', a.effectiveSmoothing, b.effectiveSmoothing],
    ['epochs', a.epochs, b.epochs],
    ['seed', a.seed, b.seed],
    ['dataset_url', a.datasetUrl, b.datasetUrl],
    ['token', a.tokenSha256, b.tokenSha256],
  ];
  return fields.find(([, x, y]) => x !== y)?.[0];
}
