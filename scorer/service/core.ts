// The scorer's state machine, transport-free: jobs, durable score reports,
// plans computed once per epoch, stats. The gRPC server is a thin layer on
// top; an in-process loader can use this directly.
//
// Durability. An accepted report is written to the state store before it is
// applied and acknowledged (write-ahead). Writes are serialized per job and
// group-committed: reports that arrive while a log object is being written go
// together into the next one, so concurrent reporters cost one PUT per round
// trip rather than one each, and memory applies them in log order, which is
// exactly the order a replay uses. When a plan is drawn, the score table it
// was drawn from is snapshotted with the sequence number it covers; once the
// snapshot is durable, the log objects it covers are deleted.
import { forEachLimited } from '../../common/pool.js';
import { timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SadpError, Status, errorMessage, isSadpError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/logger.js';
import type { ObjectStore } from '../../storage/index.js';
import { decodePlan, type EpochPlan } from '../math/index.js';
import { createPlanRunner, type PlanRunner } from './plan-thread.js';
import type { PlanTaskResult } from './plan-task.js';
import { StateStore, recoverJob, type JobRecord, type ReportRecord } from '../state/index.js';
import { Job, type ReportInput } from './job.js';
import { scorerMetrics, type ScorerMetrics } from './metrics.js';
import { checkJobId, firstDifference, resolveJobSpec, sha256Hex, type JobSpecInput } from './spec.js';

export interface ScorerCoreOptions {
  /** Where state lives: a local directory store or an S3 prefix. */
  store: ObjectStore;
  logger?: Logger;
  /**
   * Largest N a job may have. Default 2^28 (268,435,456): the score table
   * takes 17 bytes per example (4.6 GB at the limit) plus plans.
   */
  maxDatasetSize?: number;
  /**
   * Bytes of accepted reports waiting for their log write, per job; beyond
   * it new reports get RESOURCE_EXHAUSTED (retry later). Default 256 MiB:
   * twelve maximal reports, far more than a healthy store ever queues.
   */
  maxQueuedReportBytes?: number;
  /** Largest group commit, in bytes of report data. Default 64 MiB. */
  maxGroupBytes?: number;
  /**
   * Plans kept decoded in memory per job (most recently used); older ones
   * are read back from the store on demand. Default 4 (about 50 MB for an
   * ImageNet-sized job).
   */
  planCacheSize?: number;
  /** Concurrent deletes while compacting. Default 8. */
  compactionConcurrency?: number;
  /**
   * Jobs up to this many examples are planned on the event loop, larger ones
   * in the scorer's one plan thread (started on first use, kept). Default
   * 100,000 (a few ms of loop time; see plan-thread.ts); 0: always the thread.
   */
  planOnLoopMaxExamples?: number;
}

const DEFAULTS = {
  maxDatasetSize: 2 ** 28,
  maxQueuedReportBytes: 256 * 1024 * 1024,
  maxGroupBytes: 64 * 1024 * 1024,
  planCacheSize: 4,
  compactionConcurrency: 8,
} as const;

const CoreErrorCode = {
  JOB_NOT_FOUND: 'SADP_JOB_NOT_FOUND',
  JOB_EXISTS: 'SADP_JOB_EXISTS',
  EPOCH_OUT_OF_RANGE: 'SADP_EPOCH_OUT_OF_RANGE',
  PLAN_NOT_COMPUTED: 'SADP_PLAN_NOT_COMPUTED',
  STATE_WRITE_FAILED: 'SADP_STATE_WRITE_FAILED',
  OVERLOADED: 'SADP_SCORER_OVERLOADED',
  SHUTTING_DOWN: 'SADP_SCORER_SHUTTING_DOWN',
} as const;

/** A job as DescribeJob shows it. The token itself is never kept. */
export interface JobInfo {
  record: JobRecord;
  plannedEpochs: number;
  scoredExamples: number;
  scoresReceived: number;
}

export interface EpochStats {
  jobId: string;
  epoch: number;
  pruneRatio: number;
  expectedSize: number;
  selectedCount: number;
  minProbability: number;
  maxProbability: number;
  maxWeight: number;
  probabilityHistogram: Uint32Array;
  cappingPasses: number;
  smoothingOffset: number;
  floorInfeasible: boolean;
  /** Current values for the job, not as of the plan. */
  scoredFraction: number;
  scoresReceived: number;
  /** 0 when the plan was read back from the store. */
  computeMs: number;
}

export interface ScorerCore {
  readonly stateUrl: string;
  createJob(spec: JobSpecInput, signal?: AbortSignal): Promise<JobInfo>;
  describeJob(jobId: string): JobInfo;
  /** Resolves once the report is durable and applied; returns the entries accepted. */
  reportScores(jobId: string, report: ReportInput, signal?: AbortSignal): Promise<number>;
  /** The plan of `epoch`, computing and persisting it on first use. */
  getPlan(jobId: string, epoch: number): Promise<EpochPlan>;
  /** FAILED_PRECONDITION until the epoch's plan exists (it is never computed as a side effect). */
  getStats(jobId: string, epoch: number): Promise<EpochStats>;
  /** Constant-time check of a trainer's bearer token; true for jobs without one. */
  verifyToken(jobId: string, token: string): boolean;
  jobIds(): string[];
  /** Refuses new work, waits for in-flight writes and compaction. */
  close(): Promise<void>;
}

interface QueuedReport {
  record: ReportRecord;
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface PlanEntry {
  promise: Promise<EpochPlan>;
  settled: boolean;
}

interface JobRuntime {
  job: Job;
  nextSeq: number;
  queue: QueuedReport[];
  queuedBytes: number;
  committing: Promise<void> | undefined;
  /** Decoded plans and in-flight computations, least recently used first. */
  plans: Map<number, PlanEntry>;
  /** Epochs whose plan is durable in the store. */
  plannedEpochs: Set<number>;
  /** Newest snapshot asked for / known durable. */
  snapshotRequested: number;
  snapshotDurable: number;
  /** Log objects and snapshots still in the store, ascending. */
  liveLogs: number[];
  liveSnapshots: number[];
  compaction: Promise<void>;
  /** Set while plan workers read the score table: reports wait to be applied. */
  planHold: { count: number; done: Promise<void>; release: () => void } | undefined;
}

/** Holds report application on `rt` until the returned function is called (nests). */
function holdApply(rt: JobRuntime): () => void {
  if (rt.planHold) rt.planHold.count++;
  else {
    let release = (): void => undefined;
    const done = new Promise<void>((resolve) => (release = resolve));
    rt.planHold = { count: 1, done, release };
  }
  const hold = rt.planHold;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--hold.count === 0) {
      rt.planHold = undefined;
      hold.release();
    }
  };
}

