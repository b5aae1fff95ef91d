// What the loader's range reader requests for one prefetch window: the one place the
// estimator calls the read planner, so it plans with exactly the code the
// reader fetches with (and follows it when the planner changes).
import { planRanges, sortUniqueIds, type PlanOptions, type SampleLayout } from '../fetch/index.js';

export interface FetchCost {
  gets: number;
  bytesRequested: number;
  bytesSelected: number;
}

/** GETs and bytes the range reader issues for one plan of `ids` (a prefetch window's batches; no retries). */
export function batchFetchCost(
  layout: SampleLayout,
  size: number,
  ids: ArrayLike<number>,
  options: PlanOptions,
): FetchCost {
  const plan = planRanges(layout, sortUniqueIds(ids, size), options);
  return { gets: plan.count, bytesRequested: plan.bytesRequested, bytesSelected: plan.bytesSelected };
}
