// What the plan worker needs and returns. The score table lives in
// SharedArrayBuffers, so posting a task copies nothing: the worker reads the
// table in place while the core holds report application (core.ts), which
// keeps the plan and the snapshot at exactly one log sequence number.
import type { EpochPlan, PlanInput } from '../math/index.js';

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
