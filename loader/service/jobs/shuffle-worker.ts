// Worker-thread entry: epoch shuffles off the loader's event loop (at
// N = 10M one is seconds of PRNG draws); answers each with the permutation,
// transferred. The thread is kept for the next epoch's shuffle.
import { serveWorkerTasks } from '../../../common/worker-serve.js';
import { shufflePlan } from './epoch-layout.js';
import { shardOfStarts, type ShuffleTask } from './shuffle-task.js';

serveWorkerTasks('shuffle-worker', (task: ShuffleTask) => {
  const perm = shufflePlan({ ...task, shardOf: shardOfStarts(task.shardStarts) });
  return { result: perm, transfer: [perm.buffer as ArrayBuffer] };
});
