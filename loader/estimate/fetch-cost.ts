// What the loader's range reader requests for one read(): the one place the
// estimator calls the read planner, so it plans with exactly the code (and
// mode and cost model) the reader fetches with, and follows it when the
// planner changes.
import { planReads, sortUniqueIds, type ReadPlanOptions, type SampleLayout } from '../fetch/index.js';

export interface FetchCost {
  gets: number;
  bytesRequested: number;
  bytesSelected: number;
}

/** GETs and bytes the range reader issues for one read() of `ids` (no retries). */
export function readFetchCost(
  layout: SampleLayout,
  size: number,
  ids: ArrayLike<number>,
  options: ReadPlanOptions,
): FetchCost {
  const plan = planReads(layout, sortUniqueIds(ids, size), options);
  return { gets: plan.count, bytesRequested: plan.bytesRequested, bytesSelected: plan.bytesSelected };
}
