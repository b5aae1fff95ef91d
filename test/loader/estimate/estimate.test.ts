// `sadp estimate` against a real run: a loader on the embedded S3 server
// streams two epochs to two ranks, and the estimate for the same plans (same
// seed, world size, batch size, shuffle and reader options) must match the
// GETs and bytes in the loader's storage request log within 2 %, for each
// read planner mode whose choice the estimate can know (auto and min-bytes
// with a fixed cost model: the online one depends on measured timings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LINK_PRESETS,
  estimateRun,
  layoutOfDataset,
  syntheticLayout,
  resolveRangeReaderOptions,
  uniformSubset,
  type EstimateOptions,
  type RangeReaderOptions,
  type ReadPlannerMode,
  type RunEstimate,
} from '../../../loader/index.js';
import { createLoaderClient } from '../../../trainer/client/index.js';
import { runSadp } from '../../helpers/processes.js';
import { getPlan, streamEpoch, useStack } from '../service/helpers.js';

const WORLD = 2;
const BATCH = 32;
const EPOCHS = 2;
// A break-even gap of 20 kB: several ~3.5 kB samples of a 48 KiB shard, so
// auto merges across pruned samples, min-bytes only within its 5 % budget.
const COST = { perRequestUs: 200, perByteUs: 0.01 };

const stack = useStack();

const within = (got: number, want: number, what: string): void =>
  assert.ok(Math.abs(got - want) <= 0.02 * want, `${what}: estimate ${got}, real ${want}`);

/** Streams EPOCHS epochs through a loader with these reader options; the estimate of the same plans, and the GETs it logged. */
async function realRun(
  readerOptions: RangeReaderOptions,
): Promise<{ est: RunEstimate; gets: number; bytes: number }> {
  const loader = await stack.startLoader({ readerOptions });
  const logStart = stack.requests.length;
  const jobId = await stack.createJob({ epochs: EPOCHS });
  const clients = Array.from({ length: WORLD }, () => createLoaderClient({ address: loader.address }));
  try {
    for (let epoch = 0; epoch < EPOCHS; epoch++)
      await streamEpoch(clients, { job: jobId, epoch, batchSize: BATCH });
  } finally {
    for (const c of clients) c.close();
  }
  // First attempts only: the estimate plans GETs, retries are the link's faults.
  const log = stack.requests.slice(logStart).filter((r) => r.attempt === 1);
  const plans: Awaited<ReturnType<typeof getPlan>>[] = [];
  for (let epoch = 0; epoch < EPOCHS; epoch++) plans.push(await getPlan(stack.scorerClient, jobId, epoch));
  const est = estimateRun({
    dataset: layoutOfDataset(stack.dataset),
    policy: 'sadp',
    pruneRatio: 0.5,
    epochs: EPOCHS,
    worldSize: WORLD,
    batchSize: BATCH,
    link: LINK_PRESETS['s3-standard'],
    seed: 11n, // the rig's job seed: the loader's shuffle key
    reader: readerOptions,
    selectIds: (epoch) => Uint32Array.from(plans[epoch]!.ids),
  });
  assert.deepEqual(
    est.epochs.map((e) => e.selected),
    plans.map((p) => p.ids.length),
  );
  return { est, gets: log.length, bytes: log.reduce((s, r) => s + (r.end - r.start), 0) };
}

const runs = new Map<string, RunEstimate>();
for (const [mode, reader] of [
  ['ranges', { planner: 'ranges' }],
  ['min-bytes', { planner: 'min-bytes', cost: COST }],
  ['auto', { planner: 'auto', cost: COST }],
] as const) {
  test(`the estimate of GETs and bytes matches a real run on the embedded S3 within 2 %: ${mode}`, async () => {
    const { est, gets, bytes } = await realRun(reader);
    process.stdout.write(
      `# ${mode}: real ${gets} GETs, ${bytes} bytes; estimate ${est.total.gets} GETs, ${est.total.bytesFetched} bytes\n`,
    );
    assert.equal(est.planner.mode, mode);
    assert.ok(gets > 0);
    within(est.total.gets, gets, 'GETs');
    within(est.total.bytesFetched, bytes, 'bytes requested');
    runs.set(mode, est);
  });
}

