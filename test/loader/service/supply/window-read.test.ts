// Window reads seen from the storage side (the fault proxy's request log of
// real GETs against the embedded S3): the batches of a prefetch window are
// planned as one, so each shard is read once per window; a shard dense over
// the window is read as one span even when each batch alone is sparse in it;
// min-bytes stays within its bound; the awaited batch's ranges go first; and
// the window's budget reservation comes back exactly once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createRangeReader,
  type RangeReaderOptions,
  type ReadCostModel,
} from '../../../../loader/fetch/index.js';
import { BatchFetch, type BatchSpec, type FetchDeps } from '../../../../loader/service/supply/batch-fetch.js';
import { createByteBudget } from '../../../../loader/service/supply/byte-budget.js';
import { parseRangeHeader } from '../../../helpers/s3-fault-proxy.js';
import { footprintBytes, SLAB_BYTES } from '../../../../loader/fetch/slab-pool.js';
import { diffSamples, startFixture, useProxiedFixture } from '../../fetch/fixtures.js';

const rig = useProxiedFixture({ samples: 160, shardBytes: 96 * 1024, seed: 5 });

const SHARDS = /\.tar(\?|$)/;
const BATCHES = 4;

interface Get {
  shard: string;
  start: number;
  end: number;
}

function shardIds(s: number): number[] {
  const e = rig.remote.dataset.manifest.shards[s]!;
  return Array.from({ length: e.samples }, (_, k) => e.firstId + k);
}

function shardName(s: number): string {
  return rig.remote.dataset.manifest.shards[s]!.url.split('/').pop()!;
}

/** Batch k holds every BATCHES-th of `ids` from position k (a shuffle spreads a shard over the batches). */
function deal(ids: number[]): BatchSpec[] {
  const ds = rig.remote.dataset;
  return Array.from({ length: BATCHES }, (_, k) => {
    const mine = ids.filter((_, i) => i % BATCHES === k);
    return {
      index: k,
      ids: Uint32Array.from(mine),
      weights: new Float64Array(mine.length).fill(1),
      padded: new Uint8Array(mine.length),
      bytes: mine.reduce((sum, id) => sum + ds.ends[id]! - ds.offsets[id]!, 0),
    };
  });
}

/**
 * Fetches `specs` as one window (`window`) or each batch as its own window,
 * checks every batch's samples against the oracle and that the budget is
 * whole again, and returns the shard GETs the proxy saw, in order.
 */
async function fetchLogged(
  specs: BatchSpec[],
  reader: RangeReaderOptions,
  how: { window: boolean; awaited?: number },
): Promise<Get[]> {
  const from = rig.proxy.requestLog.length;
  const budget = createByteBudget(64 * 1024 * 1024);
  const deps: FetchDeps = { budget, reader: createRangeReader(reader), dataset: rig.remote.dataset };
  const fetches = how.window
    ? BatchFetch.startWindow(specs, deps, how.awaited)
    : specs.flatMap((s) => BatchFetch.startWindow([s], deps, how.awaited));
  for (const f of fetches) {
    assert.equal(diffSamples(f.spec.ids, await f.ready, rig.fx.reference), undefined);
    f.release();
  }
  assert.equal(budget.used, 0, 'every reservation returned');
  return rig.proxy.requestLog
    .slice(from)
    .filter((r) => SHARDS.test(r.path))
    .map((r) => ({ shard: r.path.split('/').pop()!, ...parseRangeHeader(r.range)! }));
}

/** No byte of any shard is requested twice. */
function overlaps(gets: Get[]): number {
  let n = 0;
  for (let i = 0; i < gets.length; i++)
    for (let j = i + 1; j < gets.length; j++) {
      const [a, b] = [gets[i]!, gets[j]!];
      if (a.shard === b.shard && a.start < b.end && b.start < a.end) n++;
    }
  return n;
}

function gaps(ids: number[]): number[] {
  const ds = rig.remote.dataset;
  return ids.slice(1).map((id, k) => ds.offsets[id]! - ds.ends[ids[k]!]!);
}

test('a window reads each shard once: one span per shard for all its batches, where per-batch plans re-read it', async () => {
  const ids = [...shardIds(0), ...shardIds(1)].filter((id) => id % 5 !== 0);
  const specs = deal(ids);
  const options: RangeReaderOptions = {
    planner: 'whole-shard',
    cost: { perRequestUs: 100, perByteUs: 0.001 },
  };
  const window = await fetchLogged(specs, options, { window: true, awaited: 0 });
  assert.deepEqual(
    window.map((g) => g.shard),
    [shardName(0), shardName(1)],
  );
  assert.equal(overlaps(window), 0);
  const ds = rig.remote.dataset;
  for (const [s, g] of window.entries()) {
    const mine = ids.filter((id) => ds.shardIds[id] === s);
    assert.deepEqual([g.start, g.end], [ds.offsets[mine[0]!], ds.ends[mine.at(-1)!]]);
  }
  // The same batches planned one at a time: every batch spans each shard again.
  const perBatch = await fetchLogged(specs, options, { window: false });
  assert.equal(perBatch.length, 2 * BATCHES);
  assert.ok(overlaps(perBatch) > 0);
});