function reportBytes(r: ReportRecord): number {
  return r.ids.byteLength + (r.scores?.byteLength ?? 0) + (r.losses?.byteLength ?? 0);
}

function toInfo(rt: JobRuntime): JobInfo {
  return {
    record: rt.job.record,
    plannedEpochs: rt.plannedEpochs.size,
    scoredExamples: rt.job.scoredCount,
    scoresReceived: rt.job.scoresReceived,
  };
}

class Core implements ScorerCore {
  private readonly jobs = new Map<string, JobRuntime>();
  private readonly creating = new Map<string, Promise<JobInfo>>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly state: StateStore;
  private readonly logger: Logger;
  private readonly config: Required<Omit<ScorerCoreOptions, 'store' | 'logger' | 'planOnLoopMaxExamples'>>;
  private readonly metrics: ScorerMetrics = scorerMetrics();
  private readonly planner: PlanRunner;
  private readonly shutdown = new AbortController();
  private closing: Promise<void> | undefined;

  constructor(options: ScorerCoreOptions) {
    this.state = new StateStore(options.store);
    this.logger = options.logger ?? silentLogger;
    this.config = {
      maxDatasetSize: options.maxDatasetSize ?? DEFAULTS.maxDatasetSize,
      maxQueuedReportBytes: options.maxQueuedReportBytes ?? DEFAULTS.maxQueuedReportBytes,
      maxGroupBytes: options.maxGroupBytes ?? DEFAULTS.maxGroupBytes,
      planCacheSize: Math.max(1, options.planCacheSize ?? DEFAULTS.planCacheSize),
      compactionConcurrency: Math.max(1, options.compactionConcurrency ?? DEFAULTS.compactionConcurrency),
    };
    this.planner = createPlanRunner({
      onLoopMaxExamples: options.planOnLoopMaxExamples,
      onTask: (where, threadStarted) => {
        this.metrics.planTasks.inc({ where });
        if (threadStarted) this.metrics.planThreadsStarted.inc();
      },
    });
  }

