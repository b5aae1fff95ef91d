// Paper defaults (Table II) and the dynamic pruning schedule (Eq. 42).
import { invalidArgument } from '../../common/errors.js';

export interface Hyperparameters {
  /** beta, the smoothing floor on selection probabilities (Eq. 40-41). */
  smoothing: number;
  /** r_max, the pruning ratio of the last epoch (Eq. 42). */
  maxPruneRatio: number;
}

/** Table II rows (CIFAR, all architectures) plus the ImageNet setting of Section V-A. */
const TABLE: readonly { r: number; beta: number; rmax: number }[] = [
  { r: 0.3, beta: 0.35, rmax: 0.6 },
  { r: 0.35, beta: 0.25, rmax: 0.55 },
  { r: 0.5, beta: 0.3, rmax: 0.7 },
  { r: 0.7, beta: 0.2, rmax: 0.9 },
  { r: 0.9, beta: 0.05, rmax: 1.0 },
];
/** beta is interpolated over the CIFAR rows only: the ImageNet row would make it zig-zag. */
const KNOT_R = [0.3, 0.5, 0.7, 0.9] as const;
const KNOT_BETA = [0.35, 0.3, 0.2, 0.05] as const;
const TABLE_TOLERANCE = 1e-9;
/** The largest double below 1: r_k is clipped to [0, 1). */
const BELOW_ONE = 1 - 2 ** -53;

export function checkPruneRatio(pruneRatio: number): void {
  if (!(pruneRatio >= 0 && pruneRatio < 1)) {
    throw invalidArgument('SADP_MATH_BAD_PRUNE_RATIO', `prune ratio r must be in [0, 1), got ${pruneRatio}`);
  }
}

/**
 * Paper Table II for r in {0.3, 0.5, 0.7, 0.9} and the ImageNet setting for
 * r = 0.35 (beta 0.25, r_max 0.55). Any other r: beta is linearly
 * interpolated between the CIFAR rows and held constant outside [0.3, 0.9];
 * r_max = min(1, r + 0.3, 2r), where the 2r term keeps the first epoch's ratio
 * 2r - r_max >= 0 so that clipping does not move the schedule's mean off r.
 */
export function defaultHyperparameters(pruneRatio: number): Hyperparameters {
  checkPruneRatio(pruneRatio);
  for (const row of TABLE) {
    if (Math.abs(pruneRatio - row.r) < TABLE_TOLERANCE)
      return { smoothing: row.beta, maxPruneRatio: row.rmax };
  }
  return {
    smoothing: interpolateBeta(pruneRatio),
    maxPruneRatio: Math.min(1, pruneRatio + 0.3, 2 * pruneRatio),
  };
}

function interpolateBeta(r: number): number {
  if (r <= KNOT_R[0]) return KNOT_BETA[0];
  for (let j = 1; j < KNOT_R.length; j++) {
    const r1 = KNOT_R[j]!;
    if (r <= r1) {
      const r0 = KNOT_R[j - 1]!;
      const b0 = KNOT_BETA[j - 1]!;
      return b0 + ((r - r0) * (KNOT_BETA[j]! - b0)) / (r1 - r0);
    }
  }
  return KNOT_BETA[3];
}

/**
 * Eq. 42 with a 0-based epoch (the paper's k = epoch + 1):
 * r_k = 2r - r_max + k (2 r_max - 2r) / K, clipped to [0, 1). With
 * `datasetSize` N also clipped to at most 1 - 1/N so S_k = (1 - r_k) N >= 1;
 * without it the bound is the largest double below 1 and the caller must
 * keep S_k >= 1 itself (planEpoch does).
 * The mean over k = 1..K is r + (r_max - r) / K before clipping.
 */
export function pruneRatioAt(
  epoch: number,
  pruneRatio: number,
  maxPruneRatio: number,
  epochs: number,
  datasetSize?: number,
): number {
  checkSchedule(epoch, pruneRatio, maxPruneRatio, epochs);
  let upper = BELOW_ONE;
  if (datasetSize !== undefined) {
    if (!Number.isInteger(datasetSize) || datasetSize < 1) {
      throw invalidArgument(
        'SADP_MATH_BAD_DATASET_SIZE',
        `dataset size must be a positive integer, got ${datasetSize}`,
      );
    }
    upper = Math.min(upper, 1 - 1 / datasetSize);
  }
  const k = epoch + 1;
  const r = 2 * pruneRatio - maxPruneRatio + (k * (2 * maxPruneRatio - 2 * pruneRatio)) / epochs;
  return Math.min(upper, Math.max(0, r));
}

export function checkSchedule(
  epoch: number,
  pruneRatio: number,
  maxPruneRatio: number,
  epochs: number,
): void {
  checkPruneRatio(pruneRatio);
  if (!(maxPruneRatio >= pruneRatio && maxPruneRatio <= 1)) {
    throw invalidArgument(
      'SADP_MATH_BAD_MAX_PRUNE_RATIO',
      `max prune ratio r_max must be in [r, 1] = [${pruneRatio}, 1], got ${maxPruneRatio}`,
    );
  }
  if (!Number.isInteger(epochs) || epochs < 1 || epochs > 0xffffffff) {
    throw invalidArgument('SADP_MATH_BAD_EPOCHS', `epochs K must be an integer in [1, 2^32), got ${epochs}`);
  }
  if (!Number.isInteger(epoch) || epoch < 0 || epoch >= epochs) {
    throw invalidArgument('SADP_MATH_BAD_EPOCH', `epoch must be an integer in [0, ${epochs}), got ${epoch}`);
  }
}
