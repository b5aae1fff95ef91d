// Worker-thread entry: computes one plan (and optionally a snapshot) off the
// scorer's event loop. planEpoch at N = 10M takes ~1 s; encoding the plan
// and the snapshot (copies and SHA-256 digests) another few hundred ms.
import { parentPort } from 'node:worker_threads';
import { encodePlan, planEpoch } from '../math/index.js';
import { encodePlanEnvelope, encodeSnapshot } from '../state/index.js';
import type { PlanTask, PlanTaskResult } from './plan-task.js';

const port = parentPort;
if (!port) throw new Error('plan-worker.ts runs only as a worker thread');

port.once('message', (task: PlanTask) => {
  const { input, flags, relevant } = task;
  const scored = new Uint8Array(input.datasetSize);
  for (let i = 0; i < scored.length; i++) scored[i] = flags[i]! & relevant ? 1 : 0;
  const plan = planEpoch({ ...input, scored });
  const envelope = encodePlanEnvelope(input.epoch, encodePlan(plan));
  const snapshot = task.snapshot
    ? encodeSnapshot({ ...task.snapshot, scores: input.scores, losses: input.losses, flags })
    : undefined;
  const result: PlanTaskResult = { plan, envelope, snapshot };
  // Transfer every result buffer once (two views may share one buffer).
  const buffers = new Set<ArrayBuffer>();
  for (const a of [plan.ids, plan.weights, plan.stats.histogram, envelope, snapshot]) {
    if (a && a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  }
  port.postMessage(result, [...buffers]);
});
