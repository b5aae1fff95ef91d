// Per-job and per-(job, epoch) state shared by every stream of a loader: the
// job (DescribeJob, once), its dataset (manifest and shard indexes opened
// once), and each epoch's plan with its shuffled order, fetched from the
// scorer once no matter how many ranks ask at the same time.
import { onAbort, raceSignal } from '../../../common/signals.js';
import { SadpError, Status } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import type { sadp } from '../../../proto/index.js';
import { openDataset, type Dataset, type DatasetAccess } from '../../shards/index.js';
import { u64ToBigInt, type Plan, type ScorerClient } from '../../../scorer/index.js';
import type { S3Client } from '../../../storage/index.js';
import { shufflePlan, yieldLoop } from './epoch-layout.js';
import { createShuffleThread } from './shuffle-thread.js';
import type { LoaderMetrics } from '../metrics.js';
import type { ShuffleMode } from '../options.js';

/** Plans up to this many ids are shuffled on the event loop (~15 ms at 100k, bench:plan-loop). */
const SHUFFLE_ON_LOOP_MAX_IDS = 100_000;

/** A job as the scorer describes it: enough to check a caller and start an epoch's plan, before the dataset is open. */
export interface JobHead {
  jobId: string;
  job: sadp.v1.Job;
  /** Job seed as the PRNG key. */
  seed: bigint;
  /** K, epochs of the run. */
  epochs: number;
  /** Hex SHA-256 of the job's bearer token; '' when it has none. */
  tokenSha256: string;
}

export interface JobContext extends JobHead {
  dataset: Dataset;
}

export interface EpochState {
  jobId: string;
  epoch: number;
  plan: Plan;
  /** Selected ids in the epoch's shuffled order. */
  order: Uint32Array;
  /** weights[i] belongs to order[i]. */
  weights: Float64Array;
  /** Index in `order` of every dataset id; -1 when not selected. */
  orderIndexOf: Int32Array;
  selectedBytes: number;
  datasetBytes: number;
}

export interface JobRegistryOptions {
  scorer: Pick<ScorerClient, 'describeJob' | 'getPlan'>;
  /** One S3 client (and socket pool) for every job's dataset. */
  s3Client: () => S3Client;
  /** Where datasets may be read from (see loader/shards/dataset-access.ts). */
  datasetAccess: DatasetAccess;
  shuffle: ShuffleMode;
  shuffleBlockShards: number;
  logger: Logger;
  metrics: LoaderMetrics;
  /** Called before the plan of `epoch` is first requested (flushes scores of earlier epochs). */
  beforePlan: (jobId: string, epoch: number, signal: AbortSignal) => Promise<void>;
  /** Aborted when the loader closes. */
  signal: AbortSignal;
}

/** Jobs kept; the least recently used beyond this is forgotten (reopened on demand). */
const MAX_JOBS = 64;
/** Epoch states kept per job: the current one, a late straggler's and the next. */
const MAX_EPOCHS_PER_JOB = 3;

/** A cached promise that is forgotten when it rejects, so the next caller retries. */
function remember<K, V>(map: Map<K, Promise<V>>, key: K, load: () => Promise<V>): Promise<V> {
  const p = load();
  map.set(key, p);
  p.catch(() => {
    if (map.get(key) === p) map.delete(key);
  });
  return p;
}

/** Datasets kept for later jobs on them (jobs hold their own reference). */
const MAX_DATASETS = 8;

export class JobRegistry {
  private readonly datasets = new Map<string, Promise<Dataset>>();
  private readonly heads = new Map<string, Promise<JobHead>>();
  private readonly jobs = new Map<string, Promise<JobContext>>();
  /** Plans requested (plan gate, then GetPlan) per job and epoch, before or while the epoch state is built. */
  private readonly plans = new Map<string, Map<number, Promise<Plan>>>();
  private readonly epochs = new Map<string, Map<number, Promise<EpochState>>>();
  /** Large plans' shuffles, one kept thread for every job and epoch; stopped when the loader closes. */
  private readonly shuffleThread = createShuffleThread();

  constructor(private readonly options: JobRegistryOptions) {
    onAbort(options.signal, () => void this.shuffleThread.close());
  }

  /** The job as the scorer describes it (DescribeJob, once). */
  head(jobId: string, signal?: AbortSignal): Promise<JobHead> {
    let p = this.heads.get(jobId);
    if (!p) {
      p = remember(this.heads, jobId, () => this.loadHead(jobId));
      // Callers refused by the token check leave heads without jobs: bound them too.
      while (this.heads.size > MAX_JOBS) this.heads.delete(this.heads.keys().next().value as string);
    }
    return raceSignal(p, signal, `describing job ${jobId}`);
  }

