// `sadp demo` end to end on the fallback data set (short settings), and the
// fallback set itself: its classes overlap so that accuracy is informative.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEMO_SYNTHETIC, syntheticBanner } from '../../cli/commands/demo.js';
import { decodeNpyUint8, syntheticImagesSource, type Sample } from '../../loader/shards/index.js';
import { runSadp } from '../helpers/processes.js';

type Task = Omit<Parameters<typeof syntheticImagesSource>[0], 'count' | 'seed'>;
const DEMO_TASK: Task = {
  overlap: DEMO_SYNTHETIC.overlap,
  noise: DEMO_SYNTHETIC.noise,
  contrast: DEMO_SYNTHETIC.contrast,
  background: DEMO_SYNTHETIC.background,
};

function load(count: number, seed: number, task: Task): { xs: Uint8Array[]; ys: number[] } {
  const xs: Uint8Array[] = [];
  const ys: number[] = [];
  // The synthetic source is synchronous.
  const samples = syntheticImagesSource({ ...task, count, seed }).samples() as Iterable<Sample>;
  for (const s of samples) {
    ys.push(Number(Buffer.from(s.members.find((m) => m.ext === 'cls')!.data).toString()));
    xs.push(decodeNpyUint8(s.members.find((m) => m.ext === 'npy')!.data).data);
  }
  return { xs, ys };
}

/** Test accuracy of a nearest-class-mean classifier fitted on a train split of `trainCount`. */
function nearestMeanAccuracy(task: Task, trainCount = 3000): number {
  const train = load(trainCount, 1, task);
  const evalSet = load(1000, 2, task);
  const pixels = train.xs[0]!.length;
  const means = Array.from({ length: 10 }, () => new Float64Array(pixels));
  const counts = new Array<number>(10).fill(0);
  train.xs.forEach((x, i) => {
    const m = means[train.ys[i]!]!;
    counts[train.ys[i]!]!++;
    for (let p = 0; p < pixels; p++) m[p]! += x[p]!;
  });
  means.forEach((m, c) => m.forEach((v, p) => (m[p] = v / counts[c]!)));
  let right = 0;
  evalSet.xs.forEach((x, i) => {
    let best = -1;
    let bestD = Infinity;
    means.forEach((m, c) => {
      let d = 0;
      for (let p = 0; p < pixels; p++) d += (x[p]! - m[p]!) ** 2;
      if (d < bestD) [bestD, best] = [d, c];
    });
    if (best === evalSet.ys[i]) right++;
  });
  return right / evalSet.xs.length;
}

test('the fallback set is not trivially separable: a nearest-mean classifier lands in 80-92 %', () => {
  assert.equal(nearestMeanAccuracy({ overlap: 0 }), 1, 'without overlap every image is classified right');
  const acc = nearestMeanAccuracy(DEMO_TASK);
  assert.ok(acc > 0.8 && acc < 0.92, `accuracy ${acc}`);
  // Data-hungry: a tenth of the examples costs accuracy, so pruning shows its cost.
  const few = nearestMeanAccuracy(DEMO_TASK, 300);
  assert.ok(few < acc - 0.1, `300 examples: ${few}, 3,000: ${acc}`);
});

test('sadp demo runs end to end on the synthetic set and says how to get the real data', async () => {
  const r = await runSadp(
    [
      'demo',
      '--dataset',
      'synthetic',
      '--epochs',
      '2',
      '--train-limit',
      '512',
      '--test-limit',
      '256',
      '--batch-size',
      '64',
      '--backend',
      'cpu',
    ],
    { timeoutMs: 220_000 },
  );
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /Using the synthetic image set \(--dataset synthetic\)/);
  assert.match(r.stdout, /classes overlap .* about 85-90 %/s);
  assert.match(r.stdout, /N = 512, r = 0\.5/);
  const rows = r.stdout.split('\n').filter((l) => /^\s+\d+\s+\d+\.\d\d%/.test(l));
  assert.equal(rows.length, 2, r.stdout);
  // The demo reads in min-bytes: pruned samples stay unread, so every epoch saves bytes.
  for (const row of rows) {
    const saved = Number(/\s(-?\d+)%\s+\d+$/.exec(row)?.[1]);
    assert.ok(saved > 0, `bytes saved against a full epoch: ${row}`);
  }
  assert.match(r.stdout, /2 epochs in \d+ s: fetched .* final test accuracy \d+\.\d\d%/);
});

test('the banner without Fashion-MNIST says how to install it and what the synthetic accuracy means', () => {
  const banner = syntheticBanner(false);
  assert.match(banner, /Fashion-MNIST is not installed in \/usr\/share\/datasets\/fashion-mnist/);
  assert.match(banner, /apt-get install -y dataset-fashion-mnist/);
  assert.match(banner, /about 85-90 %/);
  assert.doesNotMatch(syntheticBanner(true), /not installed/);
});
