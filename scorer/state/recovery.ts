// Loading a job back after a restart: its spec, the newest readable
// snapshot, then every later log object in sequence order. Plans are not
// read here (they are loaded lazily); only which epochs have one.
//
// A log object that fails its checksum is only tolerated when it is the last
// one: that is a write the crash interrupted, which was never acknowledged.
// It is reported and its sequence number is reused by the next write. A bad
// or missing log object before the last one would drop acknowledged scores,
// so loading fails with DATA_LOSS naming the object.
import type { Logger } from '../../common/logger.js';
import { SadpError, Status, errorMessage, isSadpError } from '../../common/errors.js';
import { StateErrorCode, type ReportRecord, type SnapshotRecord } from './codec.js';
import type { JobListing, JobRecord, StateStore } from './state-store.js';

export interface RecoverHooks<T> {
  /** Builds the in-memory job from its spec and snapshot (null: no snapshot yet). */
  open(record: JobRecord, snapshot: SnapshotRecord | null): T;
  /** Applies one log object's reports, in sequence order. */
  apply(job: T, seq: number, reports: readonly ReportRecord[]): void;
}

export interface RecoverOptions {
  logger: Logger;
  signal?: AbortSignal;
  /** Log objects read ahead of the one being applied; default 8 (bounds memory to 8 objects). */
  readAhead?: number;
}

export interface RecoveredJob<T> {
  job: T;
  /** Sequence number of the next log object to write. */
  nextSeq: number;
  /** Sequence number the newest valid snapshot covers (0: none). */
  snapshotSeq: number;
  planEpochs: number[];
  /** Logs and snapshots made obsolete by the snapshot, left by an interrupted compaction. */
  staleLogSeqs: number[];
  staleSnapshotSeqs: number[];
  logsReplayed: number;
}

function dataLoss(message: string, cause?: unknown): SadpError {
  return new SadpError(StateErrorCode.CORRUPT, message, { status: Status.DATA_LOSS, cause });
}

export async function recoverJob<T>(
  state: StateStore,
  listing: JobListing,
  hooks: RecoverHooks<T>,
  options: RecoverOptions,
): Promise<RecoveredJob<T>> {
  const { jobId } = listing;
  const { logger, signal } = options;
  const readAhead = Math.max(1, options.readAhead ?? 8);
  if (!listing.hasRecord) {
    throw dataLoss(`${state.url}/${state.jobKey(jobId)} is missing but job ${jobId} has state objects`);
  }
  const record = await state.readJob(jobId, signal);

  let snapshot: SnapshotRecord | null = null;
  const snapshots = [...listing.snapshotSeqs].reverse();
  for (const seq of snapshots) {
    try {
      snapshot = await state.readSnapshot(jobId, seq, record.datasetSize, signal);
      break;
    } catch (err) {
      if (!isSadpError(err, StateErrorCode.CORRUPT)) throw err;
      logger.error(
        { jobId, key: state.snapshotKey(jobId, seq), err },
        'snapshot unreadable, trying an older one',
      );
    }
  }
  const snapshotSeq = snapshot?.seq ?? 0;
  const staleSnapshotSeqs = listing.snapshotSeqs.filter((s) => s < snapshotSeq);
  const staleLogSeqs = listing.logSeqs.filter((s) => s <= snapshotSeq);
  const pending = listing.logSeqs.filter((s) => s > snapshotSeq);
  for (let i = 0; i < pending.length; i++) {
    if (pending[i] !== snapshotSeq + 1 + i) {
      throw dataLoss(
        `job ${jobId}: log object ${state.url}/${state.logKey(jobId, snapshotSeq + 1 + i)} is missing ` +
          `(snapshot covers ${snapshotSeq}, next log found is ${pending[i]})`,
      );
    }
  }

  const job = hooks.open(record, snapshot);
  let nextSeq = snapshotSeq + 1;
  // A sliding window of reads so replay over S3 is not one round trip per object.
  const reads = new Map<number, Promise<ReportRecord[]>>();
  const startRead = (i: number): void => {
    const seq = pending[i];
    if (seq === undefined || reads.has(i)) return;
    const p = state.readLog(jobId, seq, signal);
    p.catch(() => undefined); // observed below, in order
    reads.set(i, p);
  };
  for (let i = 0; i < pending.length; i++) {
    for (let j = i; j < i + readAhead; j++) startRead(j);
    const seq = pending[i]!;
    let reports: ReportRecord[];
    try {
      reports = await reads.get(i)!;
    } catch (err) {
      const isLast = i === pending.length - 1;
      if (isLast && isSadpError(err, StateErrorCode.CORRUPT)) {
        logger.error(
          { jobId, key: state.logKey(jobId, seq), err },
          'trailing log object is torn or corrupt: ignored (its write was never acknowledged); the next write replaces it',
        );
        break;
      }
      if (isSadpError(err, StateErrorCode.CORRUPT)) {
        throw dataLoss(
          `job ${jobId}: log object ${seq} of ${pending.at(-1)} is unreadable: ${errorMessage(err)}`,
          err,
        );
      }
      throw err;
    } finally {
      reads.delete(i);
    }
    hooks.apply(job, seq, reports);
    nextSeq = seq + 1;
  }
  return {
    job,
    nextSeq,
    snapshotSeq,
    planEpochs: listing.planEpochs.filter((e) => e < record.epochs),
    staleLogSeqs,
    staleSnapshotSeqs,
    logsReplayed: nextSeq - 1 - snapshotSeq,
  };
}
