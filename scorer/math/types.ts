// Types shared by the planner and the plan codec.

export type PolicyName = 'full' | 'random' | 'infobatch' | 'sadp-loss' | 'sadp';

export const POLICY_NAMES: readonly PolicyName[] = ['full', 'random', 'infobatch', 'sadp-loss', 'sadp'];

export interface PlanInput {
  policy: PolicyName;
  /** N; ids are 0..N-1. At most 2^32 - 1. */
  datasetSize: number;
  /** r, the average pruning ratio of the run, in [0, 1). */
  pruneRatio: number;
  /** r_max (Eq. 42), in [r, 1]. Used by the SADP policies. */
  maxPruneRatio: number;
  /** beta, the smoothing floor (Eq. 40-41), in [0, 1]. Used by the SADP policies. */
  smoothing: number;
  /** K, epochs of the run. */
  epochs: number;
  /** 0-based epoch in [0, K). */
  epoch: number;
  /** Job seed in [0, 2^64). */
  seed: bigint;
  /** G_i, length N (spike-aware score): read by 'sadp'. */
  scores: Float64Array;
  /** Unweighted loss, length N: read by 'infobatch' and 'sadp-loss'. */
  losses: Float64Array;
  /** 1 if example i ever had a score (of the policy's kind) reported; length N for the scored policies. */
  scored: Uint8Array;
}

export interface PlanStats {
  /** Smallest and largest selection probability over all N examples. */
  minProbability: number;
  maxProbability: number;
  /** Largest weight of a selected example (0 when none is selected). */
  maxWeight: number;
  /** Counts of p over all N examples in 20 equal bins over [0, 1]; the last bin includes 1. */
  histogram: Uint32Array;
  /** Capping passes of the final solve (0 for policies without capping). */
  cappingPasses: number;
  /** gamma of Eq. 40 in score units: 0 when not needed, Infinity when p is uniform. */
  smoothingOffset: number;
  /** beta N >= S: the floor cannot hold and p = S/N. */
  floorInfeasible: boolean;
  /** Wall time of planEpoch, including the digest. Not part of the digest. */
  computeMs: number;
}

export interface EpochPlan {
  epoch: number;
  /** 1 - expectedSize / N: r_k for the SADP policies, r for random, the expected realized ratio for InfoBatch. */
  pruneRatio: number;
  /** Sum of the selection probabilities (S_k for SADP). */
  expectedSize: number;
  /** Selected ids, ascending. */
  ids: Uint32Array;
  /** Weight of ids[i]: multiply that example's loss by it. */
  weights: Float64Array;
  stats: PlanStats;
  /** Hex SHA-256 of ids as u32 LE followed by weights as f64 LE (planDigest). */
  digest: string;
}
