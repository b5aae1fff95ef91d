// Pieces of the training loop on their own: the cosine schedule over the
// actual (pruned) steps, and checkpoint files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  CosineSchedule,
  checkpointPath,
  cosineLr,
  createTrainReporter,
  estimateTotalSteps,
  readCheckpoint,
  type EpochSummary,
} from '../../../trainer/index.js';
import { checkCompatible, writeCheckpoint, type CheckpointMeta } from '../../../trainer/train/checkpoint.js';
import { isSadpError } from '../../../common/errors.js';

test('cosine annealing starts at the peak, ends at the floor and never rises', () => {
  assert.equal(cosineLr(1e-3, 1e-5, 0, 100), 1e-3);
  assert.equal(cosineLr(1e-3, 1e-5, 100, 100), 1e-5);
  assert.ok(Math.abs(cosineLr(1, 0, 50, 100) - 0.5) < 1e-12, 'half way is the midpoint');
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 999 }), (total, s) => {
      const a = cosineLr(1, 0.1, s, total);
      const b = cosineLr(1, 0.1, s + 1, total);
      return b <= a && a <= 1 && b >= 0.1;
    }),
  );
});

test('the step total follows the pruning schedule and is exact in the last epoch', () => {
  // First epoch: nothing to extrapolate from, later epochs repeat it.
  assert.equal(estimateTotalSteps(4, { epoch: 0, steps: 100, pruneRatio: 0.2 }, []), 400);
  // Second epoch: ratio 0.2 -> 0.36, slope 0.16, so r = 0.52 and 0.68 next;
  // kept fractions 0.48 and 0.32 of this epoch's 0.64: 60 and 40 steps.
  const history = [{ epoch: 0, steps: 100, pruneRatio: 0.2 }];
  assert.equal(estimateTotalSteps(4, { epoch: 1, steps: 80, pruneRatio: 0.36 }, history), 100 + 80 + 60 + 40);
  // Last epoch: what was taken plus this epoch, nothing predicted.
  const all = [
    ...history,
    { epoch: 1, steps: 80, pruneRatio: 0.36 },
    { epoch: 2, steps: 61, pruneRatio: 0.52 },
  ];
  assert.equal(estimateTotalSteps(4, { epoch: 3, steps: 39, pruneRatio: 0.68 }, all), 100 + 80 + 61 + 39);
});

test('a larger re-estimate holds the rate instead of raising it', () => {
  const s = new CosineSchedule(1, 0);
  s.setTotal(100);
  const before = s.rate(60);
  s.setTotal(400); // e.g. InfoBatch's full-data tail
  assert.equal(s.rate(61), before);
  s.setTotal(100);
  assert.ok(s.rate(90) < before);
});

function meta(over: Partial<CheckpointMeta> = {}): CheckpointMeta {
  return {
    format: 'sadp-trainer-checkpoint',
    version: 1,
    job: 'j',
    rank: 1,
    worldSize: 2,
    batchSize: 64,
    model: 'mlp hidden=256 T=4 classes=10',
    epoch: 3,
    cursor: 17,
    committedThrough: 15,
    planDigest: 'abc',
    step: 1234,
    history: [{ epoch: 0, steps: 10, pruneRatio: 0.1 }],
    bytesFetched: 10,
    datasetBytes: 20,
    accumulator: {
      batches: 17,
      samples: 1088,
      weightedLossSum: 1.5,
      unweightedLossSum: 1.25,
      weightSum: 1000,
      weightMax: 3.5,
      weightCount: 1088,
      spikeRateSum: 2,
    },
    pendingAcks: [{ index: 16, ids: [1, 2], scores: [0.5, 0.25] }],
    savedAt: '2025-01-01T00:00:00.000Z',
    ...over,
  };
}

