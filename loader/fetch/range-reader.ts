// The range reader: fetches exactly the selected samples of a dataset from
// its shards with few, merged byte-range GETs, bounded concurrency and
// retries, then cuts the bytes into tar members checked against the index.
// Its options and their defaults are in reader-config.ts, its metrics in
// reader-metrics.ts.
import { setMaxListeners } from 'node:events';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { abortWith, cancelledError } from '../../common/signals.js';
import { SadpError, Status, isSadpError } from '../../common/errors.js';
import { isAbsoluteUrl } from '../../storage/index.js';
import type { Dataset } from '../shards/index.js';
import { fetchRange, type FetchObserver, type RangeRequest, type RetryConfig } from './fetch-range.js';
import { createPool, forEachLimited } from '../../common/pool.js';
import { sortUniqueIds, type RangePlan } from './range-plan.js';
import { createCostEstimator, type CostEstimator, type CostProbe } from './cost-estimator.js';
import { createInFlightLimit, type InFlightLimit } from './in-flight-limit.js';
import { breakEvenGapBytes, planReads, type ReadCostModel, type ReadPlan } from './read-planner.js';
import {
  resolveRangeReaderOptions,
  type RangeReaderOptions,
  type ResolvedRangeReaderOptions,
} from './reader-config.js';
import {
  fetchMetrics,
  type FetchMetrics,
  type IoStats,
  type PlannerStats,
  type RangeRequestEvent,
} from './reader-metrics.js';
import { cutSample, type FetchedSample } from './cut.js';
import { createReadThreads, type ReadThreads } from './read-threads.js';
import { createSlabPool, type Arena, type SlabPool } from './slab-pool.js';

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
  /** GETs in flight sized by what the link needs (in-flight-limit.ts), up to `concurrency`. */
  private readonly inFlight: InFlightLimit;
  /** GETs completed since the limit was last resized, and the event loop's use then. */
  private sinceResize = 0;
  private loopAtResize: EventLoopUtilization = performance.eventLoopUtilization();
  private readonly costs: CostEstimator;
  private readonly plannerStats: Omit<
    PlannerStats,
    | 'perRequestUs'
    | 'perByteUs'
    | 'latencyUs'
    | 'concurrency'
    | 'linkPerByteUs'
    | 'breakEvenGapBytes'
    | 'costSamples'
    | 'inFlightLimit'
  >;
  private readonly retry: RetryConfig;
  private readonly observer: FetchObserver;
  private readonly metrics: FetchMetrics | undefined;
  private readonly threads: ReadThreads | undefined;
  /** Recycled range memory; free memory bounded by slabPoolBytes. */
  private readonly slabs: SlabPool;

  constructor(private readonly options: ResolvedRangeReaderOptions) {
    this.slabs = createSlabPool({ maxFreeBytes: options.slabPoolBytes });
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
    // Threaded GETs give the limit nothing it can trust (see in-flight-limit.ts): it stays at its floor.
    this.inFlight = createInFlightLimit({ ceiling: options.concurrency, adaptive: options.threads === 0 });
    this.limiter = createPool(this.inFlight.current);
    this.retry = {
      maxAttempts: options.maxAttempts,
      baseDelayMs: options.baseDelayMs,
      maxDelayMs: options.maxDelayMs,
      idleTimeoutMs: options.idleTimeoutMs,
      random: Math.random,
    };
    this.metrics = options.metrics ? fetchMetrics() : undefined;
    this.costs = createCostEstimator({ concurrency: () => this.limiter.concurrency });
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
      latencyUs: cost.latencyUs ?? 0,
      concurrency: cost.concurrency ?? 1,
      linkPerByteUs: cost.linkPerByteUs ?? 0,
      breakEvenGapBytes: breakEvenGapBytes(cost),
      costSamples: this.costs.samples,
      inFlightLimit: this.limiter.concurrency,
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
      m.costLatency.set(plan.cost.latencyUs ?? 0);
      m.costLinkPerByte.set(plan.cost.linkPerByteUs ?? 0);
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
    // `concurrency` loop calls take ranges in plan order, so this read() holds
    // at most that many waiters in the reader's shared pool (which serves the
    // awaited batch's first, by priority) and GETs, each with one or two abort
    // listeners on the controller.
    const controller = new AbortController();
    setMaxListeners(2 * Math.min(plan.count, this.options.concurrency) + 2, controller.signal);
    using _forward = abortWith(controller, signal);
    try {
      await forEachLimited(
        plan.start,
        { concurrency: this.options.concurrency, signal: controller.signal, what: 'read' },
        async (_start, r) => {
          try {
            await this.limiter.run(
              () => this.fetchAndCut(dataset, plan, r, byId, observer, controller.signal, arena),
              controller.signal,
              priority,
            );
          } catch (err) {
            controller.abort(err);
            throw err;
          }
        },
      );
    } catch (err) {
      if (signal?.aborted) throw cancelledError(signal, 'read');
      throw err instanceof Error ? err : new SadpError('SADP_INTERNAL', String(err));
    }
    if (signal?.aborted) throw cancelledError(signal, 'read');

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

  /** A GET completed: the cost model sees it, and every RESIZE_EVERY GETs the limit on GETs in flight follows. */
  private ended(probe: CostProbe, bytes: number): void {
    this.costs.end(probe, bytes);
    if (++this.sinceResize < RESIZE_EVERY) return;
    this.sinceResize = 0;
    const loop = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(loop, this.loopAtResize).utilization;
    this.loopAtResize = loop;
    this.limiter.concurrency = this.inFlight.update(this.costs.throughput(), busy);
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
      this.ended(probe, end - start);
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
          { ...observer, firstByte: () => this.costs.firstByte(probe) },
          signal,
          (n) => arena.alloc(n),
        );
      } catch (err) {
        this.costs.cancel(probe);
        throw err;
      }
      this.ended(probe, end - start);
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

/** GETs between two resizes of the in-flight limit (each scans the recent first bytes). */
const RESIZE_EVERY = 16;

/** Stores a read thread can open from the shard's URL alone. */
const THREADED_STORE = /^(s3|file):\/\//;

/** Full URL of a shard for messages; keys may already be absolute URLs. */
function objectLabel(dataset: Dataset, key: string): string {
  return isAbsoluteUrl(key) ? key : `${dataset.store.url}/${key}`;
}