test('the modes checked above plan differently (the comparison can tell them apart)', () => {
  const ranges = runs.get('ranges');
  const minBytes = runs.get('min-bytes');
  const auto = runs.get('auto');
  assert.ok(ranges && minBytes && auto, 'the real-run tests ran');
  // auto merges every gap below 20 kB: fewer GETs, more pruned bytes read.
  assert.ok(
    auto.total.gets < minBytes.total.gets,
    `auto ${auto.total.gets} vs min-bytes ${minBytes.total.gets}`,
  );
  assert.ok(auto.total.bytesFetched > minBytes.total.bytesFetched);
  const selected = minBytes.epochs.reduce((s, e) => s + e.bytesSelected, 0);
  assert.ok(minBytes.total.bytesFetched <= 1.05 * selected, 'min-bytes stays within its waste budget');
});

test('the schedule and the whole-shard comparison follow the policy', () => {
  const dataset = syntheticLayout({ samples: 20_000, meanBytes: 100_000, shardBytes: 64 * 1024 * 1024 });
  const base = {
    dataset,
    pruneRatio: 0.5,
    epochs: 4,
    worldSize: 4,
    batchSize: 64,
    link: LINK_PRESETS['s3-standard'],
    // The fixed merge rule, so GETs per sample follow from the layout alone.
    reader: { planner: 'ranges' },
  } as const;
  const full = estimateRun({ ...base, policy: 'full' });
  const sadp = estimateRun({ ...base, policy: 'sadp' });
  // r = 0.5 -> r_max 0.7: r_k = 2r - r_max + k (2 r_max - 2r) / K = 0.3 + 0.1 k, k = 1..4.
  assert.deepEqual(
    sadp.epochs.map((e) => e.selected),
    [12_000, 10_000, 8_000, 6_000],
  );
  assert.equal(full.epochs[0]!.selected, 20_000);
  // Full data with global shuffle, reads planned per batch: one GET per sample (neighbours rarely share a batch).
  const perBatch = estimateRun({ ...base, policy: 'full', windowBatches: 1 });
  assert.ok(perBatch.total.gets > 0.99 * 4 * 20_000 && perBatch.total.gets <= 4 * 20_000);
  // Planned per prefetch window (the loader's default of 4 batches), neighbours in one window share a GET.
  assert.ok(full.total.gets < perBatch.total.gets);
  assert.equal(full.total.whole.gets, 4 * dataset.shardBytes.length);
  assert.ok(sadp.total.bytesFetched < 0.55 * full.total.bytesFetched);
  const shardBlock = estimateRun({ ...base, policy: 'full', shuffle: 'shard-block' });
  assert.ok(
    shardBlock.total.gets < full.total.gets,
    'shard-block shuffle puts neighbours in one batch more often',
  );
  // S3 Express: same GETs and bytes, less latency.
  const express = estimateRun({ ...base, policy: 'sadp', link: LINK_PRESETS['s3-express-one-zone'] });
  assert.equal(express.total.gets, sadp.total.gets);
  assert.ok(express.total.seconds < sadp.total.seconds);
  assert.equal(uniformSubset(10, 4, 1, 1).length, 4);
});

