// The epoch shape a trainer asks for (OpenEpoch, DescribeEpoch): job id,
// world size, rank and batch size, checked before any job is looked up.
import { SadpError, Status } from '../../../common/errors.js';

/** Largest batch a trainer may ask for (65,536 samples). */
const MAX_BATCH_SIZE = 65_536;

export function checkShape(jobId: string, world: number, rank: number | undefined, batchSize: number): void {
  const bad = (msg: string): SadpError =>
    new SadpError('SADP_BAD_REQUEST', msg, { status: Status.INVALID_ARGUMENT });
  if (!jobId) throw bad('job_id is required');
  if (world === 0) throw bad('world_size must be >= 1');
  if (rank !== undefined && rank >= world)
    throw bad(`rank ${rank} is out of range for world_size ${world} (0..${world - 1})`);
  if (batchSize === 0 || batchSize > MAX_BATCH_SIZE) {
    throw bad(`batch_size must be in [1, ${MAX_BATCH_SIZE}], got ${batchSize}`);
  }
}
