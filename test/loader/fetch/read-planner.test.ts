// The cost-aware read planner: decisions under known costs (a dense shard is
// read as one span, a sparse one by per-sample ranges), `min-bytes` never
// over its waste bound, `auto` never modelled slower than another mode, the
// pure estimate equal to the reader's plan, and the same decisions seen from
// the storage side: the fault proxy's request log of a real read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  READ_PLANNER_MODES,
  breakEvenGapBytes,
  createCostEstimator,
  DEFAULT_READ_COST,
  estimateUs,
  createRangeReader,
  estimateReads,
  planReads,
  sortUniqueIds,
  type ReadCostModel,
} from '../../../loader/fetch/index.js';
import { layoutOf } from './sample-layouts.js';
import { parseRangeHeader } from '../../helpers/s3-fault-proxy.js';
import { diffSamples, useProxiedFixture } from './fixtures.js';

const KB = 1000;
/** Break-even gap 100 KB: 100 us per GET, 0.001 us per byte. */
const COST: ReadCostModel = { perRequestUs: 100, perByteUs: 0.001 };
const NO_CAP = { gapBytes: 64 * 1024, maxRequestBytes: Number.MAX_SAFE_INTEGER, maxWasteRatio: 0.05 };

test('under known costs a dense shard is read as one span and a sparse one by per-sample ranges', () => {
  // Two shards of 100 samples of 110 KB: shard 0 keeps 9 of every 10, shard 1 one of every 10.
  const layout = layoutOf([Array<number>(100).fill(110 * KB), Array<number>(100).fill(110 * KB)]);
  const ids = sortUniqueIds(
    Array.from({ length: 200 }, (_, i) => i).filter((i) => (i < 100 ? i % 10 !== 0 : i % 10 === 0)),
    layout.size,
  );
  assert.equal(breakEvenGapBytes(COST), 100 * KB);
  // Every gap is at least one pruned 110 KB sample, above the 100 KB break-even: ranges everywhere.
  const plan = planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost: COST });
  assert.equal(plan.count, 10 + 10);
  // Cheaper bytes (break-even 220 KB): shard 0's single-sample gaps merge, shard 1's 990 KB gaps do not.
  const cheapBytes: ReadCostModel = { perRequestUs: 100, perByteUs: 0.001 / 2.2 };
  const merged = planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost: cheapBytes });
  const shard0 = Array.from(merged.shard).filter((s) => s === 0).length;
  const shard1 = Array.from(merged.shard).filter((s) => s === 1).length;
  assert.equal(shard0, 1, 'dense shard: one GET spanning its selected samples');
  assert.equal(shard1, 10, 'sparse shard: one GET per selected sample');
  assert.deepEqual(merged.mix, { span: 1, ranges: 1, mixed: 0 });
  assert.equal(merged.start[0], 110 * KB);
  assert.equal(merged.end[0], 100 * 110 * KB);
  // whole-shard reads both as spans, ranges (gapBytes 64 KiB) neither.
  const whole = planReads(layout, ids, { ...NO_CAP, mode: 'whole-shard', cost: cheapBytes });
  assert.equal(whole.count, 2);
  const ranges = planReads(layout, ids, { ...NO_CAP, mode: 'ranges', cost: cheapBytes });
  assert.equal(ranges.count, 20);
  // A maxRequestBytes cap splits the dense span at sample boundaries.
  const capped = planReads(layout, ids, {
    ...NO_CAP,
    maxRequestBytes: 4_000 * KB,
    mode: 'auto',
    cost: cheapBytes,
  });
  assert.equal(Array.from(capped.shard).filter((s) => s === 0).length, 3);
});

const scenario = fc
  .array(
    fc.array(
      fc.integer({ min: 1, max: 400 }).map((blocks) => blocks * 512),
      { minLength: 1, maxLength: 40 },
    ),
    { minLength: 1, maxLength: 4 },
  )
  .chain((shards) => {
    const layout = layoutOf(shards);
    return fc.record({
      layout: fc.constant(layout),
      selected: fc.array(fc.boolean(), { minLength: layout.size, maxLength: layout.size }),
      cost: fc.record({
        perRequestUs: fc.double({ min: 0, max: 50_000, noNaN: true }),
        perByteUs: fc.double({ min: 1e-5, max: 0.05, noNaN: true }),
      }),
      maxWasteRatio: fc.oneof(fc.constant(0), fc.constant(0.05), fc.double({ min: 0, max: 2, noNaN: true })),
      maxRequestBytes: fc.oneof(fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 512, max: 300_000 })),
    });
  });

