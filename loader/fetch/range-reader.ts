// The range reader: fetches exactly the selected samples of a dataset from
// its shards with few, merged byte-range GETs, bounded concurrency and
// retries, then cuts the bytes into tar members checked against the index.
import { setMaxListeners } from 'node:events';
import { cancelledError } from '../../common/signals.js';
import { SadpError, Status, isSadpError } from '../../common/errors.js';
import { counter, gauge } from '../../common/metrics.js';
import { isAbsoluteUrl } from '../../storage/index.js';
import type { Dataset } from '../shards/index.js';
import { fetchRange, type FetchObserver, type RangeRequest, type RetryConfig } from './fetch-range.js';
import { createPool } from '../../common/pool.js';
import { sortUniqueIds, type RangePlan } from './range-plan.js';
import { createCostEstimator, type CostEstimator } from './cost-estimator.js';
import {
  READ_PLANNER_MODES,
  breakEvenGapBytes,
  planReads,
  type ReadCostModel,
  type ReadPlan,
  type ReadPlannerMode,
} from './read-planner.js';
import { RANGE_READER_DEFAULTS, RANGE_READER_LIMITS } from './reader-config.js';
import { cutSample, type FetchedSample } from './cut.js';
import { createReadThreads, type ReadThreads } from './read-threads.js';
import { createSlabPool, type Arena, type SlabPool } from './slab-pool.js';
import type { S3Options } from '../../storage/index.js';

export interface RangeReaderOptions {
  /**
   * Merge two byte ranges of the same shard when the gap between them (the
   * pruned samples in between) is below this; contiguous samples are always
   * merged. Default 64 KiB, chosen by bench/io.ts: on ImageNet-shaped samples
   * (lognormal, mean 110 KB) it is the largest swept gap that keeps bytes
   * fetched within 5 % of the selected bytes at every r (measured 1.014-1.023;
   * 128 KiB gives 1.11-1.14), and it saves 8-13 % of the GETs that gap 0
   * needs. For datasets of much smaller samples lower it: a gap spans about
   * gapBytes / (mean sample size) pruned samples.
   */
  gapBytes?: number;
  /**
   * Bound on the bytes of pruned samples a read may fetch, as a fraction of
   * the selected bytes it delivers; default 0.05 (the I/O target: at most 5 %
   * over the selected bytes). It keeps a fixed gapBytes from pulling in dozens
   * of small pruned samples (a 64 KiB gap spans ~25 Fashion-MNIST samples)
   * while leaving ImageNet-sized merges as they are.
   */
  maxWasteRatio?: number;
  /** Cap on one merged GET's length; default 8 MiB (S3's recommended part size). A larger sample gets its own GET. */
  maxRequestBytes?: number;
  /**
   * Global bound on in-flight GETs across all shards and read() calls;
   * default 64. Throughput per GET round trip is the binding limit on a
   * high-latency link: 16 GETs at 50 ms first-byte latency cap a loader at
   * ~290 samples/s, while 64 kept 0.8 of the no-latency rate in bench:loader.
   */
  concurrency?: number;
  /** Attempts per range, first one included; default 5. */
  maxAttempts?: number;
  /** Backoff ceiling of the first retry; default 100 ms, doubling per attempt (full jitter). */
  baseDelayMs?: number;
  /** Upper bound on one backoff; default 5,000 ms. */
  maxDelayMs?: number;
  /** Abort a GET whose headers or body make no progress for this long, and resume it; default 15,000 ms. */
  idleTimeoutMs?: number;
  /**
   * How each read() turns selected samples into GETs (see read-planner.ts):
   * `ranges` (default) is the fixed gapBytes + maxWasteRatio rule; `auto`
   * minimises requests x perRequestUs + bytes x perByteUs with costs
   * measured from this reader's own GETs; `min-bytes` does the same within
   * maxWasteRatio; `whole-shard` reads one span per shard. The default is
   * the mode bench:loader measured fastest (BENCHMARKS.md).
   */
  planner?: ReadPlannerMode;
  /** A fixed cost model instead of the online estimate (tests, benchmarks, dry runs). */
  cost?: ReadCostModel;
  /** Export Prometheus counters (sadp_fetch_*) from common/metrics; default false. */
  metrics?: boolean;
  /**
   * Worker threads that run each range's GET + cut (read-threads.ts), for a
   * loader whose one core saturates; 0 (default) reads on the calling thread.
   * Default 0 by measurement: on a 2-core machine shared with its trainers a
   * thread raised the loader's CPU per sample and did not raise throughput
   * (BENCHMARKS.md). Only s3:// and file:// stores are read in threads.
   */
  threads?: number;
  /** How read threads open s3:// stores (their own client); the loader passes its S3 options. */
  threadS3?: S3Options;
}

