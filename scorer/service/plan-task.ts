// What the plan worker needs and returns, and the computation itself (run in
// the worker thread, or on the loop for small jobs: plan-thread.ts). The
// score table lives in SharedArrayBuffers, so posting a task copies nothing:
// the worker reads the table in place while the core holds report
// application (core.ts), which keeps the plan and the snapshot at exactly one
// log sequence number.
import { encodePlan, planEpoch, type EpochPlan, type PlanInput } from '../math/index.js';
import { encodePlanEnvelope, encodeSnapshot } from '../state/codec.js';

export interface PlanTask {
  input: Omit<PlanInput, 'scored'>;
  /** FLAG_* bits of each example; `scored[i] = flags[i] & relevant ? 1 : 0`. */
  flags: Uint8Array;
  relevant: number;
  /** Encode a snapshot of the table too (as of `seq`). */
  snapshot?: { seq: number; scoresReceived: number };
}

export interface PlanTaskResult {
  plan: EpochPlan;
  /** encodePlanEnvelope(epoch, encodePlan(plan)): what the state store keeps. */
  envelope: Uint8Array;
  snapshot?: Uint8Array;
}

/** The plan of `task` (planEpoch at N = 10M takes ~1 s; encoding plan and snapshot a few hundred ms more). */
export function computePlanTask(task: PlanTask): PlanTaskResult {
  const { input, flags, relevant } = task;
  const scored = new Uint8Array(input.datasetSize);
  for (let i = 0; i < scored.length; i++) scored[i] = flags[i]! & relevant ? 1 : 0;
  const plan = planEpoch({ ...input, scored });
  const envelope = encodePlanEnvelope(input.epoch, encodePlan(plan));
  const snapshot = task.snapshot
    ? encodeSnapshot({ ...task.snapshot, scores: input.scores, losses: input.losses, flags })
    : undefined;
  return { plan, envelope, snapshot };
}