test('every mode covers each selected sample exactly once; min-bytes stays within maxWasteRatio', () => {
  fc.assert(
    fc.property(scenario, ({ layout, selected, cost, maxWasteRatio, maxRequestBytes }) => {
      const ids = sortUniqueIds(
        selected.flatMap((s, i) => (s ? [i] : [])),
        layout.size,
      );
      for (const mode of READ_PLANNER_MODES) {
        const plan = planReads(layout, ids, {
          mode,
          cost,
          maxWasteRatio,
          maxRequestBytes,
          gapBytes: 64 * 1024,
        });
        let covered = 0;
        for (let r = 0; r < plan.count; r++) {
          for (let i = plan.first[r]!; i < plan.first[r + 1]!; i++) {
            const id = plan.ids[i]!;
            assert.equal(layout.shardIds[id], plan.shard[r]);
            assert.ok(layout.offsets[id]! >= plan.start[r]! && layout.ends[id]! <= plan.end[r]!);
            covered++;
          }
          const len = plan.end[r]! - plan.start[r]!;
          const single = plan.first[r + 1]! - plan.first[r]! === 1;
          assert.ok(single || len <= maxRequestBytes, `${mode}: range of ${len} > cap ${maxRequestBytes}`);
        }
        assert.equal(covered, ids.length);
        if (mode === 'min-bytes') {
          assert.ok(
            plan.bytesRequested - plan.bytesSelected <= maxWasteRatio * plan.bytesSelected + 1e-6,
            `waste ${plan.bytesRequested - plan.bytesSelected} over ${maxWasteRatio} x ${plan.bytesSelected}`,
          );
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('without a request cap, auto is never modelled slower than any other mode', () => {
  fc.assert(
    fc.property(scenario, ({ layout, selected, cost, maxWasteRatio }) => {
      const ids = sortUniqueIds(
        selected.flatMap((s, i) => (s ? [i] : [])),
        layout.size,
      );
      const options = { cost, maxWasteRatio, maxRequestBytes: Number.MAX_SAFE_INTEGER, gapBytes: 64 * 1024 };
      const auto = planReads(layout, ids, { ...options, mode: 'auto' });
      for (const mode of READ_PLANNER_MODES) {
        const other = planReads(layout, ids, { ...options, mode });
        assert.ok(auto.estimatedUs <= other.estimatedUs * (1 + 1e-9) + 1e-9, `${mode} beats auto`);
      }
    }),
    { numRuns: 300 },
  );
});

test('estimateReads (plain offsets and lengths, no storage) equals the plan on a layout', () => {
  const shards = [
    [512, 1024, 4096, 512, 2048],
    [8192, 512, 512, 512],
  ];
  const layout = layoutOf(shards);
  const ids = sortUniqueIds([0, 2, 3, 5, 8], layout.size);
  const options = { ...NO_CAP, cost: { perRequestUs: 10, perByteUs: 0.005 } };
  for (const mode of READ_PLANNER_MODES) {
    const plan = planReads(layout, ids, { ...options, mode });
    const selections = shards.map((sizes, s) => {
      const mine = Array.from(ids).filter((id) => layout.shardIds[id] === s);
      return {
        offsets: mine.map((id) => layout.offsets[id]!),
        lengths: mine.map((id) => layout.ends[id]! - layout.offsets[id]!),
        shardBytes: sizes.reduce((a, b) => a + b, 0),
      };
    });
    const estimate = estimateReads(selections, { ...options, mode });
    assert.deepEqual(
      [estimate.requests, estimate.bytesRequested, estimate.bytesSelected, estimate.estimatedUs],
      [plan.count, plan.bytesRequested, plan.bytesSelected, plan.estimatedUs],
      mode,
    );
  }
  assert.throws(
    () => estimateReads([{ offsets: [0], lengths: [600], shardBytes: 512 }], { ...options, mode: 'auto' }),
    { code: 'SADP_INDEX_INVALID' },
  );
});

test('the cost estimator recovers latency and the link’s per-byte time from GET durations', () => {
  const est = createCostEstimator({ cpuPerRequestUs: 0, cpuPerByteUs: 0 });
  assert.deepEqual(est.current(), DEFAULT_READ_COST, 'prior first');
  // 4 GETs in flight, 20 ms first byte, 50 MB/s per connection (0.02 us per byte): 200 MB/s in all.
  for (let i = 0; i < 200; i++) {
    const bytes = 10_000 + ((i * 7919) % 500_000);
    est.observe(bytes, 20_000 + bytes * 0.02, 4);
  }
  const cost = est.current();
  assert.ok(Math.abs((cost.latencyUs as number) - 20_000) < 1, String(cost.latencyUs));
  assert.equal(cost.concurrency, 4);
  assert.ok(Math.abs((cost.linkPerByteUs as number) - 0.005) < 1e-6, String(cost.linkPerByteUs));
  assert.equal(cost.perRequestUs, 0, 'the CPU terms are the given ones');
  // All GETs of one size cannot separate the two: the model stays where it was.
  const flat = createCostEstimator();
  for (let i = 0; i < 100; i++) flat.observe(4096, 1000, 1);
  assert.deepEqual(flat.current(), DEFAULT_READ_COST);
});

test('with the reader concurrency given, latency is the floor of recent first bytes, overlapped across that many GETs', () => {
  // 20 ms first byte, 50 MB/s per connection, every other GET delayed 200 ms more
  // (callbacks queued behind a saturated event loop): the intercept grows, the floor does not.
  const est = createCostEstimator({ cpuPerRequestUs: 0, cpuPerByteUs: 0, concurrency: 64 });
  assert.equal(est.current().concurrency, 64, 'the prior overlaps across the reader’s concurrency');
  let longest = 0;
  for (let i = 0; i < 200; i++) {
    const bytes = 10_000 + ((i * 7919) % 500_000);
    const duration = 20_000 + bytes * 0.02 + (i % 2 === 1 ? 200_000 : 0);
    if (i % 2 === 0) longest = Math.max(longest, duration);
    est.observe(bytes, duration, 4);
  }
  const cost = est.current();
  const latency = cost.latencyUs as number;
  assert.ok(latency >= 20_000 && latency <= longest, String(latency));
  assert.equal(cost.concurrency, 64);
  // Without the reader's concurrency the same floor overlaps across the GETs in flight on average (4).
  const plain = createCostEstimator({ cpuPerRequestUs: 0, cpuPerByteUs: 0 });
  for (let i = 0; i < 200; i++) {
    const bytes = 10_000 + ((i * 7919) % 500_000);
    plain.observe(bytes, 20_000 + bytes * 0.02 + (i % 2 === 1 ? 200_000 : 0), 4);
  }
  assert.equal(plain.current().latencyUs, latency);
  assert.equal(plain.current().concurrency, 4);
  assert.equal(cost.linkPerByteUs, plain.current().linkPerByteUs);
  // A GET's time to first byte, when known, is its latency sample rather than its whole duration.
  const timed = createCostEstimator({ cpuPerRequestUs: 0, cpuPerByteUs: 0, concurrency: 64 });
  for (let i = 0; i < 200; i++) {
    const bytes = 10_000 + ((i * 7919) % 500_000);
    // 64 GETs share 100 MB/s: each body takes 64 x 0.01 us per byte, first bytes after 5 ms.
    timed.observe(bytes, 5_000 + bytes * 0.64, 64, 5_000);
  }
  assert.ok(Math.abs((timed.current().latencyUs as number) - 5_000) < 1, String(timed.current().latencyUs));
  assert.ok(Math.abs((timed.current().linkPerByteUs as number) - 0.01) < 1e-6);
});

test('bytes cost at least the aggregate rate the reader achieved (clock injected: no timing)', () => {
  let t = 0;
  const est = createCostEstimator({ concurrency: 64, now: () => t });
  // Rounds of 8 GETs started together, first bytes after 1 ms, each body at 100 MB/s
  // (0.01 us per byte) as if alone, then 10 ms idle: 640 kB per 2.5 busy ms, ~0.0039 us
  // per byte in aggregate, where the fit alone sees 0.01 us per byte over ~4 in flight.
  const sizes = Array.from({ length: 8 }, (_, k) => 10_000 + k * 20_000);
  for (let round = 0; round < 40; round++) {
    const start = t;
    const probes = sizes.map(() => est.begin());
    t = start + 1;
    for (const p of probes) est.firstByte(p);
    sizes.forEach((bytes, k) => {
      t = start + 1 + bytes * 1e-5;
      est.end(probes[k]!, bytes);
    });
    t += 10;
  }
  const cost = est.current();
  const achieved = 2_500 / 640_000;
  const link = cost.linkPerByteUs as number;
  assert.ok(link > 0.8 * achieved && link < 1.25 * achieved, String(link));
  assert.ok(Math.abs((cost.latencyUs as number) - 1_000) < 1e-6, String(cost.latencyUs));
  assert.equal(cost.concurrency, 64);
});

test('modelled time is the longest of the CPU, latency and link times', () => {
  const cost: ReadCostModel = {
    perRequestUs: 100,
    perByteUs: 0.001,
    latencyUs: 50_000,
    concurrency: 100,
    linkPerByteUs: 0.01,
  };
  // 10 GETs of 1 MB: CPU 1,000 + 10,000, latency 10 x 500, link 100,000.
  assert.equal(estimateUs(10, 10_000_000, cost), 100_000);
  // 1,000 GETs of 1 kB: CPU 100,000 + 1,000, latency 500,000, link 10,000.
  assert.equal(estimateUs(1_000, 1_000_000, cost), 500_000);
  // 1,000 GETs of 1 kB with the latency overlapped across 10,000: CPU binds.
  assert.equal(estimateUs(1_000, 1_000_000, { ...cost, concurrency: 10_000 }), 101_000);
  // CPU terms only: their sum, as before the other terms existed.
  assert.equal(estimateUs(10, 1_000, { perRequestUs: 100, perByteUs: 1 }), 2_000);
  assert.throws(
    () =>
      planReads(layoutOf([[100]]), new Uint32Array([0]), {
        ...NO_CAP,
        mode: 'auto',
        cost: { ...cost, concurrency: 0 },
      }),
    {
      code: 'SADP_INVALID_OPTION',
    },
  );
});

test('under the three-term model: a link-bound window reads per-sample ranges, a request-bound one merges, ample concurrency hides latency', () => {
  // One shard of 100 samples of 110 KB, every other one selected: 50 gaps of 110 KB.
  const layout = layoutOf([Array<number>(100).fill(110 * KB)]);
  const ids = sortUniqueIds(
    Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 2 === 0),
    layout.size,
  );
  const lean = { perRequestUs: 150, perByteUs: 0.0012 };
  // A 1 Gbit/s link (0.008 us per byte) with 20 ms first bytes over 64 GETs: the link binds
  // (50 x 110 KB x 0.008 = 44 ms against 50 x 312 us = 16 ms): every pruned byte costs time.
  const link: ReadCostModel = { ...lean, latencyUs: 20_000, concurrency: 64, linkPerByteUs: 0.008 };
  const onLink = planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost: link });
  assert.equal(onLink.count, 50);
  assert.equal(onLink.bytesRequested, onLink.bytesSelected);
  // The same link with GETs one at a time: latency binds (50 x 20 ms) and all but a few gaps merge.
  const serial = planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost: { ...link, concurrency: 1 } });
  assert.ok(serial.count <= 5, String(serial.count));
  assert.ok(serial.estimatedUs < estimateUs(50, onLink.bytesSelected, { ...link, concurrency: 1 }));
  // 50 ms first bytes with ample concurrency (1,024 GETs in flight, ~49 us each): still ranges.
  const highLatency: ReadCostModel = { ...link, latencyUs: 50_000, concurrency: 1_024 };
  assert.equal(planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost: highLatency }).count, 50);
  // Merging stops where the merged bytes make another term bind: with requests binding at
  // 64 GETs in flight, it merges just enough gaps and no more.
  const partly: ReadCostModel = { ...lean, latencyUs: 50_000, concurrency: 64, linkPerByteUs: 0.005 };
  const p = planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost: partly });
  assert.ok(p.count > 1 && p.count < 50, String(p.count));
  for (const k of [p.count - 1, p.count + 1]) {
    const bytes = p.bytesSelected + (50 - k) * 110 * KB;
    assert.ok(estimateUs(k, bytes, partly) >= p.estimatedUs, `merging ${50 - k} gaps models no faster`);
  }
});