test('under known costs a shard dense over the window is one GET though each batch alone is sparse in it; a sparse shard is read per sample', async () => {
  // Shard 0: all but every 4th sample (dense over the window); shard 1: every 4th (sparse).
  const dense = shardIds(0).filter((_, k) => k % 4 !== 0);
  const sparse = shardIds(1).filter((_, k) => k % 4 === 0);
  const specs = deal([...dense, ...sparse]);
  const windowGapMax = Math.max(...gaps(dense));
  const batchGaps = specs.flatMap((s) =>
    gaps(Array.from(s.ids).filter((id) => rig.remote.dataset.shardIds[id] === 0)),
  );
  const batchGapMin = Math.min(...batchGaps, ...gaps(sparse));
  assert.ok(
    windowGapMax < batchGapMin,
    `fixture: window gaps up to ${windowGapMax}, batch gaps from ${batchGapMin}`,
  );
  // Break-even gap between the two: merging a window's gaps pays, a single batch's does not.
  const cost: ReadCostModel = { perRequestUs: (windowGapMax + batchGapMin) / 2, perByteUs: 1 };
  const window = await fetchLogged(specs, { planner: 'auto', cost }, { window: true });
  const ds = rig.remote.dataset;
  const on = (gets: Get[], s: number): Get[] => gets.filter((g) => g.shard === shardName(s));
  assert.deepEqual(
    on(window, 0).map((g) => [g.start, g.end]),
    [[ds.offsets[dense[0]!], ds.ends[dense.at(-1)!]]],
    'dense shard: one GET over the window',
  );
  // (In offset order: the window starts its ranges in batch order.)
  assert.deepEqual(
    on(window, 1)
      .map((g) => [g.start, g.end])
      .sort((a, b) => a[0]! - b[0]!),
    sparse.map((id) => [ds.offsets[id], ds.ends[id]]),
    'sparse shard: one GET per selected sample',
  );
  // Planned per batch, the dense shard is sparse in every batch: one GET per sample.
  const perBatch = await fetchLogged(specs, { planner: 'auto', cost }, { window: false });
  assert.equal(on(perBatch, 0).length, dense.length);
});

test('min-bytes over a window stays within maxWasteRatio of the selected bytes (storage request log)', async () => {
  const ds = rig.remote.dataset;
  const ids = [...shardIds(0), ...shardIds(1), ...shardIds(2)].filter((id) => id % 3 !== 1);
  const selected = ids.reduce((sum, id) => sum + ds.ends[id]! - ds.offsets[id]!, 0);
  // Requests so dear that every gap would pay: only the bound holds merging back.
  const cost: ReadCostModel = { perRequestUs: 1e9, perByteUs: 1 };
  for (const ratio of [0, 0.05, 0.2]) {
    const gets = await fetchLogged(
      deal(ids),
      { planner: 'min-bytes', cost, maxWasteRatio: ratio },
      {
        window: true,
      },
    );
    const fetched = gets.reduce((sum, g) => sum + g.end - g.start, 0);
    assert.ok(fetched <= (1 + ratio) * selected, `ratio ${ratio}: fetched ${fetched} for ${selected}`);
    assert.equal(overlaps(gets), 0);
    if (ratio === 0) assert.equal(fetched, selected);
  }
});

test("the awaited batch's ranges are read first", async () => {
  // Every other sample of two shards: no two selected samples touch, so
  // with gapBytes 0 each is its own GET; one GET at a time shows the order.
  const ids = [...shardIds(0), ...shardIds(1)].filter((_, i) => i % 2 === 0);
  const specs = deal(ids);
  const ds = rig.remote.dataset;
  for (const awaited of [2, 3]) {
    const gets = await fetchLogged(
      specs,
      { planner: 'ranges', gapBytes: 0, concurrency: 1 },
      { window: true, awaited },
    );
    assert.equal(gets.length, ids.length);
    const urgent = Array.from(specs[awaited]!.ids);
    const key = (shard: number, start: number): string => `${shardName(shard)}@${start}`;
    assert.deepEqual(
      new Set(gets.slice(0, urgent.length).map((g) => `${g.shard}@${g.start}`)),
      new Set(urgent.map((id) => key(ds.shardIds[id]!, ds.offsets[id]!))),
    );
  }
});

