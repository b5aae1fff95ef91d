// Buffers the scores trainers send with their acks and forwards them to the
// scorer with ReportScores, per job, in order: a job has at most one report in
// flight, so when one example is reported twice the later score lands last
// (the scorer keeps the latest). A buffer is flushed when it reaches
// `flushEntries`, `flushMs` after its first entry, or on demand (stream end,
// epoch boundary, shutdown). Transient scorer failures (the scorer down, or
// its state store: it cannot make scores durable) are retried with backoff
// for at most `durableTimeoutMs`; then every entry buffered for the job is
// given up: the streams whose acks carried them end with UNAVAILABLE
// (SADP_SCORES_NOT_DURABLE) and their trainers, which keep every ack not yet
// committed, resend them when they reconnect. Nothing is dropped silently: a
// report the scorer rejects outright fails the streams whose acks it carried.
import type { Logger } from '../../../common/logger.js';
import { SadpError, Status, errorMessage } from '../../../common/errors.js';
import { retry, type RetryPolicy } from '../../../common/retry.js';
import { isRetryableScorerError, scorerError, type ScorerClient } from '../../../scorer/index.js';
import type { LoaderMetrics } from '../metrics.js';

/** Transient failures are retried until `durableTimeoutMs` has passed since the first one (or the signal aborts). */
const FORWARD_RETRY: RetryPolicy = {
  attempts: Infinity,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  jitter: 'full',
};

/** Told once whether an ack's entries are durable at the scorer. */
export interface ScoreTicket {
  durable(): void;
  failed(err: SadpError): void;
}

type Kind = 0 | 1 | 2 | 3; // bit 0: scores present, bit 1: losses present

interface Group {
  epoch: number;
  kind: Kind;
  ids: number[];
  scores: number[];
  losses: number[];
}

interface PendingTicket {
  /** The ack's entries are job sequence numbers [startSeq, endSeq). */
  startSeq: number;
  endSeq: number;
  ticket: ScoreTicket;
}

interface JobBuffer {
  jobId: string;
  groups: Group[];
  tickets: PendingTicket[];
  /** Entries ever added; entries < flushedSeq are durable. */
  nextSeq: number;
  flushedSeq: number;
  timer: NodeJS.Timeout | undefined;
  /** The running flush loop, if any. */
  flushing: Promise<void> | undefined;
  /** Flush everything up to this sequence number regardless of size. */
  forceThrough: number;
  roomWaiters: Array<() => void>;
}

export interface ScoreForwarderOptions {
  scorer: Pick<ScorerClient, 'reportScores' | 'address'>;
  flushEntries: number;
  flushMs: number;
  maxBufferedEntries: number;
  /**
   * How long a report may keep failing with transient errors before the
   * job's buffered entries are given up (scoreDurableTimeoutMs).
   */
  durableTimeoutMs: number;
  logger: Logger;
  metrics: LoaderMetrics;
  /** Aborted when the loader closes for good: pending retries stop. */
  signal: AbortSignal;
}

export interface ScoreForwarderStats {
  forwarded: number;
  buffered: number;
  retries: number;
  rejected: number;
  /** Entries given up after durableTimeoutMs of transient failures (their trainers resend them). */
  notDurable: number;
}

export class ScoreForwarder {
  private readonly jobs = new Map<string, JobBuffer>();
  readonly stats: ScoreForwarderStats = { forwarded: 0, buffered: 0, retries: 0, rejected: 0, notDurable: 0 };

  constructor(private readonly options: ScoreForwarderOptions) {}

  /**
   * Buffers one ack's entries (arrays of equal length, or empty scores /
   * losses). The ticket is told when they are durable; an ack with no
   * entries is durable at once.
   */
  add(
    jobId: string,
    epoch: number,
    ids: readonly number[],
    scores: readonly number[],
    losses: readonly number[],
    ticket: ScoreTicket,
  ): void {
    if (ids.length === 0) {
      ticket.durable();
      return;
    }
    const job = this.job(jobId);
    const kind = ((scores.length > 0 ? 1 : 0) | (losses.length > 0 ? 2 : 0)) as Kind;
    let group = job.groups[job.groups.length - 1];
    if (!group || group.epoch !== epoch || group.kind !== kind) {
      group = { epoch, kind, ids: [], scores: [], losses: [] };
      job.groups.push(group);
    }
    for (let i = 0; i < ids.length; i++) {
      group.ids.push(ids[i] as number);
      if (kind & 1) group.scores.push(scores[i] as number);
      if (kind & 2) group.losses.push(losses[i] as number);
    }
    job.tickets.push({ startSeq: job.nextSeq, endSeq: job.nextSeq + ids.length, ticket });
    job.nextSeq += ids.length;
    this.stats.buffered += ids.length;
    this.options.metrics.scoresBuffered.inc(ids.length);
    if (job.nextSeq - job.flushedSeq >= this.options.flushEntries) this.kick(job);
    else if (!job.timer && !job.flushing) {
      job.timer = setTimeout(() => {
        job.timer = undefined;
        job.forceThrough = Math.max(job.forceThrough, job.nextSeq);
        this.kick(job);
      }, this.options.flushMs);
    }
  }

