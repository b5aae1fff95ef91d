// DescribeEpoch: what a rank's stream would start with (EpochInfo) without
// opening one, plus the storage bytes this loader received for the epoch so
// far. It fixes the epoch's plan like a stream does.
import type * as grpc from '@grpc/grpc-js';
import type { sadp } from '../../../proto/index.js';
import { epochLayout } from '../jobs/epoch-layout.js';
import type { JobAccess } from '../jobs/job-access.js';
import { checkShape } from './shape-check.js';
import { epochInfo } from './stream-messages.js';

export interface DescribeEpochDeps {
  jobs: JobAccess;
  bytesReceived(jobId: string, epoch: number): number;
}

export async function describeEpoch(
  deps: DescribeEpochDeps,
  call: grpc.ServerUnaryCall<sadp.v1.DescribeEpochRequest, sadp.v1.EpochInfo>,
): Promise<sadp.v1.EpochInfo> {
  const req = call.request;
  const jobId = req.jobId ?? '';
  const world = req.worldSize ?? 0;
  const batchSize = req.batchSize ?? 0;
  const epoch = req.epoch ?? 0;
  checkShape(jobId, world, undefined, batchSize);
  const controller = new AbortController();
  const onCancel = (): void => controller.abort();
  call.once('cancelled', onCancel);
  try {
    const { ctx, state } = await deps.jobs.openEpoch(jobId, epoch, call.metadata, controller.signal);
    const info = epochInfo(ctx, state, epochLayout(state.plan.ids.length, world, batchSize));
    info.storageBytesReceived = deps.bytesReceived(jobId, epoch);
    return info;
  } finally {
    call.removeListener('cancelled', onCancel);
  }
}