test('checkpoints round-trip atomically and a damaged one is named, not loaded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-ckpt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(await readCheckpoint(dir, 1), undefined, 'no checkpoint yet');
  const model = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
  const optimizer = Uint8Array.from({ length: 77 }, (_, i) => 255 - i);
  const path = await writeCheckpoint(dir, { meta: meta(), model, optimizer });
  assert.equal(path, checkpointPath(dir, 1));
  assert.deepEqual(await readdir(dir), ['rank-1.ckpt'], 'no temp file is left behind');
  const back = await readCheckpoint(dir, 1);
  assert.deepEqual(back, { meta: meta(), model, optimizer });

  // Overwrite: the newer one wins.
  await writeCheckpoint(dir, { meta: meta({ cursor: 18 }), model, optimizer });
  assert.equal((await readCheckpoint(dir, 1))?.meta.cursor, 18);

  await truncate(path, 200);
  await assert.rejects(
    readCheckpoint(dir, 1),
    (err: unknown) => isSadpError(err, 'SADP_CHECKPOINT_CORRUPT') && err.message.includes(path),
  );
  await writeFile(path, 'not a checkpoint at all');
  await assert.rejects(readCheckpoint(dir, 1), /no SADPCKP1 magic/);
});

test('a checkpoint of another run shape is refused with what differs', () => {
  const run = { job: 'j', worldSize: 2, batchSize: 64, model: 'mlp hidden=256 T=4 classes=10' };
  checkCompatible(meta(), run, 'p');
  assert.throws(
    () => checkCompatible(meta(), { ...run, job: 'k', worldSize: 4 }, '/ck/rank-1.ckpt'),
    (err: unknown) =>
      isSadpError(err, 'SADP_CHECKPOINT_MISMATCH') &&
      /job 'j' vs 'k'; world size 2 vs 4/.test(err.message) &&
      err.message.includes('/ck/rank-1.ckpt'),
  );
});

function capture(): { stream: NodeJS.WriteStream; text: () => string } {
  let buf = '';
  const stream = {
    isTTY: false,
    write: (chunk: string) => ((buf += chunk), true),
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => buf };
}

const summary: EpochSummary = {
  epoch: 1,
  epochs: 4,
  steps: 20,
  samples: 2500,
  loss: 0.4321,
  unweightedLoss: 0.4,
  testAccuracy: 0.8512,
  testLoss: 0.5,
  selected: 2500,
  datasetSize: 5000,
  pruneRatio: 0.5,
  targetPruneRatio: 0.5,
  meanWeight: 1.02,
  maxWeight: 3.25,
  spikeRate: 0.2,
  samplesPerSecond: 1234.4,
  trainSeconds: 2,
  selectedBytes: 2_000_000,
  selectedBytesTotal: 6_000_000,
  loaderBytesReceived: 2_120_000,
  datasetBytesTotal: 8_000_000,
  lr: 0.0005,
  step: 40,
  totalStepsEstimate: 70,
  resumedAt: 0,
  reopens: 0,
};

test('the reporter prints plain progress with rate and ETA off a terminal, and one line per epoch', () => {
  const out = capture();
  const err = capture();
  const r = createTrainReporter({ out: out.stream, err: err.stream, intervalMs: 0 });
  r.onBatch!({ epoch: 1, done: 5, steps: 20, loss: 0.5, lr: 1e-3, samplesPerSecond: 800, etaSeconds: 95 });
  r.onEpoch!(summary);
  r.close();
  assert.match(err.text(), /5\/20 batches \(25%\)\s+800 samples\/s\s+ETA 1m35s/);
  const line = out.text().trim();
  for (const part of [
    'epoch 2/4',
    'loss 0.4321',
    'test acc 85.1%',
    'selected 2500/5000 (pruned 50.0%',
    'weight mean 1.02 max 3.25',
    '1234 samples/s',
    'selected 6.0 MB of 8.0 MB so far (25.0% pruned)',
    'loader read 2.1 MB from storage this epoch',
  ]) {
    assert.ok(line.includes(part), `${JSON.stringify(part)} in ${line}`);
  }

  const json = capture();
  const jr = createTrainReporter({ json: true, out: json.stream, err: capture().stream });
  jr.onEpoch!(summary);
  assert.deepEqual(JSON.parse(json.text()), { event: 'epoch', ...summary });
});