test('the estimate plans in the loader’s read planner mode, with the link’s cost model', () => {
  const dataset = syntheticLayout({ samples: 20_000, meanBytes: 100_000, shardBytes: 64 * 1024 * 1024 });
  const base = {
    dataset,
    policy: 'sadp',
    pruneRatio: 0.5,
    epochs: 2,
    worldSize: 4,
    batchSize: 64,
    link: LINK_PRESETS['s3-standard'],
  } as const;
  const byMode = (planner: ReadPlannerMode, extra: Partial<EstimateOptions> = {}): RunEstimate =>
    estimateRun({ ...base, reader: { planner }, ...extra });
  // Default: the loader's default mode.
  assert.equal(estimateRun(base).planner.mode, resolveRangeReaderOptions().planner);
  const auto = byMode('auto');
  const ranges = byMode('ranges');
  const whole = byMode('whole-shard');
  // auto reads gaps below the break-even (~300 kB on S3 Standard: 30 ms over 64 GETs in flight).
  assert.ok(auto.planner.breakEvenGapBytes > 100_000);
  assert.ok(auto.total.gets < ranges.total.gets && auto.total.bytesFetched > ranges.total.bytesFetched);
  // whole-shard: one span per shard a read touches, the fewest GETs and the most bytes.
  assert.ok(whole.total.gets < auto.total.gets && whole.total.bytesFetched > auto.total.bytesFetched);
  // A lower-latency link makes a GET cheaper against a byte: auto merges less.
  const express = byMode('auto', { link: LINK_PRESETS['s3-express-one-zone'] });
  assert.ok(express.planner.breakEvenGapBytes < auto.planner.breakEvenGapBytes);
  assert.ok(express.total.gets > auto.total.gets);
  // A fixed cost model is used as given.
  const fixed = estimateRun({
    ...base,
    reader: { planner: 'auto', cost: { perRequestUs: 1, perByteUs: 1 } },
  });
  assert.equal(fixed.planner.breakEvenGapBytes, 1);
  assert.equal(fixed.total.gets, byMode('ranges', { reader: { planner: 'ranges', gapBytes: 0 } }).total.gets);
  // Planning a rank's prefetch window (the loader's default, 4 batches) at once merges across its batches.
  const perBatch = byMode('auto', { windowBatches: 1 });
  assert.equal(auto.planner.windowBatches, 4);
  assert.ok(auto.total.gets < perBatch.total.gets);
  assert.deepEqual(
    perBatch.epochs.map((e) => e.bytesSelected),
    auto.epochs.map((e) => e.bytesSelected),
  );
});

test('sadp estimate prints a table and writes a plot spec', async () => {
  const r = await runSadp([
    'estimate',
    '--samples',
    '5000',
    '--mean-bytes',
    '50000',
    '--epochs',
    '3',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { epochs: unknown[]; total: { gets: number } };
  assert.equal(out.epochs.length, 3);
  assert.ok(out.total.gets > 0);
  const t = await runSadp([
    'estimate',
    '--samples',
    '5000',
    '--epochs',
    '2',
    '--preset',
    's3-express-one-zone',
  ]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^\s+epoch\s+r_k\s+selected\s+GETs/m);
  assert.match(t.stdout, /whole shards/);
  assert.match(t.stdout, /link: 5 ms per GET/);
  assert.match(t.stdout, new RegExp(`planner: ${resolveRangeReaderOptions().planner}, `));
  const dir = await mkdtemp(join(tmpdir(), 'sadp-estimate-'));
  try {
    const plot = join(dir, 'plot.json');
    const p = await runSadp([
      'estimate',
      '--samples',
      '5000',
      '--epochs',
      '2',
      '--planner',
      'min-bytes',
      '--cost-per-request-us',
      '300',
      '--cost-per-byte-us',
      '0.003',
      '--window',
      '2',
      '--plot',
      plot,
      '--json',
    ]);
    assert.equal(p.code, 0, p.stderr);
    const est = JSON.parse(p.stdout) as RunEstimate;
    assert.deepEqual(est.planner, {
      mode: 'min-bytes',
      cost: { perRequestUs: 300, perByteUs: 0.003 },
      breakEvenGapBytes: 100_000,
      windowBatches: 2,
    });
    const spec = JSON.parse(await readFile(plot, 'utf8')) as { data: { values: { GB: number }[] } };
    assert.equal(spec.data.values.length, 2 * 2, 'pruned and whole-shard points per epoch');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const half = await runSadp(['estimate', '--samples', '5000', '--cost-per-request-us', '300']);
  assert.notEqual(half.code, 0);
  assert.match(half.stderr, /needs both --cost-per-request-us and --cost-per-byte-us/);
});
