// One job's score table in flat typed arrays (17 bytes per example), report
// validation, and the inputs of a plan. No I/O here: the core makes reports
// durable before it calls applyReport.
import { invalidArgument } from '../../common/errors.js';
import { invalidScore, isValidScore } from '../../common/scores.js';
import type { PlanInput, PolicyName } from '../math/index.js';
import {
  FLAG_LOSS,
  FLAG_SCORE,
  encodeSnapshot,
  type JobRecord,
  type ReportRecord,
  type SnapshotRecord,
} from '../state/index.js';
import type { PlanTask } from './plan-task.js';

/** Largest report accepted: 1,048,576 entries is 20 MiB on the wire with scores and losses. */
const MAX_REPORT_ENTRIES = 1 << 20;

const ReportErrorCode = {
  EMPTY: 'SADP_REPORT_EMPTY',
  TOO_LARGE: 'SADP_REPORT_TOO_LARGE',
  LENGTH_MISMATCH: 'SADP_REPORT_LENGTH_MISMATCH',
  NO_VALUES: 'SADP_REPORT_NO_VALUES',
  ID_OUT_OF_RANGE: 'SADP_REPORT_ID_OUT_OF_RANGE',
} as const;

/** A report as it arrives (protobuf arrays or typed arrays). */
export interface ReportInput {
  /** Accounting only (kept in the log): the latest report of an id wins whatever its epoch, so it is not checked. */
  epoch: number;
  ids: ArrayLike<number>;
  /** Empty or one per id. */
  scores?: ArrayLike<number> | null;
  losses?: ArrayLike<number> | null;
}

const EMPTY: ArrayLike<number> = [];

/**
 * Which reported value makes an example count as scored for a policy: the one
 * its planner reads. `full` and `random` read neither, so either counts.
 */
function relevantFlags(policy: PolicyName): number {
  switch (policy) {
    case 'sadp':
      return FLAG_SCORE;
    case 'sadp-loss':
    case 'infobatch':
      return FLAG_LOSS;
    case 'full':
    case 'random':
      return FLAG_SCORE | FLAG_LOSS;
  }
}

export class Job {
  readonly record: JobRecord;
  readonly jobId: string;
  readonly size: number;
  readonly seed: bigint;
  /** G_i; 0 until reported (the planner tells unreported ids apart by `flags`). */
  readonly scores: Float64Array;
  readonly losses: Float64Array;
  /** FLAG_SCORE | FLAG_LOSS: which values id i has ever had reported. */
  readonly flags: Uint8Array;
  private readonly relevant: number;
  /** Examples whose policy-relevant value has been reported at least once. */
  scoredCount = 0;
  /** Total entries accepted. */
  scoresReceived = 0;
  /** Sequence number of the last log object applied (0: none). */
  appliedSeq = 0;

  constructor(record: JobRecord, snapshot: SnapshotRecord | null = null) {
    this.record = record;
    this.jobId = record.jobId;
    this.size = record.datasetSize;
    this.seed = BigInt(record.seed);
    this.relevant = relevantFlags(record.policy);
    // Shared memory, so the plan worker reads the table without a copy.
    this.scores = new Float64Array(new SharedArrayBuffer(8 * this.size));
    this.losses = new Float64Array(new SharedArrayBuffer(8 * this.size));
    this.flags = new Uint8Array(new SharedArrayBuffer(this.size));
    if (snapshot) {
      this.scores.set(snapshot.scores);
      this.losses.set(snapshot.losses);
      this.flags.set(snapshot.flags);
      this.scoresReceived = snapshot.scoresReceived;
      this.appliedSeq = snapshot.seq;
      let scored = 0;
      for (let i = 0; i < this.size; i++) if (this.flags[i]! & this.relevant) scored++;
      this.scoredCount = scored;
    }
  }