  get stateUrl(): string {
    return this.state.url;
  }

  /** Keeps a background promise from being dropped and lets close() wait for it. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const remove = (): void => void this.pending.delete(p);
    p.then(remove, remove);
    return p;
  }

  private checkOpen(): void {
    if (this.closing) {
      throw new SadpError(CoreErrorCode.SHUTTING_DOWN, 'scorer is shutting down', {
        status: Status.UNAVAILABLE,
      });
    }
  }

  private runtime(jobId: string): JobRuntime {
    const rt = this.jobs.get(jobId);
    if (!rt) {
      checkJobId(jobId);
      throw new SadpError(CoreErrorCode.JOB_NOT_FOUND, `job ${jobId} not found in ${this.state.url}`, {
        status: Status.NOT_FOUND,
      });
    }
    return rt;
  }

  private register(
    job: Job,
    nextSeq: number,
    planEpochs: number[],
    logs: number[],
    snapshots: number[],
  ): JobRuntime {
    const rt: JobRuntime = {
      job,
      nextSeq,
      queue: [],
      queuedBytes: 0,
      committing: undefined,
      plans: new Map(),
      plannedEpochs: new Set(planEpochs),
      snapshotRequested: job.appliedSeq,
      snapshotDurable: snapshots.at(-1) ?? 0,
      liveLogs: logs,
      liveSnapshots: snapshots,
      compaction: Promise.resolve(),
      planHold: undefined,
    };
    this.jobs.set(job.jobId, rt);
    this.metrics.jobs.inc();
    return rt;
  }

  async load(): Promise<void> {
    const signal = this.shutdown.signal;
    const listings = await this.state.listJobs(signal);
    for (const listing of listings) {
      const started = performance.now();
      const rec = await recoverJob(
        this.state,
        listing,
        {
          open: (record, snapshot) => new Job(record, snapshot),
          apply: (job, seq, reports) => {
            for (const r of reports) job.applyReport(r);
            job.appliedSeq = seq;
          },
        },
        { logger: this.logger, signal },
      );
      const live = listing.logSeqs.filter((s) => s < rec.nextSeq);
      const liveSnapshots = listing.snapshotSeqs.filter((s) => s <= rec.snapshotSeq);
      const rt = this.register(rec.job, rec.nextSeq, rec.planEpochs, live, liveSnapshots);
      rt.snapshotDurable = rec.snapshotSeq;
      // Replayed logs are not in a snapshot yet: the next plan writes one.
      rt.snapshotRequested = rec.snapshotSeq;
      if (rec.staleLogSeqs.length || rec.staleSnapshotSeqs.length) this.scheduleCompaction(rt);
      this.logger.info(
        {
          jobId: listing.jobId,
          snapshotSeq: rec.snapshotSeq,
          logsReplayed: rec.logsReplayed,
          plannedEpochs: rec.planEpochs.length,
          scoresReceived: rec.job.scoresReceived,
          ms: Math.round(performance.now() - started),
        },
        'job recovered',
      );
    }
  }

  createJob(input: JobSpecInput, signal?: AbortSignal): Promise<JobInfo> {
    this.checkOpen();
    const record = resolveJobSpec(input, { maxDatasetSize: this.config.maxDatasetSize });
    // Concurrent creates of one id queue behind each other, so exactly one writes.
    const prior = this.creating.get(record.jobId) ?? Promise.resolve(undefined);
    const next = prior
      .catch(() => undefined)
      .then(async () => {
        const existing = this.jobs.get(record.jobId);
        if (existing) {
          const diff = firstDifference(existing.job.record, record);
          if (diff !== undefined) {
            throw new SadpError(
              CoreErrorCode.JOB_EXISTS,
              `job ${record.jobId} exists with a different spec.${diff}`,
              { status: Status.ALREADY_EXISTS },
            );
          }
          return toInfo(existing);
        }
        await this.state.writeJob(record, signal);
        const rt = this.register(new Job(record), 1, [], [], []);
        this.logger.info(
          {
            jobId: record.jobId,
            datasetSize: record.datasetSize,
            policy: record.policy,
            epochs: record.epochs,
          },
          'job created',
        );
        return toInfo(rt);
      });
    this.creating.set(record.jobId, next);
    const cleanup = (): void => {
      if (this.creating.get(record.jobId) === next) this.creating.delete(record.jobId);
    };
    next.then(cleanup, cleanup);
    return this.track(next);
  }

  describeJob(jobId: string): JobInfo {
    return toInfo(this.runtime(jobId));
  }

  jobIds(): string[] {
    return [...this.jobs.keys()].sort();
  }

  verifyToken(jobId: string, token: string): boolean {
    const expected = this.runtime(jobId).job.record.tokenSha256;
    if (expected === '') return true;
    return timingSafeEqual(Buffer.from(sha256Hex(token), 'latin1'), Buffer.from(expected, 'latin1'));
  }

  // Async, but synchronous up to the queue push: reports queue in call order.
  async reportScores(jobId: string, report: ReportInput, signal?: AbortSignal): Promise<number> {
    let rt: JobRuntime;
    let record: ReportRecord;
    try {
      this.checkOpen();
      rt = this.runtime(jobId);
      record = rt.job.validateReport(report);
    } catch (err) {
      this.metrics.reportsRejected.inc({ reason: isSadpError(err) ? err.code : 'SADP_INTERNAL' });
      throw err;
    }
    signal?.throwIfAborted();
    const bytes = reportBytes(record);
    if (rt.queuedBytes > 0 && rt.queuedBytes + bytes > this.config.maxQueuedReportBytes) {
      this.metrics.reportsRejected.inc({ reason: CoreErrorCode.OVERLOADED });
      throw new SadpError(
        CoreErrorCode.OVERLOADED,
        `job ${jobId}: ${rt.queuedBytes} bytes of reports are waiting for the state store; retry later`,
        { status: Status.RESOURCE_EXHAUSTED },
      );
    }
    const done = new Promise<void>((resolve, reject) => {
      rt.queue.push({ record, bytes, resolve, reject });
    });
    rt.queuedBytes += bytes;
    rt.committing ??= this.track(this.commitLoop(rt));
    await done;
    return record.ids.length;
  }

  /** Writes queued reports as group commits, in order, until the queue is empty. */
  private async commitLoop(rt: JobRuntime): Promise<void> {
    const { job } = rt;
    while (rt.queue.length > 0) {
      let take = 0;
      let groupBytes = 0;
      while (
        take < rt.queue.length &&
        (take === 0 || groupBytes + rt.queue[take]!.bytes <= this.config.maxGroupBytes)
      ) {
        groupBytes += rt.queue[take]!.bytes;
        take++;
      }
      const group = rt.queue.splice(0, take);
      const seq = rt.nextSeq;
      const started = performance.now();
      try {
        // Not the shutdown signal: an acknowledged-to-be write must finish.
        await this.state.writeLog(
          job.jobId,
          seq,
          group.map((g) => g.record),
        );
      } catch (err) {
        rt.queuedBytes -= groupBytes;
        // The sequence number is reused by the next write, which replaces
        // whatever part of this object may have landed.
        const wrapped = new SadpError(
          CoreErrorCode.STATE_WRITE_FAILED,
          `job ${job.jobId}: report not applied: writing ${this.state.url}/${this.state.logKey(job.jobId, seq)} ` +
            `failed: ${errorMessage(err)}`,
          { status: Status.UNAVAILABLE, cause: err },
        );
        this.logger.warn({ jobId: job.jobId, seq, err }, 'log write failed');
        for (const g of group) {
          this.metrics.reportsRejected.inc({ reason: CoreErrorCode.STATE_WRITE_FAILED });
          g.reject(wrapped);
        }
        continue;
      }
      this.metrics.logWriteSeconds.observe((performance.now() - started) / 1000);
      rt.nextSeq = seq + 1;
      if (rt.liveLogs.at(-1) !== seq) rt.liveLogs.push(seq);
      let entries = 0;
      while (rt.planHold) await rt.planHold.done;
      for (const g of group) {
        job.applyReport(g.record);
        entries += g.record.ids.length;
      }
      job.appliedSeq = seq;
      rt.queuedBytes -= groupBytes;
      this.metrics.scoresReceived.inc({ job: job.jobId }, entries);
      for (const g of group) g.resolve();
    }
    rt.committing = undefined;
  }