test('small samples on a CPU-bound reader: a dense shard is read whole, and min-bytes stays within its bound', () => {
  // 1,000 samples of 4 KB, 90 % selected: 10 % pruned in single-sample gaps.
  const layout = layoutOf([Array<number>(1_000).fill(4 * KB)]);
  const ids = sortUniqueIds(
    Array.from({ length: 1_000 }, (_, i) => i).filter((i) => i % 10 !== 5),
    layout.size,
  );
  const cost: ReadCostModel = {
    perRequestUs: 150,
    perByteUs: 0.0012,
    latencyUs: 500,
    concurrency: 64,
    linkPerByteUs: 0.001,
  };
  const auto = planReads(layout, ids, { ...NO_CAP, mode: 'auto', cost });
  assert.equal(auto.count, 1);
  assert.deepEqual(auto.mix, { span: 1, ranges: 0, mixed: 0 });
  const minBytes = planReads(layout, ids, { ...NO_CAP, mode: 'min-bytes', cost });
  assert.ok(minBytes.bytesRequested - minBytes.bytesSelected <= 0.05 * minBytes.bytesSelected);
  assert.ok(minBytes.count > auto.count);
});

// From the storage side: what the proxy saw.
const rig = useProxiedFixture({ samples: 120, shardBytes: 96 * 1024, seed: 9 });