  /**
   * Checks the whole report and copies it into typed arrays; throws
   * INVALID_ARGUMENT naming the first bad entry. Changes nothing.
   */
  validateReport(input: ReportInput): ReportRecord {
    const ids = input.ids;
    const scores = input.scores ?? EMPTY;
    const losses = input.losses ?? EMPTY;
    const n = ids.length;
    const where = `report for job ${this.jobId}`;
    if (n === 0) throw invalidArgument(ReportErrorCode.EMPTY, `${where} has no ids`);
    if (n > MAX_REPORT_ENTRIES) {
      throw invalidArgument(
        ReportErrorCode.TOO_LARGE,
        `${where} has ${n} ids, more than the ${MAX_REPORT_ENTRIES} allowed in one report: split it`,
      );
    }
    if (scores.length !== 0 && scores.length !== n) {
      throw invalidArgument(
        ReportErrorCode.LENGTH_MISMATCH,
        `${where} has ${n} ids but ${scores.length} scores`,
      );
    }
    if (losses.length !== 0 && losses.length !== n) {
      throw invalidArgument(
        ReportErrorCode.LENGTH_MISMATCH,
        `${where} has ${n} ids but ${losses.length} losses`,
      );
    }
    if (scores.length === 0 && losses.length === 0) {
      throw invalidArgument(ReportErrorCode.NO_VALUES, `${where} has ${n} ids but neither scores nor losses`);
    }
    const outIds = new Uint32Array(n);
    const outScores = scores.length ? new Float64Array(n) : null;
    const outLosses = losses.length ? new Float64Array(n) : null;
    const size = this.size;
    // One pass that checks and copies; the messages are built only on failure.
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < size && id === Math.floor(id))) {
        throw invalidArgument(
          ReportErrorCode.ID_OUT_OF_RANGE,
          `${where}: entry ${i}: id ${id} is not in [0, ${size})`,
        );
      }
      outIds[i] = id;
      if (outScores) {
        const s = scores[i]!;
        if (!isValidScore(s)) throw invalidScore(`${where}: entry ${i} (id ${id}): score ${s}`);
        outScores[i] = s;
      }
      if (outLosses) {
        const l = losses[i]!;
        if (!isValidScore(l)) throw invalidScore(`${where}: entry ${i} (id ${id}): loss ${l}`);
        outLosses[i] = l;
      }
    }
    return { epoch: input.epoch, ids: outIds, scores: outScores, losses: outLosses };
  }

  /** Applies a validated report; within a report, a repeated id's last entry wins. */
  applyReport(r: ReportRecord): void {
    const { ids, scores, losses } = r;
    const set = (scores ? FLAG_SCORE : 0) | (losses ? FLAG_LOSS : 0);
    const relevant = this.relevant;
    const flags = this.flags;
    let newlyScored = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (scores) this.scores[id] = scores[i]!;
      if (losses) this.losses[id] = losses[i]!;
      const old = flags[id]!;
      if (!(old & relevant) && set & relevant) newlyScored++;
      flags[id] = old | set;
    }
    this.scoredCount += newlyScored;
    this.scoresReceived += ids.length;
  }

  /** Validates and applies in memory only (tests, benchmarks, replay). */
  report(input: ReportInput): number {
    const r = this.validateReport(input);
    this.applyReport(r);
    return r.ids.length;
  }

  /** What the planner reads for epoch `epoch`, from the scores held now (no copies). */
  planInput(epoch: number, withScored = true): PlanInput {
    const scored = new Uint8Array(withScored ? this.size : 0);
    const relevant = this.relevant;
    if (withScored) for (let i = 0; i < this.size; i++) scored[i] = this.flags[i]! & relevant ? 1 : 0;
    return {
      policy: this.record.policy,
      datasetSize: this.size,
      pruneRatio: this.record.pruneRatio,
      maxPruneRatio: this.record.effectiveMaxPruneRatio,
      smoothing: this.record.effectiveSmoothing,
      epochs: this.record.epochs,
      epoch,
      seed: this.seed,
      scores: this.scores,
      losses: this.losses,
      scored,
    };
  }

  /**
   * What the plan worker needs for `epoch` (views of the shared table, no
   * copies); with `snapshot`, it also encodes the table as of `appliedSeq`.
   * The table must not change until the task is done.
   */
  planTask(epoch: number, snapshot: boolean): PlanTask {
    const { scored: _scored, ...input } = this.planInput(epoch, false);
    return {
      input,
      flags: this.flags,
      relevant: this.relevant,
      snapshot: snapshot ? { seq: this.appliedSeq, scoresReceived: this.scoresReceived } : undefined,
    };
  }

  /** The score table as of `appliedSeq`, encoded (a copy). */
  encodeSnapshot(): Uint8Array {
    return encodeSnapshot({
      seq: this.appliedSeq,
      scoresReceived: this.scoresReceived,
      scores: this.scores,
      losses: this.losses,
      flags: this.flags,
    });
  }
}