/** What the planner chose, cumulative over every read(), and its current cost model. */
export interface PlannerStats {
  mode: ReadPlannerMode;
  /** The cost model the next plan will use. */
  perRequestUs: number;
  perByteUs: number;
  /** perRequestUs / perByteUs: gaps below it are read rather than skipped (auto, min-bytes). */
  breakEvenGapBytes: number;
  /** GETs whose duration fed the estimate. */
  costSamples: number;
  plans: number;
  /** Shards (per plan) read as one span / per-sample ranges / a mix. */
  shardsSpan: number;
  shardsRanges: number;
  shardsMixed: number;
  /** Sum of the plans' modelled time, us. */
  estimatedUs: number;
  /** Sums over the plans: GETs, bytes they request, selected bytes they deliver. */
  requests: number;
  bytesRequested: number;
  bytesSelected: number;
}

export interface IoStats {
  /** GETs issued, retries included. */
  requests: number;
  /** GETs that were retries of a failed or partial attempt. */
  retries: number;
  /**
   * The part of `retries` whose attempt made no progress for `idleTimeoutMs`:
   * a stalled body, or a healthy one queued behind a busy server. Kept apart
   * because only this kind can be caused by load rather than by a fault.
   */
  idleTimeoutRetries: number;
  /** Sum of the lengths of every GET issued (a resumed retry counts only the bytes it asks for). */
  bytesRequested: number;
  /** Body bytes received, partial bodies included. */
  bytesReceived: number;
  /** Sum of the delivered samples' [offset, end) lengths. */
  bytesDelivered: number;
  samplesDelivered: number;
  /** Reads that met a changed shard and were served from the re-indexed dataset. */
  datasetReloads: number;
}

export interface RangeRequestEvent {
  key: string;
  start: number;
  end: number;
  attempt: number;
}

export interface RangeReader {
  /**
   * Fetches exactly these samples (ids of one or more shards), grouped by
   * shard with ranges merged, and resolves in the order of `ids` (a repeated
   * id yields the same object again). The whole result is held in memory:
   * callers bound it by the window of ids they pass.
   */
  read(
    dataset: Dataset,
    ids: ArrayLike<number>,
    signal?: AbortSignal,
    options?: ReadPriority,
  ): Promise<FetchedSample[]>;
  /**
   * Plans `ids` as read() would now (this reader's mode and cost model) and
   * counts the plan in `planner` and the metrics. For callers that plan
   * ahead over several reads (a prefetch window) and then read each range
   * with `asSpan`.
   */
  plan(dataset: Dataset, ids: ArrayLike<number>): ReadPlan;
  /** Cumulative over every read(). */
  readonly stats: IoStats;
  /** The planner's mode, cost model and choices so far. */
  readonly planner: PlannerStats;
  /** Called for every GET issued. */
  onRequest?: (r: RangeRequestEvent) => void;
  /**
   * The caller is done with these samples' bytes (encoded and written): the
   * reader reuses their memory for later reads. Optional; never call it
   * while anything may still read the samples' fields.
   */
  recycle(samples: readonly FetchedSample[]): void;
  /**
   * Memory for several read() calls whose samples are recycled together
   * (a prefetch window's ranges): they share slabs instead of each read
   * starting a slab of its own.
   */
  arena(): Arena;
  /** Stops the read threads, if any (reads after close fail). */
  close(): Promise<void>;
}

/** Lower runs first when GETs queue for the reader's concurrency; default 0. */
export interface ReadPriority {
  priority?: number;
  /** Told the body bytes this read receives (retried partial bodies included), as each GET attempt ends. */
  onReceived?: (bytes: number) => void;
  /**
   * The ids are one range of a plan the caller made with plan(): read them
   * as one span per shard (split only by maxRequestBytes, as planned),
   * without planning or counting them again.
   */
  asSpan?: boolean;
  /** Where the ranges' bytes go (reader.arena()); default a new arena for this read. */
  arena?: Arena;
}