const SHARDS = /\.tar(\?|$)/;

/** Reads `ids` and returns the shard GETs the proxy logged, as [start, end) ranges with their path. */
async function readLogged(
  ids: number[],
  options: Parameters<typeof createRangeReader>[0],
): Promise<Array<{ path: string; start: number; end: number }>> {
  const from = rig.proxy.requestLog.length;
  const reader = createRangeReader(options);
  const got = await reader.read(rig.remote.dataset, ids);
  assert.equal(diffSamples(ids, got, rig.fx.reference), undefined);
  return rig.proxy.requestLog
    .slice(from)
    .filter((r) => SHARDS.test(r.path))
    .map((r) => ({ path: r.path, ...parseRangeHeader(r.range)! }));
}

function selectedBytes(ids: number[]): number {
  return ids.reduce((sum, id) => sum + rig.remote.dataset.ends[id]! - rig.remote.dataset.offsets[id]!, 0);
}

test('storage request log: auto reads a dense shard with one GET and a sparse one per sample; min-bytes stays within its bound', async () => {
  const ds = rig.remote.dataset;
  const entry = (s: number) => ds.manifest.shards[s]!;
  // Shard 0 dense (all but every 4th sample), shard 1 sparse (every 4th),
  // and a cost model whose break-even gap lies between the two shards' gaps.
  const dense = Array.from({ length: entry(0).samples }, (_, k) => entry(0).firstId + k).filter(
    (id) => id % 4 !== 0,
  );
  const sparse = Array.from({ length: entry(1).samples }, (_, k) => entry(1).firstId + k).filter(
    (_, k) => k % 4 === 0,
  );
  const gap = (ids: number[]): number[] => ids.slice(1).map((id, k) => ds.offsets[id]! - ds.ends[ids[k]!]!);
  const denseMax = Math.max(...gap(dense));
  const sparseMin = Math.min(...gap(sparse).filter((g) => g > 0));
  assert.ok(denseMax < sparseMin, `fixture: dense gaps up to ${denseMax}, sparse from ${sparseMin}`);
  const cost: ReadCostModel = { perRequestUs: (denseMax + sparseMin) / 2, perByteUs: 1 };
  const ids = [...dense, ...sparse];
  const auto = await readLogged(ids, { planner: 'auto', cost });
  const path0 = auto.filter((r) => r.path.endsWith(entry(0).url.split('/').pop()!));
  const path1 = auto.filter((r) => r.path.endsWith(entry(1).url.split('/').pop()!));
  assert.equal(path0.length, 1, 'dense shard: one GET');
  assert.equal(path0[0]!.start, ds.offsets[dense[0]!]);
  assert.equal(path0[0]!.end, ds.ends[dense.at(-1)!]);
  // Sparse: one GET per selected sample, each exactly the sample.
  assert.equal(path1.length, sparse.length);
  assert.deepEqual(
    path1.map((r) => [r.start, r.end]),
    sparse.map((id) => [ds.offsets[id], ds.ends[id]]),
  );

  for (const ratio of [0, 0.05, 0.2]) {
    const log = await readLogged(ids, { planner: 'min-bytes', cost, maxWasteRatio: ratio });
    const fetched = log.reduce((sum, r) => sum + r.end - r.start, 0);
    assert.ok(
      fetched <= (1 + ratio) * selectedBytes(ids),
      `min-bytes ${ratio}: fetched ${fetched} for ${selectedBytes(ids)} selected`,
    );
    if (ratio === 0) assert.equal(fetched, selectedBytes(ids));
  }
});

test('the reader reports the planner mode, cost model and mix; an unknown mode is refused', async () => {
  const reader = createRangeReader({ planner: 'whole-shard', cost: { perRequestUs: 5, perByteUs: 0.5 } });
  const ids = [0, 2, 4, 6];
  await reader.read(rig.remote.dataset, ids);
  const p = reader.planner;
  assert.equal(p.mode, 'whole-shard');
  assert.equal(p.plans, 1);
  assert.equal(p.perRequestUs, 5);
  assert.equal(p.breakEvenGapBytes, 10);
  assert.ok(p.shardsSpan >= 1);
  assert.ok(p.estimatedUs > 0);
  assert.throws(() => createRangeReader({ planner: 'fastest' as never }), { code: 'SADP_INVALID_OPTION' });
});
