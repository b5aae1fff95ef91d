// The reads of a prefetch window planned as one: the ids of every batch the
// window starts together go through one plan of the reader's planner, so
// each shard is read once for all of them (per-sample ranges, merged spans
// or the whole object, as the cost model decides) instead of once per batch,
// where a span merged for one batch re-reads samples that later batches
// fetch again. Each batch is ready as soon as the ranges holding its samples
// are in; ranges holding samples of the batch a trainer waits on go first
// (reader priority 0), the others as prefetch (priority 1).
//
// Budget: the window reserves what its plan's ranges hold in memory (pruned
// bytes inside merged spans included: the cut samples are views into those
// buffers; a range larger than a slab holds whole slabs, footprintBytes) and
// returns it once its last batch is written or abandoned. Once every batch
// was written, the ranges' memory goes back to the reader's slab pool.
import { cancelledError } from '../../../common/signals.js';
import {
  footprintBytes,
  type Arena,
  type FetchedSample,
  type RangeReader,
  type ReadPlan,
} from '../../fetch/index.js';
import type { Dataset } from '../../shards/index.js';
import type { ByteBudget } from './byte-budget.js';

export interface WindowReadDeps {
  budget: ByteBudget;
  reader: RangeReader;
  dataset: Dataset;
  /** Told the storage bytes received as they arrive (per-epoch accounting). */
  onReceived?: (bytes: number) => void;
}

/** One batch of the window: its ids (repeats allowed) and its selected bytes. */
export interface WindowMember {
  ids: Uint32Array;
  bytes: number;
}

export interface WindowReadOptions {
  /** Index of the member a trainer waits on: its ranges are read first. */
  urgent?: number;
  /** Start only if the budget has room right now (opportunistic prefetch). */
  tryOnly?: boolean;
}

export interface WindowRead {
  readonly plan: ReadPlan;
  /** Bytes reserved from the budget for the whole window: its ranges' memory (footprintBytes). */
  readonly reserved: number;
  /** Member k's samples, in the order of its ids. */
  ready(k: number): Promise<FetchedSample[]>;
  /**
   * Member k was written (`abandoned` false) or given up. The last one
   * returns the reservation, after aborting the reads if any member was
   * given up and waiting for them to settle.
   */
  done(k: number, abandoned: boolean): void;
}

/** Plans the members' ids as one read and starts it; undefined when `tryOnly` and the budget has no room. */
export function startWindowRead(
  members: readonly WindowMember[],
  deps: WindowReadDeps,
  options: WindowReadOptions = {},
): WindowRead | undefined {
  let total = 0;
  for (const m of members) total += m.ids.length;
  const all = new Uint32Array(total);
  let at = 0;
  for (const m of members) {
    all.set(m.ids, at);
    at += m.ids.length;
  }
  const plan = deps.reader.plan(deps.dataset, all);
  let reserved = 0;
  for (let r = 0; r < plan.count; r++)
    reserved += footprintBytes((plan.end[r] as number) - (plan.start[r] as number));
  if (options.tryOnly && !deps.budget.tryAcquire(reserved)) return undefined;
  return new WindowReadImpl(members, deps, plan, reserved, options.urgent, options.tryOnly === true);
}

class WindowReadImpl implements WindowRead {
  private readonly controller = new AbortController();
  private readonly admitted: Promise<Promise<FetchedSample[]>[]>;
  private readonly members: Promise<FetchedSample[]>[];
  private readonly open: Set<number>;
  private held = 0;
  /** Range reads not settled yet (or not started: the window waits for its budget). */
  private pending: number;
  private closed = false;
  private abandoned = false;
  private firstError: unknown;
  /** Each range read's samples, kept to hand their memory back (reader.recycle) once every batch is written. */
  private readonly results: FetchedSample[][] = [];
  /** One arena for all the window's ranges: per-sample ranges share slabs, recycled together. */
  private readonly arena: Arena;

