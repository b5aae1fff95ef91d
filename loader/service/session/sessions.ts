// The session stage: every StreamEpoch call of one loader. It starts a
// stream per call and keeps what the loader reports about them (open
// streams, batches and samples sent) and the wait for the last one to end
// (drain).
import type { StreamEpochCall } from './epoch-stream.js';
import { EpochStream } from './epoch-stream.js';
import type { StreamDeps } from './stream-deps.js';

export interface SessionStats {
  activeStreams: number;
  batchesSent: number;
  samplesSent: number;
}

export interface Sessions {
  handle(call: StreamEpochCall): void;
  /** Resolves once no stream is open. */
  idle(): Promise<void>;
  stats(): SessionStats;
}

export function createSessions(deps: StreamDeps): Sessions {
  const { metrics } = deps;
  let active = 0;
  let batchesSent = 0;
  let samplesSent = 0;
  const idleWaiters: Array<() => void> = [];
  const hooks = {
    sent(samples: number): void {
      batchesSent++;
      samplesSent += samples;
      metrics.batchesSent.inc();
      metrics.samplesSent.inc(samples);
    },
    ended(outcome: string): void {
      active--;
      metrics.activeStreams.dec();
      metrics.streamsEnded.inc({ status: outcome });
      if (active === 0) for (const w of idleWaiters.splice(0)) w();
    },
  };
  return {
    handle(call) {
      active++;
      metrics.activeStreams.inc();
      new EpochStream(deps, hooks, call).start();
    },
    idle() {
      if (active === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    stats: () => ({ activeStreams: active, batchesSent, samplesSent }),
  };
}