  /** Entries of `jobId` not yet durable. */
  buffered(jobId: string): number {
    const job = this.jobs.get(jobId);
    return job ? job.nextSeq - job.flushedSeq : 0;
  }

  /** True when the job's buffer is at its bound: stop taking acks until waitForRoom resolves. */
  full(jobId: string): boolean {
    return this.buffered(jobId) >= this.options.maxBufferedEntries;
  }

  waitForRoom(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job || !this.full(jobId)) return Promise.resolve();
    return new Promise((resolve) => job.roomWaiters.push(resolve));
  }

  /**
   * Flushes everything buffered for `jobId` now; resolves when it is durable
   * (or was rejected: the tickets say which). Never rejects.
   */
  async flush(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job) return;
    const target = job.nextSeq;
    job.forceThrough = Math.max(job.forceThrough, target);
    while (job.flushedSeq < target && !this.options.signal.aborted) {
      this.kick(job);
      await job.flushing;
    }
  }

  async flushAll(): Promise<void> {
    await Promise.all([...this.jobs.keys()].map((j) => this.flush(j)));
  }

  /** Stops timers; entries still buffered are logged as lost (the caller flushed first). */
  close(): void {
    for (const job of this.jobs.values()) {
      if (job.timer) clearTimeout(job.timer);
      job.timer = undefined;
      const lost = job.nextSeq - job.flushedSeq;
      if (lost > 0) {
        this.options.metrics.scoresDropped.inc(lost);
        this.options.logger.error(
          { job: job.jobId, entries: lost },
          'loader closed with scores not yet at the scorer; trainers resend uncommitted scores on reconnect',
        );
      }
      for (const w of job.roomWaiters.splice(0)) w();
    }
  }

  private job(jobId: string): JobBuffer {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = {
        jobId,
        groups: [],
        tickets: [],
        nextSeq: 0,
        flushedSeq: 0,
        timer: undefined,
        flushing: undefined,
        forceThrough: 0,
        roomWaiters: [],
      };
      this.jobs.set(jobId, job);
    }
    return job;
  }

  private kick(job: JobBuffer): void {
    if (job.flushing) return;
    if (job.timer) {
      clearTimeout(job.timer);
      job.timer = undefined;
    }
    job.flushing = this.flushLoop(job).finally(() => {
      job.flushing = undefined;
      // Entries that arrived during the last report wait for their own timer.
      if (job.nextSeq > job.flushedSeq && !job.timer && !this.options.signal.aborted) {
        if (job.nextSeq - job.flushedSeq >= this.options.flushEntries || job.forceThrough > job.flushedSeq) {
          this.kick(job);
        } else {
          job.timer = setTimeout(() => {
            job.timer = undefined;
            job.forceThrough = Math.max(job.forceThrough, job.nextSeq);
            this.kick(job);
          }, this.options.flushMs);
        }
      }
    });
  }

  private async flushLoop(job: JobBuffer): Promise<void> {
    const { flushEntries } = this.options;
    while (job.groups.length > 0 && !this.options.signal.aborted) {
      const pending = job.nextSeq - job.flushedSeq;
      if (pending < flushEntries && job.forceThrough <= job.flushedSeq) return;
      const group = job.groups[0] as Group;
      const n = Math.min(flushEntries, group.ids.length);
      const request = {
        jobId: job.jobId,
        epoch: group.epoch,
        ids: group.ids.slice(0, n),
        scores: group.kind & 1 ? group.scores.slice(0, n) : [],
        losses: group.kind & 2 ? group.losses.slice(0, n) : [],
      };
      const error = await this.send(job, request);
      if (error?.code === 'SADP_SCORES_NOT_DURABLE') {
        // The scorer cannot make scores durable: give up everything buffered
        // for the job (later reports would wait the same timeout again).
        job.groups = [];
        this.settle(job, job.nextSeq, error);
        return;
      }
      group.ids.splice(0, n);
      if (group.kind & 1) group.scores.splice(0, n);
      if (group.kind & 2) group.losses.splice(0, n);
      if (group.ids.length === 0) job.groups.shift();
      this.settle(job, job.flushedSeq + n, error);
    }
  }

  /**
   * Sends one report, retrying transient failures for at most
   * durableTimeoutMs; returns the final error of a rejected or given-up report.
   */
  private async send(
    job: JobBuffer,
    request: { jobId: string; epoch: number; ids: number[]; scores: number[]; losses: number[] },
  ): Promise<SadpError | undefined> {
    const { scorer, logger, metrics, signal, durableTimeoutMs } = this.options;
    const { jobId } = job;
    let firstFailureAt: number | undefined;
    let attempts = 0;
    let timedOut = false;
    try {
      await retry(
        () => {
          attempts++;
          return scorer.reportScores(request, { signal });
        },
        {
          ...FORWARD_RETRY,
          classify: (err) => {
            if (!isRetryableScorerError(err)) return false;
            const now = performance.now();
            firstFailureAt ??= now;
            timedOut = now - firstFailureAt >= durableTimeoutMs;
            return !timedOut;
          },
          signal,
          what: `report of scores of job ${jobId}`,
          onRetry: (err, attempt, delayMs) => {
            this.stats.retries++;
            metrics.scoreReports.inc({ outcome: 'retry' });
            logger.warn(
              {
                job: jobId,
                epoch: request.epoch,
                entries: request.ids.length,
                attempt,
                delayMs,
                err: errorMessage(err),
              },
              'ReportScores failed; retrying',
            );
          },
        },
      );
      this.stats.forwarded += request.ids.length;
      metrics.scoresForwarded.inc(request.ids.length);
      metrics.scoreReports.inc({ outcome: 'ok' });
      return undefined;
    } catch (err) {
      if (signal.aborted) {
        return new SadpError(
          'SADP_CANCELLED',
          `loader closed before scores of job ${jobId} reached the scorer`,
          {
            status: Status.UNAVAILABLE,
            cause: err,
          },
        );
      }
      if (timedOut) return this.gaveUp(job, request.epoch, attempts, err);
      const e = scorerError(
        err,
        `report of ${request.ids.length} scores of job ${jobId} epoch ${request.epoch}`,
      );
      this.stats.rejected += request.ids.length;
      metrics.scoreReports.inc({ outcome: 'rejected' });
      metrics.scoresDropped.inc(request.ids.length);
      logger.error(
        { job: jobId, epoch: request.epoch, entries: request.ids.length, err: e.message },
        'scorer rejected scores',
      );
      return e;
    }
  }

  /** The error for every entry of `job` after durableTimeoutMs of transient failures; counts and logs them. */
  private gaveUp(job: JobBuffer, epoch: number, attempts: number, cause: unknown): SadpError {
    const { scorer, logger, metrics, durableTimeoutMs } = this.options;
    const pending = job.nextSeq - job.flushedSeq;
    const epochs = [...new Set(job.groups.map((g) => g.epoch))].sort((a, b) => a - b);
    const where = epochs.length > 1 ? `epochs ${epochs.join(', ')}` : `epoch ${epoch}`;
    this.stats.notDurable += pending;
    metrics.scoreReports.inc({ outcome: 'gave_up' });
    metrics.scoresNotDurable.inc(pending);
    logger.error(
      {
        job: job.jobId,
        epochs,
        entries: pending,
        attempts,
        scorer: scorer.address,
        err: errorMessage(cause),
      },
      'scores not durable at the scorer; failing the streams that carried them',
    );
    return new SadpError(
      'SADP_SCORES_NOT_DURABLE',
      `${pending} scores of job ${job.jobId} ${where} are not durable: the scorer at ${scorer.address} ` +
        `failed ${attempts} ReportScores attempts over ${durableTimeoutMs} ms (scoreDurableTimeoutMs, ` +
        `last: ${errorMessage(cause)}). The trainer keeps the unconfirmed acks and resends them when it reconnects`,
      { status: Status.UNAVAILABLE, cause },
    );
  }

  private settle(job: JobBuffer, through: number, error: SadpError | undefined): void {
    const done = through - job.flushedSeq;
    job.flushedSeq = through;
    this.stats.buffered -= done;
    this.options.metrics.scoresBuffered.dec(done);
    while (job.tickets.length > 0 && (job.tickets[0] as PendingTicket).endSeq <= through) {
      const t = (job.tickets.shift() as PendingTicket).ticket;
      if (error) t.failed(error);
      else t.durable();
    }
    // A ticket whose entries straddle a failed report fails too.
    if (error && job.tickets.length > 0) {
      const first = job.tickets[0] as PendingTicket;
      if (first.startSeq < through) {
        job.tickets.shift();
        first.ticket.failed(error);
      }
    }
    if (!this.full(job.jobId)) for (const w of job.roomWaiters.splice(0)) w();
  }
}
