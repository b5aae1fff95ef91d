// The feedback side of a plan request: before the plan of epoch k is first
// requested, epoch k-1's streams open here finish (bounded wait) and every
// score this loader holds for the job is at the scorer. So the plan sees
// every score this loader received (strict per loader; see README "Epoch
// boundary" for replicas).
import { raceSignal } from '../../../common/signals.js';
import type { EpochBoundary } from './epoch-boundary.js';
import type { ScoreForwarder } from './score-forwarder.js';

export type PlanGate = (jobId: string, epoch: number, signal: AbortSignal) => Promise<void>;

export interface PlanGateOptions {
  boundary: Pick<EpochBoundary, 'barrier'>;
  forwarder: Pick<ScoreForwarder, 'flush'>;
  /** Longest wait for epoch k-1's streams (epochBarrierMs). */
  barrierMs: number;
}

export function createPlanGate({ boundary, forwarder, barrierMs }: PlanGateOptions): PlanGate {
  return async (jobId, epoch, signal) => {
    if (epoch > 0) await boundary.barrier(jobId, epoch - 1, barrierMs, signal);
    await raceSignal(forwarder.flush(jobId), signal, `score flush of job ${jobId}`);
  };
}
