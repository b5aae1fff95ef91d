// The loader's side of StreamEpoch messages that carry no stream state:
// EpochInfo (also DescribeEpoch's answer), the stream's error shapes and the
// default credit window.
import { SadpError, Status, type SadpErrorCode, type StatusCode } from '../../../common/errors.js';
import { pb, type sadp } from '../../../proto/index.js';
import type { EpochLayout } from '../jobs/epoch-layout.js';
import type { EpochState, JobContext } from '../jobs/job-registry.js';

/** Credit window when OpenEpoch.max_unacked_batches is 0. */
export const DEFAULT_MAX_UNACKED = 4;

export const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]));

export function epochInfo(ctx: JobContext, state: EpochState, layout: EpochLayout): sadp.v1.EpochInfo {
  return pb.EpochInfo.create({
    jobId: ctx.jobId,
    epoch: state.epoch,
    datasetSize: ctx.dataset.size,
    selectedCount: layout.selected,
    samplesPerRank: layout.samplesPerRank,
    steps: layout.steps,
    padded: layout.padded,
    pruneRatio: state.plan.pruneRatio,
    expectedSize: state.plan.expectedSize,
    planDigest: state.plan.digest,
    fields: ctx.dataset.manifest.fields,
    datasetBytes: state.datasetBytes,
    selectedBytes: state.selectedBytes,
    epochs: ctx.epochs,
  });
}

export function rpcError(
  status: StatusCode,
  message: string,
  code: SadpErrorCode = 'SADP_BAD_REQUEST',
): SadpError {
  return new SadpError(code, message, { status });
}

/** A stream that has not opened when the loader drains: UNAVAILABLE, so the trainer reconnects elsewhere. */
export function drainingError(): SadpError {
  return rpcError(
    Status.UNAVAILABLE,
    'the loader is shutting down; connect to another replica',
    'SADP_DRAINING',
  );
}
