// What a trainer's call may see of a job: the job looked up (NOT_FOUND), the
// caller's token checked against the job's (auth.ts), the epoch within the
// job's range (OUT_OF_RANGE), then the epoch's plan and order from the
// registry. StreamEpoch and DescribeEpoch both open an epoch through here.
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

export function createJobAccess(registry: Pick<JobRegistry, 'job' | 'epoch'>, auth: AuthMode): JobAccess {
  return {
    async openEpoch(jobId, epoch, metadata, signal) {
      const ctx = await registry.job(jobId, signal);
      checkJobToken(auth, metadata, jobId, ctx.tokenSha256);
      if (epoch >= ctx.epochs) {
        throw new SadpError(
          'SADP_EPOCH_OUT_OF_RANGE',
          `job ${jobId} has ${ctx.epochs} epochs (0..${ctx.epochs - 1}); epoch ${epoch} does not exist`,
          { status: Status.OUT_OF_RANGE },
        );
      }
      return { ctx, state: await registry.epoch(ctx, epoch, signal) };
    },
  };
}
