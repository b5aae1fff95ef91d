// Worker-thread entry: computes plans (and snapshots) off the scorer's event
// loop, one task after another; the thread is kept for the next plan.
import { serveWorkerTasks } from '../../common/worker-serve.js';
import { computePlanTask, type PlanTask, type PlanTaskResult } from './plan-task.js';

serveWorkerTasks('plan-worker', (task: PlanTask) => {
  const result: PlanTaskResult = computePlanTask(task);
  // Transfer every result buffer once (two views may share one buffer).
  const buffers = new Set<ArrayBuffer>();
  const { plan, envelope, snapshot } = result;
  for (const a of [plan.ids, plan.weights, plan.stats.histogram, envelope, snapshot]) {
    if (a && a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  }
  return { result, transfer: [...buffers] };
});
