// Wire <-> domain conversions of the Scorer protocol (proto/sadp/v1/scorer.proto),
// in one module used by the scorer's server and by its client: policy names
// and enums, u64 seeds, job specs, jobs and epoch statistics.
import { invalidArgument } from '../common/errors.js';
import { pb, type sadp } from '../proto/index.js';
import type { EpochStats, JobInfo } from './service/core.js';
import type { JobSpecInput } from './service/spec.js';

const POLICY_BY_ENUM: Record<number, string> = {
  [pb.Policy.POLICY_FULL]: 'full',
  [pb.Policy.POLICY_RANDOM]: 'random',
  [pb.Policy.POLICY_INFOBATCH]: 'infobatch',
  [pb.Policy.POLICY_SADP_LOSS]: 'sadp-loss',
  [pb.Policy.POLICY_SADP]: 'sadp',
};
const ENUM_BY_POLICY: Record<string, sadp.v1.Policy> = Object.fromEntries(
  Object.entries(POLICY_BY_ENUM).map(([k, v]) => [v, Number(k) as sadp.v1.Policy]),
);

/** The wire enum for a policy name (for clients such as the CLI). */
export function policyToEnum(policy: string): sadp.v1.Policy {
  const e = ENUM_BY_POLICY[policy];
  if (e === undefined)
    throw invalidArgument('SADP_INVALID_JOB_SPEC', `unknown policy ${JSON.stringify(policy)}`);
  return e;
}

interface LongLike {
  low: number;
  high: number;
}

/** The policy name of a wire enum (a number it does not know stays visible as itself). */
export function policyFromEnum(policy: number): string {
  return POLICY_BY_ENUM[policy] ?? pb.Policy[policy] ?? String(policy);
}

/** A protobuf uint64 (number, or Long when it exceeds 2^53) as a bigint. */
export function u64ToBigInt(v: number | LongLike | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

/** A bigint as a protobuf uint64 field value, exact beyond 2^53. */
export function bigIntToU64(v: bigint): number {
  if (v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  const long = {
    low: Number(v & 0xffffffffn) | 0,
    high: Number((v >> 32n) & 0xffffffffn) | 0,
    unsigned: true,
  };
  return long as unknown as number;
}

export function specFromWire(spec: sadp.v1.JobSpec.$Properties | null | undefined): JobSpecInput {
  if (!spec) throw invalidArgument('SADP_INVALID_JOB_SPEC', 'spec is required');
  const policy = spec.policy ?? 0;
  return {
    jobId: spec.jobId ?? '',
    datasetSize: spec.datasetSize ?? 0,
    policy: policyFromEnum(policy),
    pruneRatio: spec.pruneRatio ?? 0,
    maxPruneRatio: spec.maxPruneRatio ?? null,
    smoothing: spec.smoothing ?? null,
    epochs: spec.epochs ?? 0,
    seed: u64ToBigInt(spec.seed),
    datasetUrl: spec.datasetUrl ?? '',
    token: spec.token ?? '',
  };
}

export function jobToWire(info: JobInfo): sadp.v1.Job {
  const r = info.record;
  return pb.Job.create({
    spec: pb.JobSpec.create({
      jobId: r.jobId,
      datasetSize: r.datasetSize,
      policy: ENUM_BY_POLICY[r.policy],
      pruneRatio: r.pruneRatio,
      ...(r.maxPruneRatio === null ? {} : { maxPruneRatio: r.maxPruneRatio }),
      ...(r.smoothing === null ? {} : { smoothing: r.smoothing }),
      epochs: r.epochs,
      seed: bigIntToU64(BigInt(r.seed)),
      datasetUrl: r.datasetUrl,
    }),
    maxPruneRatio: r.effectiveMaxPruneRatio,
    smoothing: r.effectiveSmoothing,
    plannedEpochs: info.plannedEpochs,
    scoredExamples: info.scoredExamples,
    scoresReceived: info.scoresReceived,
    tokenSha256: r.tokenSha256,
  });
}

export function statsToWire(s: EpochStats): sadp.v1.JobStats {
  return pb.JobStats.create({
    jobId: s.jobId,
    epoch: s.epoch,
    pruneRatio: s.pruneRatio,
    expectedSize: s.expectedSize,
    selectedCount: s.selectedCount,
    minProbability: s.minProbability,
    maxProbability: s.maxProbability,
    maxWeight: s.maxWeight,
    probabilityHistogram: Array.from(s.probabilityHistogram),
    cappingPasses: s.cappingPasses,
    smoothingOffset: s.smoothingOffset,
    floorInfeasible: s.floorInfeasible,
    scoredFraction: s.scoredFraction,
    scoresReceived: s.scoresReceived,
    computeMs: s.computeMs,
  });
}

/** A domain job spec as the wire message (what clients send in CreateJob). */
export function specToWire(spec: JobSpecInput): sadp.v1.JobSpec {
  return pb.JobSpec.create({
    jobId: spec.jobId,
    datasetSize: spec.datasetSize,
    policy: policyToEnum(spec.policy),
    pruneRatio: spec.pruneRatio,
    ...(spec.maxPruneRatio === undefined || spec.maxPruneRatio === null
      ? {}
      : { maxPruneRatio: spec.maxPruneRatio }),
    ...(spec.smoothing === undefined || spec.smoothing === null ? {} : { smoothing: spec.smoothing }),
    epochs: spec.epochs,
    seed: bigIntToU64(BigInt(spec.seed)),
    datasetUrl: spec.datasetUrl ?? '',
    token: spec.token ?? '',
  });
}
