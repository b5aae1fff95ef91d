// What one StreamEpoch stream uses of the other stages, each through a
// narrow interface: jobs (open an epoch), supply (its batches), feedback
// (score sink, epoch progress); and what it tells its own stage.
import type { Logger } from '../../../common/logger.js';
import type { EpochBoundary } from '../feedback/epoch-boundary.js';
import type { ScoreForwarder } from '../feedback/score-forwarder.js';
import type { JobAccess } from '../jobs/job-access.js';
import type { LoaderMetrics } from '../metrics.js';
import type { Supply } from '../supply/supply.js';

/** What a stream uses of the other stages. */
export interface StreamDeps {
  openTimeoutMs: number;
  maxMessageBytes: number;
  logger: Logger;
  metrics: LoaderMetrics;
  /** Aborted when the loader starts draining: streams stop sending new batches. */
  drainSignal: AbortSignal;
  jobs: JobAccess;
  supply: Pick<Supply, 'openStream'>;
  scores: Pick<ScoreForwarder, 'add' | 'flush' | 'full' | 'waitForRoom'>;
  boundary: Pick<EpochBoundary, 'streamOpened'>;
}

/** The session stage's bookkeeping of its streams. */
export interface StreamHooks {
  /** A batch of `samples` samples was written. */
  sent(samples: number): void;
  /** The stream ended with `outcome` (a gRPC status name). */
  ended(outcome: string): void;
}