  /** The job with its dataset open (manifest and shard indexes, once). */
  job(jobId: string, signal?: AbortSignal): Promise<JobContext> {
    let p = this.jobs.get(jobId);
    if (p) {
      this.jobs.delete(jobId);
      this.jobs.set(jobId, p);
    } else {
      p = remember(this.jobs, jobId, () => this.loadJob(jobId));
      while (this.jobs.size > MAX_JOBS) this.forget(this.jobs.keys().next().value as string);
    }
    return raceSignal(p, signal, `loading job ${jobId}`);
  }

  /**
   * The epoch's plan: its plan gate, then GetPlan, started once. Callers
   * start it as soon as the job is described, so the plan and the dataset
   * load side by side. A rejected plan is dropped (the epoch's loader then
   * asks again and sees the error).
   */
  plan(jobId: string, epoch: number): Promise<Plan> {
    let perJob = this.plans.get(jobId);
    if (!perJob) {
      perJob = new Map();
      this.plans.set(jobId, perJob);
      // A job whose dataset never opens is never forgotten through `jobs`: bound plans like heads.
      while (this.plans.size > MAX_JOBS) this.plans.delete(this.plans.keys().next().value as string);
    }
    const map = perJob;
    const p = map.get(epoch) ?? remember(map, epoch, () => this.loadPlan(jobId, epoch));
    while (map.size > MAX_EPOCHS_PER_JOB) map.delete(Math.min(...map.keys()));
    return p;
  }

  /** The epoch's plan and order, loading it (once) when missing. */
  epoch(ctx: JobContext, epoch: number, signal?: AbortSignal): Promise<EpochState> {
    let perJob = this.epochs.get(ctx.jobId);
    if (!perJob) {
      perJob = new Map();
      this.epochs.set(ctx.jobId, perJob);
    }
    let p = perJob.get(epoch);
    if (!p) {
      const map = perJob;
      const loading = this.loadEpoch(ctx, epoch);
      p = loading;
      map.set(epoch, loading);
      loading.catch(() => {
        if (map.get(epoch) === loading) map.delete(epoch);
      });
      // Forget the oldest epochs; streams still using them keep their reference.
      while (map.size > MAX_EPOCHS_PER_JOB) map.delete(Math.min(...map.keys()));
    }
    return raceSignal(p, signal, `loading epoch ${epoch} of job ${ctx.jobId}`);
  }

  private forget(jobId: string): void {
    this.heads.delete(jobId);
    this.jobs.delete(jobId);
    this.plans.delete(jobId);
    this.epochs.delete(jobId);
  }

  private async loadHead(jobId: string): Promise<JobHead> {
    const job = await this.options.scorer.describeJob(jobId, { signal: this.options.signal });
    const spec = job.spec;
    if (!spec) throw new SadpError('SADP_SCORER_ERROR', `scorer returned job ${jobId} without a spec`);
    return {
      jobId,
      job,
      seed: u64ToBigInt(spec.seed),
      epochs: spec.epochs ?? 0,
      tokenSha256: job.tokenSha256,
    };
  }

  private async loadJob(jobId: string): Promise<JobContext> {
    const { logger } = this.options;
    const started = performance.now();
    const head = await this.head(jobId);
    const described = performance.now();
    const spec = head.job.spec;
    const datasetUrl = spec?.datasetUrl ?? '';
    const datasetSize = spec?.datasetSize ?? 0;
    const { epochs } = head;
    const dataset = await this.dataset(datasetUrl);
    if (dataset.size !== datasetSize) {
      throw new SadpError(
        'SADP_DATASET_MISMATCH',
        `job ${jobId} has dataset_size ${datasetSize} but ${datasetUrl} holds ${dataset.size} samples`,
        { status: Status.FAILED_PRECONDITION },
      );
    }
    const opened = performance.now();
    logger.info(
      {
        job: jobId,
        dataset: datasetUrl,
        samples: dataset.size,
        shards: dataset.shardCount,
        epochs,
        describeMs: Math.round(described - started),
        datasetMs: Math.round(opened - described),
      },
      'job opened',
    );
    return { ...head, dataset };
  }

