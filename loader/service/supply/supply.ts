// The supply stage: everything between the shard indexes and a batch in
// memory. It owns the loader's in-flight byte budget, the range reader, the
// prefetch policy (each stream prefetches within its fair share of the
// budget; when anyone has to wait for budget, prefetches beyond each
// stream's share and next-epoch warm batches are given back) and the storage
// I/O accounting. Streams see one StreamSupply each; nothing else of this
// stage is reachable from outside.
import type { IoStats, PlannerStats, RangeReader } from '../../fetch/index.js';
import type { S3Options } from '../../../storage/index.js';
import { createRangeReader, type RangeReaderOptions, type RangeRequestEvent } from '../../fetch/index.js';
import type { EpochLayout } from '../jobs/epoch-layout.js';
import { epochLayout } from '../jobs/epoch-layout.js';
import type { EpochState, JobContext } from '../jobs/job-registry.js';
import { rankOf, type EpochShape, type RankKey } from '../jobs/rank-key.js';
import type { LoaderMetrics } from '../metrics.js';
import { BatchFetch, batchSpec, type FetchDeps } from './batch-fetch.js';
import { createByteBudget, type ByteBudget } from './byte-budget.js';
import { createIoAccounting, type IoAccounting } from './io-accounting.js';
import { PrefetchWindow } from './prefetch-window.js';
import { WarmBatches } from './warm-batches.js';

export interface SupplyOptions {
  inflightBytes: number;
  prefetchBatches: number;
  warmBatchTtlMs: number;
  readerOptions: RangeReaderOptions;
  /** S3 settings for read threads (readerOptions.threads): each opens its own client. */
  threadS3: S3Options | undefined;
  /** Called for every storage GET (tests assert pruned samples are never read). */
  onStorageRequest: ((r: RangeRequestEvent) => void) | undefined;
  metrics: LoaderMetrics;
  /** A batch of (job, epoch) is in memory (the boundary-stall metric). */
  onBatchReady: (jobId: string, epoch: number) => void;
}

/** One stream's batches: the stream says which batch it writes next and takes it when it has credit. */
export interface StreamSupply {
  /** Warm batches adopted when the stream opened. */
  readonly adopted: number;
  /** `batch` is the one to write next: keeps it and up to prefetchBatches - 1 after it fetched or in flight. */
  topUp(batch: number): void;
  /** The fetch of `batch` (started now if a trim dropped it). */
  take(batch: number): BatchFetch;
  /** `batch` was written: its fetch leaves the window. */
  sent(batch: number): void;
  /** Abandons every fetch (the writer is done); the stream still counts for the fair share. */
  dropAll(): void;
  /** Abandons every fetch and leaves the fair-share pool (idempotent). */
  close(): void;
}

export interface SupplyStats {
  inflightBytes: number;
  inflightHighWater: number;
  inflightCapacity: number;
  io: IoStats;
  planner: PlannerStats;
  warmBatchesStarted: number;
}

/** A rank's stream of an epoch, from `cursor` on. */
export interface StreamRequest {
  ctx: JobContext;
  state: EpochState;
  layout: EpochLayout;
  key: RankKey;
  cursor: number;
}

export interface Supply {
  /** The supply of one rank's stream, adopting that rank's warm batches. */
  openStream(request: StreamRequest): StreamSupply;
  /**
   * Prefetches the first batches of every rank of `shape` (except those
   * `skip` names) with whatever budget is free, batch-major and each rank's
   * first batch at the reader's top priority; returns how many started.
   */
  warm(ctx: JobContext, state: EpochState, shape: EpochShape, skip: (key: RankKey) => boolean): number;
  /** Storage bytes this loader received for (job, epoch). */
  bytesReceived(jobId: string, epoch: number): number;
  stats(): SupplyStats;
  /** Gives back warm batches and syncs the I/O metrics (streams close their own supply). */
  close(): void;
  /** Stops the reader's threads, if any (reads after this fail): once the server is shut down. */
  stopReads(): Promise<void>;
}

export function createSupply(options: SupplyOptions): Supply {
  return new SupplyImpl(options);
}

class SupplyImpl implements Supply {
  private readonly budget: ByteBudget;
  private readonly reader: RangeReader;
  private readonly io: IoAccounting;
  private readonly warmBatches: WarmBatches;
  private readonly streams = new Set<StreamSupplyImpl>();
  private warmStarted = 0;