  private checkEpoch(rt: JobRuntime, epoch: number): void {
    const k = rt.job.record.epochs;
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= k) {
      throw new SadpError(
        CoreErrorCode.EPOCH_OUT_OF_RANGE,
        `job ${rt.job.jobId}: epoch ${epoch} is outside [0, ${k}) (the job has ${k} epochs)`,
        { status: Status.OUT_OF_RANGE },
      );
    }
  }

  async getPlan(jobId: string, epoch: number): Promise<EpochPlan> {
    const rt = this.runtime(jobId);
    this.checkEpoch(rt, epoch);
    const hit = rt.plans.get(epoch);
    if (hit) {
      rt.plans.delete(epoch);
      rt.plans.set(epoch, hit);
      return hit.promise;
    }
    this.checkOpen();
    const promise = this.track(
      rt.plannedEpochs.has(epoch) ? this.loadPlan(rt, epoch) : this.computePlan(rt, epoch),
    );
    const entry: PlanEntry = { promise, settled: false };
    rt.plans.set(epoch, entry);
    entry.promise.then(
      () => {
        entry.settled = true;
        this.trimPlanCache(rt);
      },
      () => {
        // A failed computation is forgotten so the next request retries.
        if (rt.plans.get(epoch) === entry) rt.plans.delete(epoch);
      },
    );
    return entry.promise;
  }

  private trimPlanCache(rt: JobRuntime): void {
    for (const [epoch, entry] of rt.plans) {
      if (rt.plans.size <= this.config.planCacheSize) break;
      if (entry.settled) rt.plans.delete(epoch);
    }
  }

  private async loadPlan(rt: JobRuntime, epoch: number): Promise<EpochPlan> {
    const plan = decodePlan(await this.state.readPlan(rt.job.jobId, epoch, this.shutdown.signal));
    this.metrics.selectedExamples.set({ job: rt.job.jobId, epoch: String(epoch) }, plan.ids.length);
    return { ...plan, stats: { ...plan.stats, computeMs: 0 } };
  }

  private async computePlan(rt: JobRuntime, epoch: number): Promise<EpochPlan> {
    const { job } = rt;
    // The plan and the snapshot see exactly the scores of log sequence number
    // `seq`: reports are not applied while the worker reads the shared table
    // (commitLoop waits on planHold), so the event loop stays free.
    const seq = job.appliedSeq;
    const wantSnapshot = seq > rt.snapshotRequested;
    if (wantSnapshot) rt.snapshotRequested = seq;
    const release = holdApply(rt);
    const started = performance.now();
    let computed: PlanTaskResult;
    try {
      computed = await this.planner.run(job.planTask(epoch, wantSnapshot), `job ${job.jobId} epoch ${epoch}`);
    } catch (err) {
      if (wantSnapshot && rt.snapshotRequested === seq) rt.snapshotRequested = rt.snapshotDurable;
      throw err;
    } finally {
      release();
    }
    const { plan, envelope, snapshot } = computed;
    // The task's wall time: computeMs plus encoding plus, in a worker, the hand-off.
    const taskMs = performance.now() - started;
    this.metrics.planComputeSeconds.observe({ policy: job.record.policy }, plan.stats.computeMs / 1000);

    const writeSnapshot = async (): Promise<void> => {
      if (!snapshot) return;
      try {
        await this.state.writeSnapshot(job.jobId, seq, snapshot);
      } catch (err) {
        // Snapshots only speed up recovery; the logs they cover stay until one lands.
        if (rt.snapshotRequested === seq) rt.snapshotRequested = rt.snapshotDurable;
        this.logger.warn({ jobId: job.jobId, seq, err }, 'snapshot write failed; logs kept');
        return;
      }
      if (seq > rt.snapshotDurable) rt.snapshotDurable = seq;
      if (rt.liveSnapshots.at(-1) !== seq) {
        rt.liveSnapshots.push(seq);
        rt.liveSnapshots.sort((a, b) => a - b);
      }
      this.scheduleCompaction(rt);
    };
    const [planWrite] = await Promise.allSettled([
      this.state.writePlanEnvelope(job.jobId, epoch, envelope),
      writeSnapshot(),
    ]);
    if (planWrite.status === 'rejected') {
      throw new SadpError(
        CoreErrorCode.STATE_WRITE_FAILED,
        `job ${job.jobId}: plan of epoch ${epoch} not persisted to ${this.state.url}/${this.state.planKey(job.jobId, epoch)}: ` +
          errorMessage(planWrite.reason),
        { status: Status.UNAVAILABLE, cause: planWrite.reason },
      );
    }
    rt.plannedEpochs.add(epoch);
    this.metrics.selectedExamples.set({ job: job.jobId, epoch: String(epoch) }, plan.ids.length);
    this.logger.info(
      {
        jobId: job.jobId,
        epoch,
        selected: plan.ids.length,
        expectedSize: plan.expectedSize,
        scored: job.scoredCount,
        seq,
        computeMs: Math.round(plan.stats.computeMs * 10) / 10,
        taskMs: Math.round(taskMs * 10) / 10,
        digest: plan.digest,
      },
      'plan computed',
    );
    return plan;
  }

  /** Deletes logs and snapshots covered by the newest durable snapshot (serialized per job). */
  private scheduleCompaction(rt: JobRuntime): void {
    rt.compaction = this.track(
      rt.compaction.then(async () => {
        const upTo = rt.snapshotDurable;
        const logs = rt.liveLogs.filter((s) => s <= upTo);
        const snapshots = rt.liveSnapshots.filter((s) => s < upTo);
        if (logs.length === 0 && snapshots.length === 0) return;
        const failed: string[] = [];
        const del = (kind: 'log' | 'snapshot', seq: number) => async (): Promise<void> => {
          try {
            if (kind === 'log') await this.state.deleteLog(rt.job.jobId, seq);
            else await this.state.deleteSnapshot(rt.job.jobId, seq);
          } catch (err) {
            failed.push(`${kind} ${seq}: ${errorMessage(err)}`);
            return;
          }
          if (kind === 'log') rt.liveLogs.splice(rt.liveLogs.indexOf(seq), 1);
          else rt.liveSnapshots.splice(rt.liveSnapshots.indexOf(seq), 1);
        };
        const tasks = [...logs.map((s) => del('log', s)), ...snapshots.map((s) => del('snapshot', s))];
        await forEachLimited(tasks, { concurrency: this.config.compactionConcurrency }, (task) => task());
        if (failed.length) {
          this.logger.warn(
            { jobId: rt.job.jobId, failed: failed.slice(0, 5) },
            'compaction left objects behind',
          );
        } else {
          this.logger.debug(
            { jobId: rt.job.jobId, logs: logs.length, snapshots: snapshots.length, upTo },
            'compacted',
          );
        }
      }),
    );
  }

  async getStats(jobId: string, epoch: number): Promise<EpochStats> {
    const rt = this.runtime(jobId);
    this.checkEpoch(rt, epoch);
    if (!rt.plans.has(epoch) && !rt.plannedEpochs.has(epoch)) {
      throw new SadpError(
        CoreErrorCode.PLAN_NOT_COMPUTED,
        `job ${jobId}: the plan of epoch ${epoch} has not been computed yet (GetPlan computes it)`,
        { status: Status.FAILED_PRECONDITION },
      );
    }
    const plan = await this.getPlan(jobId, epoch);
    const { stats } = plan;
    return {
      jobId,
      epoch,
      pruneRatio: plan.pruneRatio,
      expectedSize: plan.expectedSize,
      selectedCount: plan.ids.length,
      minProbability: stats.minProbability,
      maxProbability: stats.maxProbability,
      maxWeight: stats.maxWeight,
      probabilityHistogram: stats.histogram,
      cappingPasses: stats.cappingPasses,
      smoothingOffset: stats.smoothingOffset,
      floorInfeasible: stats.floorInfeasible,
      scoredFraction: rt.job.scoredCount / rt.job.size,
      scoresReceived: rt.job.scoresReceived,
      computeMs: stats.computeMs,
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // In-flight log writes and plans finish (their callers are waiting);
      // compaction can stop at any point.
      while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
      this.shutdown.abort();
      await this.planner.close();
      this.metrics.jobs.dec(this.jobs.size);
    })();
    return this.closing;
  }
}

/** Opens the state at `options.store` and recovers every job in it. */
export async function openScorerCore(options: ScorerCoreOptions): Promise<ScorerCore> {
  const core = new Core(options);
  await core.load();
  return core;
}
