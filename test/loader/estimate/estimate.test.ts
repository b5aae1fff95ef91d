// `sadp estimate` against a real run: a loader on the embedded S3 server
// streams two epochs to two ranks, and the estimate for the same plans (same
// seed, world size, batch size, shuffle and reader options) must match the
// GETs and bytes the loader's range reader really issued within 2 %.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LoaderServer } from '../../../loader/index.js';
import {
  LINK_PRESETS,
  estimateRun,
  layoutOfDataset,
  syntheticLayout,
  uniformSubset,
} from '../../../loader/index.js';
import { createLoaderClient } from '../../../trainer/client/index.js';
import { runSadp } from '../../helpers/processes.js';
import { getPlan, scoreOf, startStack, type Stack } from '../service/helpers.js';

const WORLD = 2;
const BATCH = 16;
const EPOCHS = 2;

let stack: Stack;
let loader: LoaderServer;

before(async () => {
  stack = await startStack();
  loader = await stack.startLoader();
});

after(async () => {
  await stack?.close();
});

const within = (got: number, want: number, what: string): void =>
  assert.ok(Math.abs(got - want) <= 0.02 * want, `${what}: estimate ${got}, real ${want}`);

test('the estimate of GETs and bytes matches a real run on the embedded S3 within 2 %', async () => {
  const jobId = await stack.createJob({ epochs: EPOCHS });
  const clients = Array.from({ length: WORLD }, () => createLoaderClient({ address: loader.address }));
  try {
    for (let epoch = 0; epoch < EPOCHS; epoch++) {
      await Promise.all(
        clients.map(async (client, rank) => {
          for await (const batch of client.epoch({
            job: jobId,
            epoch,
            rank,
            worldSize: WORLD,
            batchSize: BATCH,
          }))
            await batch.ack({ scores: Array.from(batch.ids, scoreOf) });
        }),
      );
    }
  } finally {
    for (const c of clients) c.close();
  }
  const io = loader.stats().io;
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
    gapBytes: 0, // the rig's reader setting
    selectIds: (epoch) => Uint32Array.from(plans[epoch]!.ids),
  });
  assert.ok(io.requests > 0);
  process.stdout.write(
    `# real: ${io.requests - io.retries} GETs, ${io.bytesRequested} bytes; ` +
      `estimate: ${est.total.gets} GETs, ${est.total.bytesFetched} bytes\n`,
  );
  within(est.total.gets, io.requests - io.retries, 'GETs');
  within(est.total.bytesFetched, io.bytesRequested, 'bytes requested');
  assert.deepEqual(
    est.epochs.map((e) => e.selected),
    plans.map((p) => p.ids.length),
  );
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
  };
  const full = estimateRun({ ...base, policy: 'full' });
  const sadp = estimateRun({ ...base, policy: 'sadp' });
  // r = 0.5 -> r_max 0.7: r_k = 2r - r_max + k (2 r_max - 2r) / K = 0.3 + 0.1 k, k = 1..4.
  assert.deepEqual(
    sadp.epochs.map((e) => e.selected),
    [12_000, 10_000, 8_000, 6_000],
  );
  assert.equal(full.epochs[0]!.selected, 20_000);
  // Full data with global shuffle, reads planned per batch: one GET per sample (neighbours rarely share a batch).
  const perBatch = estimateRun({ ...base, policy: 'full', prefetchBatches: 1 });
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
});
