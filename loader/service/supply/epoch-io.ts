// Storage bytes this loader received per (job, epoch): what a trainer asks
// through DescribeEpoch to report bytes actually read rather than the plan's
// selected bytes. Retried partial bodies and merged gaps count (they were
// read); other loader replicas' reads do not (each answers for itself).

/** (job, epoch) pairs remembered; the oldest is dropped beyond this. */
const MAX_ENTRIES = 1_024;

export interface EpochIo {
  add(jobId: string, epoch: number, bytes: number): void;
  /** Bytes received so far for the job's epoch; 0 when this loader read none. */
  received(jobId: string, epoch: number): number;
}

export function createEpochIo(maxEntries = MAX_ENTRIES): EpochIo {
  const bytes = new Map<string, number>();
  const key = (jobId: string, epoch: number): string => `${epoch}\u0000${jobId}`;
  return {
    add(jobId, epoch, n) {
      const k = key(jobId, epoch);
      const prev = bytes.get(k);
      if (prev === undefined && bytes.size >= maxEntries) {
        const oldest = bytes.keys().next().value;
        if (oldest !== undefined) bytes.delete(oldest);
      }
      bytes.set(k, (prev ?? 0) + n);
    },
    received(jobId, epoch) {
      return bytes.get(key(jobId, epoch)) ?? 0;
    },
  };
}
