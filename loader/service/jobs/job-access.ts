// What a trainer's call may see of a job: the job described (NOT_FOUND), the
// caller's token checked against the job's (auth.ts), the epoch within the
// job's range (OUT_OF_RANGE), then the epoch's plan and order from the
// registry, the plan fetched while the job's dataset opens. StreamEpoch and DescribeEpoch both open an epoch through here.
import type { Metadata } from '@grpc/grpc-js';
import { SadpError, Status } from '../../../common/errors.js';
import type { AuthMode } from '../options.js';
import { checkJobToken } from './auth.js';
import type { EpochState, JobContext, JobRegistry } from './job-registry.js';

export interface OpenedEpoch {
  ctx: JobContext;
  state: EpochState;
}

export interface JobAccess {
  openEpoch(jobId: string, epoch: number, metadata: Metadata, signal: AbortSignal): Promise<OpenedEpoch>;
}

export function createJobAccess(
  registry: Pick<JobRegistry, 'head' | 'job' | 'plan' | 'epoch'>,
  auth: AuthMode,
): JobAccess {
  return {
    async openEpoch(jobId, epoch, metadata, signal) {
      const head = await registry.head(jobId, signal);
      checkJobToken(auth, metadata, jobId, head.tokenSha256);
      if (epoch >= head.epochs) {
        throw new SadpError(
          'SADP_EPOCH_OUT_OF_RANGE',
          `job ${jobId} has ${head.epochs} epochs (0..${head.epochs - 1}); epoch ${epoch} does not exist`,
          { status: Status.OUT_OF_RANGE },
        );
      }
      // The plan (plan gate, GetPlan) loads while the dataset opens: both
      // only need the checked job. A failed plan surfaces from epoch() below.
      void registry.plan(jobId, epoch).catch(() => undefined);
      const ctx = await registry.job(jobId, signal);
      return { ctx, state: await registry.epoch(ctx, epoch, signal) };
    },
  };
}
