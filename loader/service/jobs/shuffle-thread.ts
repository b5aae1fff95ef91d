// The epoch shuffle in a worker thread: the loop only copies the plan's ids
// to the worker (~10 ms at 10M) and receives the permutation (transferred),
// so streams keep flowing while the next epoch is prepared.
import { SadpError, Status } from '../../../common/errors.js';
import { runWorkerTask } from '../../../common/worker-task.js';
import type { ShuffleTask } from './shuffle-task.js';

/** shufflePlan(task) computed in a worker thread; rejects with SADP_CANCELLED on abort. */
export function shufflePlanOffLoop(task: ShuffleTask, signal?: AbortSignal): Promise<Uint32Array> {
  const what = `epoch ${task.epoch} shuffle`;
  // Only the task's own fields cross: a caller's extra properties (a shardOf function) cannot be cloned.
  const { ids, seed, epoch, mode, blockShards, shardStarts } = task;
  const message: ShuffleTask = { ids, seed, epoch, mode, blockShards, shardStarts };
  return runWorkerTask<Uint32Array>(new URL('./shuffle-worker', import.meta.url), message, {
    what,
    signal,
    failed: (reason, cause) =>
      new SadpError(
        'SADP_SHUFFLE_WORKER_FAILED',
        `${what} of ${task.ids.length} ids: worker failed: ${reason}`,
        {
          status: Status.INTERNAL,
          cause,
        },
      ),
  });
}