  constructor(
    members: readonly WindowMember[],
    private readonly deps: WindowReadDeps,
    readonly plan: ReadPlan,
    readonly reserved: number,
    urgent: number | undefined,
    preReserved: boolean,
  ) {
    if (preReserved) this.held = reserved;
    this.arena = deps.reader.arena();
    this.pending = plan.count;
    this.open = new Set(members.keys());
    const { ids, first, count } = plan;
    // Position of each id in plan.ids, and the range holding each position.
    const position = new Map<number, number>();
    const rangeAt = new Uint32Array(ids.length);
    for (let r = 0; r < count; r++) {
      for (let i = first[r] as number; i < (first[r + 1] as number); i++) {
        position.set(ids[i] as number, i);
        rangeAt[i] = r;
      }
    }
    const priority = new Uint8Array(count).fill(1);
    const urgentIds = urgent === undefined ? undefined : members[urgent]?.ids;
    if (urgentIds) for (const id of urgentIds) priority[rangeAt[position.get(id) as number] as number] = 0;
    // The first member each range serves: ranges start in that order, so
    // batch k is ready once the ranges of batches up to k are in, rather than
    // when the plan's shard order reaches its last sample (a window-wide barrier).
    const needed = new Uint32Array(count).fill(members.length);
    members.forEach((m, k) => {
      for (const id of m.ids) {
        const r = rangeAt[position.get(id) as number] as number;
        if (k < (needed[r] as number)) needed[r] = k;
      }
    });
    const order = Array.from({ length: count }, (_, r) => r).sort(
      (a, b) =>
        (priority[a] as number) - (priority[b] as number) ||
        (needed[a] as number) - (needed[b] as number) ||
        a - b,
    );
    this.admitted = this.admit(preReserved).then(() => this.startRanges(priority, order));
    this.admitted.catch(() => undefined);
    this.members = members.map((m) => this.collect(m.ids, position, rangeAt));
    for (const p of this.members) p.catch(() => undefined);
  }

  ready(k: number): Promise<FetchedSample[]> {
    return this.members[k] as Promise<FetchedSample[]>;
  }

  done(k: number, abandoned: boolean): void {
    if (!this.open.delete(k)) return;
    if (abandoned) this.abandoned = true;
    if (this.open.size > 0) return;
    this.closed = true;
    // Every batch written: the reads all settled (each batch awaited its own),
    // and every part was serialized, so no message still points at the bytes.
    if (!this.abandoned && this.pending === 0) {
      for (const samples of this.results) this.deps.reader.recycle(samples);
      this.giveBack();
      return;
    }
    if (this.abandoned) this.controller.abort();
    // The bytes go back once every read settled: until then buffers may still fill.
    this.admitted.then(
      (reads) => Promise.allSettled(reads).then(() => this.giveBack()),
      () => this.giveBack(),
    );
  }

  private async admit(preReserved: boolean): Promise<void> {
    if (preReserved) return;
    await this.deps.budget.acquire(this.reserved, this.controller.signal);
    this.held = this.reserved;
    if (this.closed && this.abandoned) throw cancelledError(this.controller.signal, 'window read');
  }

  /** Starts one read per planned range in `order`: the awaited batch's ranges first, then in batch order. */
  private startRanges(priority: Uint8Array, order: readonly number[]): Promise<FetchedSample[]>[] {
    const { plan, deps } = this;
    const reads = new Array<Promise<FetchedSample[]>>(plan.count);
    for (const r of order) {
      const level = priority[r] as number;
      const ids = plan.ids.subarray(plan.first[r], plan.first[r + 1]);
      const read = deps.reader
        .read(deps.dataset, ids, this.controller.signal, {
          priority: level,
          onReceived: deps.onReceived,
          asSpan: true,
          arena: this.arena,
        })
        .then(
          (samples) => {
            this.pending--;
            this.results.push(samples);
            return samples;
          },
          (err: unknown) => {
            this.pending--;
            throw err;
          },
        )
        .catch((err: unknown) => {
          // The first failure stops the siblings; every batch that waits reports it.
          this.firstError ??= err;
          this.controller.abort(err);
          throw this.firstError;
        });
      read.catch(() => undefined);
      reads[r] = read;
    }
    return reads;
  }

  private async collect(
    ids: Uint32Array,
    position: Map<number, number>,
    rangeAt: Uint32Array,
  ): Promise<FetchedSample[]> {
    const reads = await this.admitted;
    const first = this.plan.first;
    const needed = new Set<number>();
    for (const id of ids) needed.add(rangeAt[position.get(id) as number] as number);
    const got = new Map<number, FetchedSample[]>();
    await Promise.all([...needed].map(async (r) => got.set(r, await (reads[r] as Promise<FetchedSample[]>))));
    const out = new Array<FetchedSample>(ids.length);
    for (let k = 0; k < ids.length; k++) {
      const i = position.get(ids[k] as number) as number;
      const r = rangeAt[i] as number;
      out[k] = (got.get(r) as FetchedSample[])[i - (first[r] as number)] as FetchedSample;
    }
    return out;
  }

  private giveBack(): void {
    const n = this.held;
    this.held = 0;
    if (n > 0) this.deps.budget.release(n);
  }
}
