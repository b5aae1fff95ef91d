// Where the scorer keeps its durable state, on any ObjectStore (a local
// directory or an S3 prefix). One scorer process owns a state prefix: there
// is no lock, so two scorers on one prefix would interleave their logs.
//
// Layout under the store's root:
//   jobs/<jobId>/job.json                 spec (token only as SHA-256), written once
//   jobs/<jobId>/log/<seq>.log            accepted reports, seq = 1, 2, ... (12 digits)
//   jobs/<jobId>/snapshot/<seq>.snap      score table covering logs <= seq
//   jobs/<jobId>/plan/<epoch>.plan        an epoch's plan, written once (10 digits)
import { z } from 'zod';
import { SadpError, Status } from '../../common/errors.js';
import type { ObjectStore } from '../../storage/index.js';
import {
  StateErrorCode,
  decodeLog,
  decodePlanEnvelope,
  decodeSnapshot,
  encodeLog,
  encodePlanEnvelope,
  type ReportRecord,
  type SnapshotRecord,
} from './codec.js';

const POLICIES = ['full', 'random', 'infobatch', 'sadp-loss', 'sadp'] as const;

const jobRecordSchema = z.object({
  format: z.literal('sadp-scorer-job/1'),
  jobId: z.string().min(1),
  datasetSize: z.number().int().min(1),
  policy: z.enum(POLICIES),
  pruneRatio: z.number(),
  /** As given at CreateJob; null when defaulted. */
  maxPruneRatio: z.number().nullable(),
  smoothing: z.number().nullable(),
  effectiveMaxPruneRatio: z.number(),
  effectiveSmoothing: z.number(),
  epochs: z.number().int().min(1),
  /** Decimal u64. */
  seed: z.string().regex(/^\d+$/),
  datasetUrl: z.string(),
  /** Hex SHA-256 of the bearer token; empty when the job has none. */
  tokenSha256: z.string().regex(/^([0-9a-f]{64})?$/),
  createdAt: z.string(),
});

/** The persisted form of a job's spec. */
export type JobRecord = z.infer<typeof jobRecordSchema>;

/** What a listing found for one job. */
export interface JobListing {
  jobId: string;
  hasRecord: boolean;
  logSeqs: number[];
  snapshotSeqs: number[];
  planEpochs: number[];
}

const KEY_RE =
  /^jobs\/([^/]+)\/(?:(job\.json)|log\/(\d{12})\.log|snapshot\/(\d{12})\.snap|plan\/(\d{10})\.plan)$/;

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

export class StateStore {
  constructor(readonly store: ObjectStore) {}

  get url(): string {
    return this.store.url;
  }

  jobKey(jobId: string): string {
    return `jobs/${jobId}/job.json`;
  }
  logKey(jobId: string, seq: number): string {
    return `jobs/${jobId}/log/${pad(seq, 12)}.log`;
  }
  snapshotKey(jobId: string, seq: number): string {
    return `jobs/${jobId}/snapshot/${pad(seq, 12)}.snap`;
  }
  planKey(jobId: string, epoch: number): string {
    return `jobs/${jobId}/plan/${pad(epoch, 10)}.plan`;
  }