test('after the awaited batch, ranges start in batch order: batch k does not wait for the whole window', async () => {
  // As above: every sample its own GET, one GET at a time. Batch k's samples
  // are spread over both shards, so plan (shard) order would interleave them.
  const ids = [...shardIds(0), ...shardIds(1)].filter((_, i) => i % 2 === 0);
  const specs = deal(ids);
  const ds = rig.remote.dataset;
  const key = (id: number): string => `${shardName(ds.shardIds[id]!)}@${ds.offsets[id]!}`;
  for (const [awaited, expected] of [
    [undefined, [0, 1, 2, 3]],
    [2, [2, 0, 1, 3]],
  ] as const) {
    const gets = await fetchLogged(
      specs,
      { planner: 'ranges', gapBytes: 0, concurrency: 1 },
      { window: true, awaited },
    );
    assert.equal(gets.length, ids.length);
    let at = 0;
    for (const k of expected) {
      const batch = Array.from(specs[k]!.ids);
      const seen = gets.slice(at, at + batch.length).map((g) => `${g.shard}@${g.start}`);
      assert.deepEqual(new Set(seen), new Set(batch.map(key)), `awaited ${awaited}: batch ${k}`);
      at += batch.length;
    }
  }
});

test('abandoning a window returns its reservation once; a batch given up alone leaves the others their reads', async () => {
  const ids = [...shardIds(0), ...shardIds(1)];
  const specs = deal(ids);
  const budget = createByteBudget(64 * 1024 * 1024);
  const reader = createRangeReader({ planner: 'ranges', gapBytes: 0 });
  const deps: FetchDeps = { budget, reader, dataset: rig.remote.dataset };
  const fetches = BatchFetch.startWindow(specs, deps, 0);
  await new Promise((resolve) => setImmediate(resolve));
  const reserved = budget.used;
  assert.ok(reserved >= specs.reduce((sum, s) => sum + s.bytes, 0));
  // One batch given up: the others still arrive whole.
  fetches[1]!.dispose();
  for (const k of [0, 2]) {
    assert.equal(diffSamples(specs[k]!.ids, await fetches[k]!.ready, rig.fx.reference), undefined);
    fetches[k]!.release();
    fetches[k]!.release();
  }
  assert.equal(budget.used, reserved, 'held until the last batch of the window is done');
  fetches[3]!.dispose();
  await Promise.allSettled(fetches.map((f) => f.ready));
  // The reservation comes back after the reads settle (a few callbacks later), exactly once.
  for (let i = 0; i < 10 && budget.used > 0; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(budget.used, 0);
  fetches[3]!.dispose();
  assert.equal(budget.used, 0);
});

test('a window reserves the memory its ranges hold: whole slabs for a span larger than one, recycled buffers included', async () => {
  // ~3 KB samples in one 4 MiB shard: spans of several slabs.
  const fx = await startFixture({ samples: 1100, shardBytes: 4 * 1024 * 1024, seed: 9 });
  try {
    const ds = fx.remote;
    const reader = createRangeReader({ planner: 'whole-shard' });
    const budget = createByteBudget(64 * 1024 * 1024);
    const deps: FetchDeps = { budget, reader, dataset: ds };
    const upTo = (bytes: number): number[] => {
      const ids: number[] = [];
      for (let id = 0; id < ds.size && ds.ends[id]! <= bytes; id++) ids.push(id);
      return ids;
    };
    // A 2.5-slab span (a 3-slab buffer, recycled once written), then a 1.6-slab
    // span: the recycled buffer (at most twice the span) would hold 3 slabs
    // where a fresh one holds the 2 the window reserves.
    for (const span of [2.5 * SLAB_BYTES, 1.6 * SLAB_BYTES]) {
      const ids = upTo(span);
      const spec: BatchSpec = {
        index: 0,
        ids: Uint32Array.from(ids),
        weights: new Float64Array(ids.length).fill(1),
        padded: new Uint8Array(ids.length),
        bytes: ids.reduce((sum, id) => sum + ds.ends[id]! - ds.offsets[id]!, 0),
      };
      const [fetch] = BatchFetch.startWindow([spec], deps, 0);
      const samples = await fetch!.ready;
      const held = new Set(samples.flatMap((x) => Object.values(x.fields).map((f) => f.buffer)));
      const planned = ds.ends[ids.at(-1)!]! - ds.offsets[ids[0]!]!;
      assert.equal(budget.used, footprintBytes(planned), 'reserved: the span rounded up to whole slabs');
      assert.ok(budget.used > planned);
      let heldBytes = 0;
      for (const b of held) heldBytes += b.byteLength;
      assert.ok(heldBytes <= budget.used, `holds ${heldBytes} bytes, reserved ${budget.used}`);
      assert.equal(diffSamples(fetch!.spec.ids, samples, fx.reference), undefined);
      fetch!.release();
      assert.equal(budget.used, 0);
    }
  } finally {
    await fx.close();
  }
});
