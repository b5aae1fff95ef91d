// Cosine learning-rate annealing over the run's *actual* optimizer steps.
//
// With data pruning the steps per epoch change every epoch (the subset size
// follows the pruning schedule), so a schedule sized from the full dataset
// would never finish annealing (DESIGN.md pitfall). The total is re-estimated
// at the start of every epoch from what is known then:
//   total = steps already taken + this epoch's steps (EpochInfo.steps)
//           + a prediction for each later epoch.
// The prediction extrapolates the prune ratios seen so far linearly (SADP's
// schedule, paper Eq. 42, is linear in k) and scales this epoch's steps by
// the ratio of kept fractions; before two epochs were seen it repeats this
// epoch's steps. In the last epoch the total is exact, so the rate reaches
// its floor on the final step. The rate is kept non-increasing: when a new
// estimate is larger than the last (InfoBatch's full-data tail), the rate
// holds until the schedule catches up instead of jumping back up.

export interface EpochShape {
  epoch: number;
  steps: number;
  /** r_k from EpochInfo. */
  pruneRatio: number;
}

export function cosineLr(baseLr: number, minLr: number, step: number, totalSteps: number): number {
  const t = totalSteps <= 0 ? 1 : Math.min(1, Math.max(0, step / totalSteps));
  return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * t));
}

/**
 * Estimated optimizer steps of the whole run. `history` holds the epochs
 * before `current` (steps actually taken in each); `epochs` is K.
 */
export function estimateTotalSteps(
  epochs: number,
  current: EpochShape,
  history: readonly EpochShape[],
): number {
  let total = current.steps;
  for (const h of history) if (h.epoch < current.epoch) total += h.steps;
  const prev = history.find((h) => h.epoch === current.epoch - 1);
  const slope = prev ? current.pruneRatio - prev.pruneRatio : 0;
  const kept = Math.max(1e-6, 1 - current.pruneRatio);
  for (let k = current.epoch + 1; k < epochs; k++) {
    const r = Math.min(0.999, Math.max(0, current.pruneRatio + (k - current.epoch) * slope));
    total += Math.max(1, Math.round((current.steps * (1 - r)) / kept));
  }
  return total;
}

/** The rate for each step, non-increasing across re-estimates of the total. */
export class CosineSchedule {
  private total = 1;
  private last = Infinity;

  constructor(
    private readonly baseLr: number,
    private readonly minLr: number,
  ) {}

  setTotal(totalSteps: number): void {
    this.total = Math.max(1, totalSteps);
  }

  get totalSteps(): number {
    return this.total;
  }

  /** Rate for the optimizer step number `step` (0-based over the run). */
  rate(step: number): number {
    this.last = Math.min(this.last, cosineLr(this.baseLr, this.minLr, step, this.total));
    return this.last;
  }
}
