// Worker-thread entry: one epoch's shuffle off the loader's event loop (at
// N = 10M it is seconds of PRNG draws); answers with the permutation,
// transferred.
import { parentPort } from 'node:worker_threads';
import { shufflePlan } from './epoch-layout.js';
import { shardOfStarts, type ShuffleTask } from './shuffle-task.js';

const port = parentPort;
if (!port) throw new Error('shuffle-worker runs only as a worker thread');

port.once('message', (task: ShuffleTask) => {
  const perm = shufflePlan({ ...task, shardOf: shardOfStarts(task.shardStarts) });
  port.postMessage(perm, [perm.buffer as ArrayBuffer]);
});
