// Loops over samples and shards stop with SADP_CANCELLED when their signal fires.
import { SadpError, Status } from '../../common/errors.js';

export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) {
    throw new SadpError('SADP_CANCELLED', `${what}: cancelled`, {
      status: Status.CANCELLED,
      cause: signal.reason,
    });
  }
}
