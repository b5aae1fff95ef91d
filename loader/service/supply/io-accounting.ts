// The range reader's storage I/O as the loader reports it: its cumulative
// counters pushed into the Prometheus counters (which sum over every loader
// of the process, so only deltas go in), and the bytes received per (job,
// epoch) for DescribeEpoch (epoch-io.ts).
import type { IoStats, RangeReader } from '../../fetch/index.js';
import type { LoaderMetrics } from '../metrics.js';
import { createEpochIo } from './epoch-io.js';

export interface IoAccounting {
  /** Pushes the reader's counters since the last sync into the Prometheus counters. */
  sync(): void;
  add(jobId: string, epoch: number, bytes: number): void;
  received(jobId: string, epoch: number): number;
}

export function createIoAccounting(reader: Pick<RangeReader, 'stats'>, metrics: LoaderMetrics): IoAccounting {
  const epochIo = createEpochIo();
  let last: IoStats = { ...reader.stats };
  return {
    sync() {
      const now = reader.stats;
      metrics.bytesFetched.inc(now.bytesReceived - last.bytesReceived);
      metrics.storageRequests.inc(now.requests - last.requests);
      metrics.storageRetries.inc(now.retries - last.retries);
      last = { ...now };
    },
    add: (jobId, epoch, bytes) => epochIo.add(jobId, epoch, bytes),
    received: (jobId, epoch) => epochIo.received(jobId, epoch),
  };
}