  constructor(private readonly o: SupplyOptions) {
    // The planner's sadp_read_* metrics (mode, mix, cost model) go to /metrics with the loader's.
    this.reader = createRangeReader({ metrics: true, threadS3: o.threadS3, ...o.readerOptions });
    if (o.onStorageRequest) this.reader.onRequest = o.onStorageRequest;
    this.io = createIoAccounting(this.reader, o.metrics);
    this.warmBatches = new WarmBatches(o.metrics, o.warmBatchTtlMs);
    this.budget = createByteBudget(
      o.inflightBytes,
      (delta) => o.metrics.inflightBytes.inc(delta),
      () => this.contended(),
    );
  }

  /** Someone waits for budget: optional reservations go back, latest prefetches first. */
  private contended(): void {
    this.warmBatches.dropAll();
    const share = this.fairShare();
    for (const s of this.streams) s.trim(share);
  }

  fairShare(): number {
    return this.budget.capacity / Math.max(1, this.streams.size);
  }

  private fetchDeps(ctx: JobContext, epoch: number): FetchDeps {
    return {
      budget: this.budget,
      reader: this.reader,
      dataset: ctx.dataset,
      onReady: () => {
        this.o.onBatchReady(ctx.jobId, epoch);
        this.io.sync();
      },
      onReceived: (n) => this.io.add(ctx.jobId, epoch, n),
    };
  }

  openStream({ ctx, state, layout, key, cursor }: StreamRequest): StreamSupply {
    const window = new PrefetchWindow({
      ctx,
      state,
      layout,
      rank: key.rank,
      prefetchBatches: this.o.prefetchBatches,
      fairShare: () => this.fairShare(),
      deps: this.fetchDeps(ctx, key.epoch),
    });
    const warm = this.warmBatches.take(key);
    if (warm) window.adopt(warm, cursor);
    const stream = new StreamSupplyImpl(window, warm?.size ?? 0, () => {
      this.streams.delete(stream);
      this.io.sync();
    });
    this.streams.add(stream);
    return stream;
  }

  warm(ctx: JobContext, state: EpochState, shape: EpochShape, skip: (key: RankKey) => boolean): number {
    const layout = epochLayout(state.plan.ids.length, shape.world, shape.batchSize);
    const first = Math.min(this.o.prefetchBatches, layout.steps);
    const deps = this.fetchDeps(ctx, shape.epoch);
    const perRank = new Map<number, Map<number, BatchFetch>>();
    let started = 0;
    // Each rank's first batches as one window read (as its stream would start
    // them), its first batch's ranges at the reader's top priority.
    for (let rank = 0; rank < shape.world && first > 0; rank++) {
      if (skip(rankOf(shape, rank))) continue;
      const specs = Array.from({ length: first }, (_, i) => batchSpec(state, layout, ctx.dataset, rank, i));
      const fetches = BatchFetch.tryStartWindow(specs, deps, 0);
      if (!fetches) break;
      perRank.set(rank, new Map(fetches.map((f) => [f.spec.index, f])));
      started += fetches.length;
    }
    for (const [rank, batches] of perRank) this.warmBatches.put(rankOf(shape, rank), batches);
    this.warmStarted += started;
    return started;
  }

  bytesReceived(jobId: string, epoch: number): number {
    return this.io.received(jobId, epoch);
  }

  stats(): SupplyStats {
    return {
      inflightBytes: this.budget.used,
      inflightHighWater: this.budget.highWater,
      inflightCapacity: this.budget.capacity,
      io: { ...this.reader.stats },
      planner: this.reader.planner,
      warmBatchesStarted: this.warmStarted,
    };
  }

  close(): void {
    this.warmBatches.dropAll();
    this.io.sync();
  }

  stopReads(): Promise<void> {
    return this.reader.close();
  }
}

class StreamSupplyImpl implements StreamSupply {
  /** The batch the writer is waiting for or writing (never trimmed). */
  private writing = -1;
  private closed = false;

  constructor(
    private readonly window: PrefetchWindow,
    readonly adopted: number,
    private readonly onClose: () => void,
  ) {}

  topUp(batch: number): void {
    this.writing = batch;
    this.window.topUp(batch);
  }

  take(batch: number): BatchFetch {
    return this.window.take(batch);
  }

  sent(batch: number): void {
    this.window.sent(batch);
  }

  trim(share: number): void {
    this.window.trim(share, this.writing);
  }

  dropAll(): void {
    this.window.disposeAll();
  }

  close(): void {
    this.window.disposeAll();
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }
}