export interface ResolvedRangeReaderOptions {
  gapBytes: number;
  maxWasteRatio: number;
  maxRequestBytes: number;
  concurrency: number;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  idleTimeoutMs: number;
  planner: ReadPlannerMode;
  cost: ReadCostModel | undefined;
  metrics: boolean;
  threads: number;
  threadS3: S3Options | undefined;
}

export const DEFAULT_GAP_BYTES = RANGE_READER_DEFAULTS.gapBytes;
export const DEFAULT_MAX_WASTE_RATIO = RANGE_READER_DEFAULTS.maxWasteRatio;

export function resolveRangeReaderOptions(options: RangeReaderOptions = {}): ResolvedRangeReaderOptions {
  const d = RANGE_READER_DEFAULTS;
  const resolved: ResolvedRangeReaderOptions = {
    gapBytes: options.gapBytes ?? d.gapBytes,
    maxWasteRatio: options.maxWasteRatio ?? d.maxWasteRatio,
    maxRequestBytes: options.maxRequestBytes ?? d.maxRequestBytes,
    concurrency: options.concurrency ?? d.concurrency,
    maxAttempts: options.maxAttempts ?? d.maxAttempts,
    baseDelayMs: options.baseDelayMs ?? d.baseDelayMs,
    maxDelayMs: options.maxDelayMs ?? d.maxDelayMs,
    idleTimeoutMs: options.idleTimeoutMs ?? d.idleTimeoutMs,
    planner: options.planner ?? d.planner,
    cost: options.cost,
    metrics: options.metrics ?? false,
    threads: options.threads ?? d.threads,
    threadS3: options.threadS3,
  };
  const check = (name: keyof ResolvedRangeReaderOptions, ok: boolean): void => {
    if (!ok) {
      throw new SadpError(
        'SADP_INVALID_OPTION',
        `range reader option ${name} = ${JSON.stringify(resolved[name])} is invalid`,
        {
          status: Status.INVALID_ARGUMENT,
        },
      );
    }
  };
  check('gapBytes', Number.isFinite(resolved.gapBytes) && resolved.gapBytes >= 0);
  check('maxWasteRatio', resolved.maxWasteRatio >= 0);
  check('maxRequestBytes', Number.isSafeInteger(resolved.maxRequestBytes) && resolved.maxRequestBytes > 0);
  const limits = RANGE_READER_LIMITS;
  check(
    'concurrency',
    Number.isInteger(resolved.concurrency) &&
      resolved.concurrency >= 1 &&
      resolved.concurrency <= limits.concurrency,
  );
  check(
    'maxAttempts',
    Number.isInteger(resolved.maxAttempts) &&
      resolved.maxAttempts >= 1 &&
      resolved.maxAttempts <= limits.maxAttempts,
  );
  check('baseDelayMs', resolved.baseDelayMs >= 0);
  check('maxDelayMs', resolved.maxDelayMs >= resolved.baseDelayMs);
  check('idleTimeoutMs', resolved.idleTimeoutMs > 0);
  check(
    'threads',
    Number.isInteger(resolved.threads) && resolved.threads >= 0 && resolved.threads <= limits.threads,
  );
  check('planner', (READ_PLANNER_MODES as readonly string[]).includes(resolved.planner));
  check(
    'cost',
    resolved.cost === undefined || (resolved.cost.perRequestUs >= 0 && resolved.cost.perByteUs >= 0),
  );
  return resolved;
}

export function createRangeReader(options: RangeReaderOptions = {}): RangeReader {
  return new RangeReaderImpl(resolveRangeReaderOptions(options));
}

class RangeReaderImpl implements RangeReader {
  readonly stats: IoStats = {
    requests: 0,
    retries: 0,
    idleTimeoutRetries: 0,
    bytesRequested: 0,
    bytesReceived: 0,
    bytesDelivered: 0,
    samplesDelivered: 0,
    datasetReloads: 0,
  };
  onRequest?: (r: RangeRequestEvent) => void;
  private readonly limiter;
  private readonly costs: CostEstimator;
  private readonly plannerStats: Omit<
    PlannerStats,
    'perRequestUs' | 'perByteUs' | 'breakEvenGapBytes' | 'costSamples'
  >;
  private readonly retry: RetryConfig;
  private readonly observer: FetchObserver;
  private readonly metrics: FetchMetrics | undefined;
  private readonly threads: ReadThreads | undefined;
  /** Recycled range memory; free slabs bounded by the concurrency (a slab per GET in flight). */
  private readonly slabs: SlabPool;

