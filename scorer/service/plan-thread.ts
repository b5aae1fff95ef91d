// Runs a PlanTask in a worker thread, keeping the event loop free for
// reports and streams while a 10M-example plan is computed.
import { SadpError, Status } from '../../common/errors.js';
import { runWorkerTask } from '../../common/worker-task.js';
import type { PlanTask, PlanTaskResult } from './plan-task.js';

export function runPlanTask(task: PlanTask, what: string): Promise<PlanTaskResult> {
  return runWorkerTask<PlanTaskResult>(new URL('./plan-worker', import.meta.url), task, {
    what: `${what}: plan`,
    failed: (reason, cause) =>
      new SadpError('SADP_PLAN_WORKER_FAILED', `${what}: plan worker failed: ${reason}`, {
        status: Status.INTERNAL,
        cause,
      }),
  });
}