  /** Every job with any object under the prefix; keys are sorted within each kind. */
  async listJobs(signal?: AbortSignal): Promise<JobListing[]> {
    const jobs = new Map<string, JobListing>();
    for await (const info of this.store.list('jobs/', { signal })) {
      const m = KEY_RE.exec(info.key);
      // Temp files of an interrupted local put and foreign objects are not ours.
      if (!m) continue;
      const jobId = m[1]!;
      let job = jobs.get(jobId);
      if (!job) {
        job = { jobId, hasRecord: false, logSeqs: [], snapshotSeqs: [], planEpochs: [] };
        jobs.set(jobId, job);
      }
      if (m[2]) job.hasRecord = true;
      else if (m[3]) job.logSeqs.push(Number(m[3]));
      else if (m[4]) job.snapshotSeqs.push(Number(m[4]));
      else if (m[5]) job.planEpochs.push(Number(m[5]));
    }
    const byNumber = (a: number, b: number): number => a - b;
    for (const job of jobs.values()) {
      job.logSeqs.sort(byNumber);
      job.snapshotSeqs.sort(byNumber);
      job.planEpochs.sort(byNumber);
    }
    return [...jobs.values()].sort((a, b) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  }

  async writeJob(record: JobRecord, signal?: AbortSignal): Promise<void> {
    const bytes = Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
    await this.store.put(this.jobKey(record.jobId), bytes, { signal, contentType: 'application/json' });
  }

  async readJob(jobId: string, signal?: AbortSignal): Promise<JobRecord> {
    const key = this.jobKey(jobId);
    const bytes = await this.store.get(key, { signal });
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (err) {
      throw new SadpError(StateErrorCode.CORRUPT, `${this.url}/${key}: not JSON`, {
        status: Status.DATA_LOSS,
        cause: err,
      });
    }
    const parsed = jobRecordSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new SadpError(
        StateErrorCode.CORRUPT,
        `${this.url}/${key}: field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
        { status: Status.DATA_LOSS, cause: parsed.error },
      );
    }
    if (parsed.data.jobId !== jobId) {
      throw new SadpError(StateErrorCode.CORRUPT, `${this.url}/${key}: holds job ${parsed.data.jobId}`, {
        status: Status.DATA_LOSS,
      });
    }
    return parsed.data;
  }

  async writeLog(
    jobId: string,
    seq: number,
    reports: readonly ReportRecord[],
    signal?: AbortSignal,
  ): Promise<number> {
    const bytes = encodeLog(seq, reports);
    await this.store.put(this.logKey(jobId, seq), bytes, { signal });
    return bytes.byteLength;
  }

  async readLog(jobId: string, seq: number, signal?: AbortSignal): Promise<ReportRecord[]> {
    const key = this.logKey(jobId, seq);
    const what = `${this.url}/${key}`;
    const log = decodeLog(await this.store.get(key, { signal }), what);
    if (log.seq !== seq) {
      throw new SadpError(StateErrorCode.CORRUPT, `${what}: holds sequence number ${log.seq}`, {
        status: Status.DATA_LOSS,
      });
    }
    return log.reports;
  }

  /** `bytes` from encodeSnapshot (encoded synchronously when the plan was drawn). */
  async writeSnapshot(jobId: string, seq: number, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.store.put(this.snapshotKey(jobId, seq), bytes, { signal });
  }

  async readSnapshot(
    jobId: string,
    seq: number,
    datasetSize: number,
    signal?: AbortSignal,
  ): Promise<SnapshotRecord> {
    const key = this.snapshotKey(jobId, seq);
    const what = `${this.url}/${key}`;
    const snap = decodeSnapshot(await this.store.get(key, { signal }), datasetSize, what);
    if (snap.seq !== seq) {
      throw new SadpError(StateErrorCode.CORRUPT, `${what}: covers sequence number ${snap.seq}`, {
        status: Status.DATA_LOSS,
      });
    }
    return snap;
  }

  async writePlan(jobId: string, epoch: number, payload: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.writePlanEnvelope(jobId, epoch, encodePlanEnvelope(epoch, payload), signal);
  }

  /** An envelope from encodePlanEnvelope (made off the loop: it copies and hashes the whole plan). */
  async writePlanEnvelope(
    jobId: string,
    epoch: number,
    envelope: Uint8Array,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.store.put(this.planKey(jobId, epoch), envelope, { signal });
  }

  /** The math library's encoded plan; SADP_OBJECT_NOT_FOUND when it was never written. */
  async readPlan(jobId: string, epoch: number, signal?: AbortSignal): Promise<Uint8Array> {
    const key = this.planKey(jobId, epoch);
    return decodePlanEnvelope(await this.store.get(key, { signal }), epoch, `${this.url}/${key}`);
  }

  async deleteLog(jobId: string, seq: number, signal?: AbortSignal): Promise<void> {
    await this.store.delete(this.logKey(jobId, seq), { signal });
  }

  async deleteSnapshot(jobId: string, seq: number, signal?: AbortSignal): Promise<void> {
    await this.store.delete(this.snapshotKey(jobId, seq), { signal });
  }
}