  constructor(private readonly options: ResolvedRangeReaderOptions) {
    this.slabs = createSlabPool(options.concurrency);
    if (options.threads > 0) {
      this.threads = createReadThreads(options.threads, {
        s3: options.threadS3,
        retry: {
          maxAttempts: options.maxAttempts,
          baseDelayMs: options.baseDelayMs,
          maxDelayMs: options.maxDelayMs,
          idleTimeoutMs: options.idleTimeoutMs,
        },
      });
    }
    this.limiter = createPool(options.concurrency);
    this.retry = {
      maxAttempts: options.maxAttempts,
      baseDelayMs: options.baseDelayMs,
      maxDelayMs: options.maxDelayMs,
      idleTimeoutMs: options.idleTimeoutMs,
      random: Math.random,
    };
    this.metrics = options.metrics ? fetchMetrics() : undefined;
    this.costs = createCostEstimator({ concurrency: options.concurrency });
    this.plannerStats = {
      mode: options.planner,
      plans: 0,
      shardsSpan: 0,
      shardsRanges: 0,
      shardsMixed: 0,
      estimatedUs: 0,
      requests: 0,
      bytesRequested: 0,
      bytesSelected: 0,
    };
    const stats = this.stats;
    const metrics = this.metrics;
    this.observer = {
      request: (r: RangeRequest) => {
        stats.requests++;
        stats.bytesRequested += r.end - r.start;
        metrics?.requests.inc();
        metrics?.bytes.inc({ kind: 'requested' }, r.end - r.start);
        this.onRequest?.({ ...r });
      },
      received: (n: number) => {
        stats.bytesReceived += n;
        metrics?.bytes.inc({ kind: 'received' }, n);
      },
      retry: (reason) => {
        stats.retries++;
        if (reason === 'idle-timeout') stats.idleTimeoutRetries++;
        metrics?.retries.inc({ reason });
      },
    };
  }

  recycle(samples: readonly FetchedSample[]): void {
    this.slabs.recycle(samples);
  }

  arena(): Arena {
    return this.slabs.arena();
  }

  close(): Promise<void> {
    return this.threads?.close() ?? Promise.resolve();
  }

  get planner(): PlannerStats {
    const cost = this.cost();
    return {
      ...this.plannerStats,
      perRequestUs: cost.perRequestUs,
      perByteUs: cost.perByteUs,
      breakEvenGapBytes: breakEvenGapBytes(cost),
      costSamples: this.costs.samples,
    };
  }

  private cost(): ReadCostModel {
    return this.options.cost ?? this.costs.current();
  }

  plan(dataset: Dataset, ids: ArrayLike<number>): ReadPlan {
    const plan = planReads(dataset, sortUniqueIds(ids, dataset.size), {
      ...this.options,
      mode: this.options.planner,
      cost: this.cost(),
    });
    const ps = this.plannerStats;
    ps.plans++;
    ps.requests += plan.count;
    ps.bytesRequested += plan.bytesRequested;
    ps.bytesSelected += plan.bytesSelected;
    ps.shardsSpan += plan.mix.span;
    ps.shardsRanges += plan.mix.ranges;
    ps.shardsMixed += plan.mix.mixed;
    ps.estimatedUs += plan.estimatedUs;
    if (this.metrics) {
      const m = this.metrics;
      m.planShards.inc({ mode: plan.mode, kind: 'span' }, plan.mix.span);
      m.planShards.inc({ mode: plan.mode, kind: 'ranges' }, plan.mix.ranges);
      m.planShards.inc({ mode: plan.mode, kind: 'mixed' }, plan.mix.mixed);
      m.planEstimate.inc({ mode: plan.mode }, plan.estimatedUs / 1e6);
      m.planRequests.inc({ mode: plan.mode }, plan.count);
      m.planBytes.inc({ mode: plan.mode, kind: 'requested' }, plan.bytesRequested);
      m.planBytes.inc({ mode: plan.mode, kind: 'selected' }, plan.bytesSelected);
      m.costPerRequest.set(plan.cost.perRequestUs);
      m.costPerByte.set(plan.cost.perByteUs);
    }
    return plan;
  }

