// Epoch shuffles in the loader's one shuffle thread (started on the first
// large plan, kept for the next epochs): the loop only copies the plan's ids
// to the thread (~10 ms at 10M) and receives the permutation (transferred),
// so streams keep flowing while the next epoch is prepared.
import { SadpError, Status } from '../../../common/errors.js';
import { createWorkerTaskRunner } from '../../../common/worker-task.js';
import type { ShuffleTask } from './shuffle-task.js';

export interface ShuffleThread {
  /**
   * shufflePlan(task) computed in the thread; rejects with SADP_CANCELLED on
   * abort. `jobId` names the job in errors (one thread serves every job).
   */
  shuffle(task: ShuffleTask, signal?: AbortSignal, jobId?: string): Promise<Uint32Array>;
  /** Threads started so far (1 until the thread dies or a shuffle is cancelled mid-run with nothing else pending). */
  readonly threadsStarted: number;
  close(): Promise<void>;
}

export function createShuffleThread(): ShuffleThread {
  const runner = createWorkerTaskRunner(new URL('./shuffle-worker', import.meta.url));
  return {
    get threadsStarted() {
      return runner.threadsStarted;
    },
    shuffle(task, signal, jobId) {
      const what = `${jobId === undefined ? '' : `job ${jobId} `}epoch ${task.epoch} shuffle`;
      // Only the task's own fields cross: a caller's extra properties (a shardOf function) cannot be cloned.
      const { ids, seed, epoch, mode, blockShards, shardStarts } = task;
      const message: ShuffleTask = { ids, seed, epoch, mode, blockShards, shardStarts };
      return runner.run<Uint32Array>(message, {
        what,
        signal,
        failed: (reason, cause) =>
          new SadpError(
            'SADP_SHUFFLE_WORKER_FAILED',
            `${what} of ${task.ids.length} ids: worker failed: ${reason}`,
            { status: Status.INTERNAL, cause },
          ),
      });
    },
    close: () => runner.close(),
  };
}