  /**
   * The dataset at `url`, shared by every job on it: a job on a dataset
   * already open here costs one HEAD of its manifest (reopen(): opened again
   * when the ETag changed, i.e. it was re-indexed) instead of the manifest
   * and every shard index. A manifest without an ETag is always read anew.
   */
  private async dataset(url: string): Promise<Dataset> {
    // Cached URLs passed openDataset's location check under this same datasetAccess.
    const { signal } = this.options;
    const cached = this.datasets.get(url);
    if (cached) {
      this.datasets.delete(url);
      this.datasets.set(url, cached);
      const known = await cached.catch(() => undefined);
      if (known?.reopen && known.manifestEtag !== '') {
        const latest = await known.reopen(signal);
        if (latest !== known && this.datasets.get(url) === cached)
          this.datasets.set(url, Promise.resolve(latest));
        return latest;
      }
    }
    const opening = remember(this.datasets, url, () =>
      openDataset(url, {
        client: url.startsWith('s3://') ? this.options.s3Client() : undefined,
        signal,
        access: this.options.datasetAccess,
      }),
    );
    while (this.datasets.size > MAX_DATASETS)
      this.datasets.delete(this.datasets.keys().next().value as string);
    return opening;
  }

  private async loadPlan(jobId: string, epoch: number): Promise<Plan> {
    const { scorer, signal, logger } = this.options;
    const started = performance.now();
    await this.options.beforePlan(jobId, epoch, signal);
    const gated = performance.now();
    const plan = await scorer.getPlan(jobId, epoch, { signal });
    logger.info(
      {
        job: jobId,
        epoch,
        selected: plan.ids.length,
        // Where the plan's time went: the plan gate (barrier, score flush), then GetPlan.
        gateMs: Math.round(gated - started),
        planMs: Math.round(performance.now() - gated),
      },
      'epoch plan fetched',
    );
    return plan;
  }

  private async loadEpoch(ctx: JobContext, epoch: number): Promise<EpochState> {
    const { signal, logger, metrics } = this.options;
    const started = performance.now();
    const plan = await this.plan(ctx.jobId, epoch);
    const fetched = performance.now();
    const { dataset } = ctx;
    if (plan.datasetSize !== dataset.size) {
      throw new SadpError(
        'SADP_DATASET_MISMATCH',
        `plan of job ${ctx.jobId} epoch ${epoch} covers ${plan.datasetSize} examples, the dataset has ${dataset.size}`,
        { status: Status.FAILED_PRECONDITION },
      );
    }
    const task = {
      ids: plan.ids,
      seed: ctx.seed,
      epoch,
      mode: this.options.shuffle,
      blockShards: this.options.shuffleBlockShards,
    };
    // In the shuffle thread at scale (N = 10M is seconds of work); a small
    // plan shuffles on the loop in milliseconds, less than handing it over.
    const perm =
      plan.ids.length <= SHUFFLE_ON_LOOP_MAX_IDS
        ? shufflePlan({ ...task, shardOf: (id) => dataset.shardIds[id] as number })
        : await this.shuffleThread.shuffle(
            { ...task, shardStarts: Uint32Array.from(dataset.manifest.shards, (s) => s.firstId) },
            signal,
            ctx.jobId,
          );
    const shuffled = performance.now();
    const m = plan.ids.length;
    const order = new Uint32Array(m);
    const weights = new Float64Array(m);
    const orderIndexOf = new Int32Array(dataset.size).fill(-1);
    let selectedBytes = 0;
    for (let i = 0; i < m; i++) {
      const j = perm[i] as number;
      const id = plan.ids[j] as number;
      order[i] = id;
      weights[i] = plan.weights[j] as number;
      orderIndexOf[id] = i;
      selectedBytes += (dataset.ends[id] as number) - (dataset.offsets[id] as number);
      if ((i & 0x3ffff) === 0x3ffff) await yieldLoop();
    }
    const datasetBytes = dataset.manifest.bytes;
    metrics.bytesSelected.inc(selectedBytes);
    metrics.bytesSkipped.inc(Math.max(0, datasetBytes - selectedBytes));
    logger.info(
      {
        job: ctx.jobId,
        epoch,
        selected: m,
        datasetSize: dataset.size,
        pruneRatio: plan.pruneRatio,
        selectedBytes,
        datasetBytes,
        digest: plan.digest,
        // Where the epoch's setup time went: waiting for the plan (started
        // with the dataset's load), shuffle, order.
        planWaitMs: Math.round(fetched - started),
        shuffleMs: Math.round(shuffled - fetched),
        ms: Math.round(performance.now() - started),
      },
      'epoch plan loaded',
    );
    return { jobId: ctx.jobId, epoch, plan, order, weights, orderIndexOf, selectedBytes, datasetBytes };
  }
}
