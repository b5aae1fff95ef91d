// Epoch boundary, early path: every rank of an epoch shape acked its last
// batch here and (through the registry's plan gate) all its scores are at
// the scorer, so fetch plan k+1 now and prefetch each rank's first batches
// with whatever budget is free, for the ranks' streams to adopt when they
// open k+1. Ranks whose k+1 stream is already open here fetch their own.
import { errorMessage } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import type { JobRegistry } from '../jobs/job-registry.js';
import { atEpoch, type EpochShape, type RankKey } from '../jobs/rank-key.js';
import type { Supply } from './supply.js';

export interface NextEpochOptions {
  jobs: Pick<JobRegistry, 'job' | 'epoch'>;
  supply: Pick<Supply, 'warm'>;
  /** Whether a stream of this rank was opened here already. */
  opened: (key: RankKey) => boolean;
  /** Aborted when draining starts: nothing new is prefetched. */
  drainSignal: AbortSignal;
  /** Aborted when the loader closes. */
  lifetime: AbortSignal;
  logger: Logger;
}

/** The listener to call with each epoch shape that completed here. */
export function nextEpochPrefetcher(o: NextEpochOptions): (finished: EpochShape) => void {
  const prefetch = async (finished: EpochShape): Promise<void> => {
    const next = atEpoch(finished, finished.epoch + 1);
    if (o.drainSignal.aborted) return;
    const ctx = await o.jobs.job(next.jobId, o.lifetime);
    if (next.epoch >= ctx.epochs) return;
    const state = await o.jobs.epoch(ctx, next.epoch, o.lifetime);
    if (o.drainSignal.aborted) return;
    const started = o.supply.warm(ctx, state, next, o.opened);
    o.logger.info(
      { job: next.jobId, epoch: next.epoch, world: next.world, batchSize: next.batchSize, batches: started },
      'next epoch prefetched at boundary',
    );
  };
  return (finished) => {
    prefetch(finished).catch((err: unknown) => {
      if (o.lifetime.aborted || o.drainSignal.aborted) return;
      o.logger.warn(
        { job: finished.jobId, epoch: finished.epoch + 1, err: errorMessage(err) },
        'prefetch of the next epoch failed',
      );
    });
  };
}