  async read(
    dataset: Dataset,
    ids: ArrayLike<number>,
    signal?: AbortSignal,
    options: ReadPriority = {},
  ): Promise<FetchedSample[]> {
    const current = dataset.latest?.() ?? dataset;
    try {
      return await this.readFrom(current, ids, signal, options);
    } catch (err) {
      // A shard changed since it was indexed: if the dataset was re-indexed
      // (its manifest's ETag changed) read once more from the new index.
      if (!isSadpError(err, 'SADP_OBJECT_CHANGED') || !current.reopen) throw err;
      const next = await current.reopen(signal);
      if (next === current) throw err;
      if (next.size !== current.size) {
        throw new SadpError(
          'SADP_DATASET_MISMATCH',
          `${current.url} was re-indexed with ${next.size} samples, it had ${current.size}: ${err.message}`,
          { status: Status.FAILED_PRECONDITION, cause: err },
        );
      }
      this.stats.datasetReloads++;
      return await this.readFrom(next, ids, signal, options);
    }
  }

  private async readFrom(
    dataset: Dataset,
    ids: ArrayLike<number>,
    signal: AbortSignal | undefined,
    options: ReadPriority,
  ): Promise<FetchedSample[]> {
    const priority = options.priority ?? 0;
    const onReceived = options.onReceived;
    const observer: FetchObserver = onReceived
      ? {
          ...this.observer,
          received: (n) => {
            this.observer.received(n);
            onReceived(n);
          },
        }
      : this.observer;
    if (signal?.aborted) throw cancelledError(signal, 'read');
    const plan = options.asSpan
      ? planReads(dataset, sortUniqueIds(ids, dataset.size), {
          ...this.options,
          mode: 'whole-shard',
          cost: this.cost(),
        })
      : this.plan(dataset, ids);
    const byId = new Map<number, FetchedSample>();
    const arena = options.arena ?? this.slabs.arena();

    // One controller per read(): the first failure stops the sibling GETs, and
    // read() settles only after every GET it started has settled. At most
    // `concurrency` workers pull ranges in plan order, so this read() holds
    // at most that many limiter waiters and GETs, each with one or two abort
    // listeners on the controller.
    const controller = new AbortController();
    const workers = Math.min(plan.count, this.options.concurrency);
    setMaxListeners(2 * workers + 2, controller.signal);
    const forward = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    let firstError: Error | undefined;
    let next = 0;
    const work = async (): Promise<void> => {
      while (next < plan.count && !controller.signal.aborted) {
        const r = next++;
        try {
          await this.limiter.run(
            () => this.fetchAndCut(dataset, plan, r, byId, observer, controller.signal, arena),
            controller.signal,
            priority,
          );
        } catch (err) {
          firstError ??= err instanceof Error ? err : new SadpError('SADP_INTERNAL', String(err));
          controller.abort(err);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: workers }, work));
    } finally {
      signal?.removeEventListener('abort', forward);
    }
    if (signal?.aborted) throw cancelledError(signal, 'read');
    if (firstError !== undefined) throw firstError;

    // Counted only once the whole read succeeded: a failed read delivers nothing.
    let bytes = 0;
    for (const sample of byId.values()) bytes += sample.bytes;
    this.stats.bytesDelivered += bytes;
    this.stats.samplesDelivered += byId.size;
    this.metrics?.bytes.inc({ kind: 'delivered' }, bytes);
    this.metrics?.samples.inc(byId.size);

    const out = new Array<FetchedSample>(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = byId.get(ids[i] as number) as FetchedSample;
    return out;
  }

  /** A changed shard's error names the samples too: the trainer-facing error says what could not be read. */
  private named(err: unknown, plan: RangePlan, r: number): unknown {
    if (!isSadpError(err, 'SADP_OBJECT_CHANGED')) return err;
    const ids = `${plan.ids[plan.first[r] as number]}..${plan.ids[(plan.first[r + 1] as number) - 1]}`;
    return new SadpError(err.code, `${err.message} (samples ${ids})`, { status: err.status, cause: err });
  }

  private async fetchAndCut(
    dataset: Dataset,
    plan: RangePlan,
    r: number,
    byId: Map<number, FetchedSample>,
    observer: FetchObserver,
    signal: AbortSignal,
    arena: Arena,
  ): Promise<void> {
    const shard = plan.shard[r] as number;
    const key = dataset.shardKey(shard);
    const entry = dataset.manifest.shards[shard];
    if (!entry)
      throw new SadpError('SADP_INDEX_INVALID', `shard ${shard} is not in the manifest of ${dataset.url}`);
    const start = plan.start[r] as number;
    const end = plan.end[r] as number;
    const label = objectLabel(dataset, key);
    const last = plan.first[r + 1] as number;
    if (this.threads && THREADED_STORE.test(label)) {
      const index = dataset.shardIndex(shard);
      const ids: number[] = [];
      const entries = [];
      for (let i = plan.first[r] as number; i < last; i++) {
        const id = plan.ids[i] as number;
        const entry = index.samples[id - index.firstId];
        if (!entry) {
          throw new SadpError('SADP_INDEX_INVALID', `sample ${id} is not in the index of shard ${label}`, {
            status: Status.FAILED_PRECONDITION,
          });
        }
        ids.push(id);
        entries.push(entry);
      }
      let read;
      const probe = this.costs.begin();
      try {
        read = await this.threads.read(
          { label, key, start, end, etag: entry.etag, ids, entries },
          observer,
          signal,
        );
      } catch (err) {
        this.costs.cancel(probe);
        throw this.named(err, plan, r);
      }
      this.costs.end(probe, end - start);
      for (const sample of read.samples) byId.set(sample.id, sample);
      return;
    }
    let buf: Buffer;
    try {
      const probe = this.costs.begin();
      try {
        buf = await fetchRange(
          { store: dataset.store, key, label, start, end, etag: entry.etag },
          this.retry,
          observer,
          signal,
          (n) => arena.alloc(n),
        );
      } catch (err) {
        this.costs.cancel(probe);
        throw err;
      }
      this.costs.end(probe, end - start);
    } catch (err) {
      throw this.named(err, plan, r);
    }
    const index = dataset.shardIndex(shard);
    for (let i = plan.first[r] as number; i < last; i++) {
      const id = plan.ids[i] as number;
      const sample = cutSample(buf, start, index, id, label);
      byId.set(id, sample);
    }
  }
}

/** Stores a read thread can open from the shard's URL alone. */
const THREADED_STORE = /^(s3|file):\/\//;

/** Full URL of a shard for messages; keys may already be absolute URLs. */
function objectLabel(dataset: Dataset, key: string): string {
  return isAbsoluteUrl(key) ? key : `${dataset.store.url}/${key}`;
}

interface FetchMetrics {
  planShards: ReturnType<typeof counter<'mode' | 'kind'>>;
  planEstimate: ReturnType<typeof counter<'mode'>>;
  planRequests: ReturnType<typeof counter<'mode'>>;
  planBytes: ReturnType<typeof counter<'mode' | 'kind'>>;
  costPerRequest: ReturnType<typeof gauge>;
  costPerByte: ReturnType<typeof gauge>;
  requests: ReturnType<typeof counter>;
  retries: ReturnType<typeof counter<'reason'>>;
  bytes: ReturnType<typeof counter<'kind'>>;
  samples: ReturnType<typeof counter>;
}

function fetchMetrics(): FetchMetrics {
  return {
    planShards: counter(
      'sadp_read_plan_shards_total',
      'Shards per read plan, by planner mode and how they were read (span, ranges, mixed)',
      ['mode', 'kind'],
    ),
    planEstimate: counter(
      'sadp_read_plan_estimated_seconds_total',
      'Modelled read time of the plans (requests x per-request cost + bytes x per-byte cost)',
      ['mode'],
    ),
    planRequests: counter('sadp_read_plan_requests_total', 'GETs planned, by planner mode', ['mode']),
    planBytes: counter(
      'sadp_read_plan_bytes_total',
      'Bytes the plans request and the selected bytes they deliver, by planner mode',
      ['mode', 'kind'],
    ),
    costPerRequest: gauge('sadp_read_cost_per_request_us', 'Planner cost model: microseconds per GET'),
    costPerByte: gauge('sadp_read_cost_per_byte_us', 'Planner cost model: microseconds per byte'),
    requests: counter(
      'sadp_fetch_requests_total',
      'Byte-range GETs issued by range readers, retries included',
    ),
    retries: counter('sadp_fetch_retries_total', 'Range GETs retried, by reason', ['reason']),
    bytes: counter('sadp_fetch_bytes_total', 'Bytes requested, received and delivered by range readers', [
      'kind',
    ]),
    samples: counter('sadp_fetch_samples_total', 'Samples delivered by range readers'),
  };
}
