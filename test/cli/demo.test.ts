// `sadp demo` end to end on the fallback data set (short settings), and the
// fallback set itself: its classes overlap so that accuracy is informative.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEMO_SYNTHETIC_OVERLAP, syntheticBanner } from '../../cli/commands/demo.js';
import { decodeNpyUint8, syntheticImagesSource, type Sample } from '../../loader/shards/index.js';
import { runSadp } from '../helpers/processes.js';

function load(count: number, seed: number, overlap: number): { xs: Uint8Array[]; ys: number[] } {
  const xs: Uint8Array[] = [];
  const ys: number[] = [];
  // The synthetic source is synchronous.
  const samples = syntheticImagesSource({ count, seed, overlap }).samples() as Iterable<Sample>;
  for (const s of samples) {
    ys.push(Number(Buffer.from(s.members.find((m) => m.ext === 'cls')!.data).toString()));
    xs.push(decodeNpyUint8(s.members.find((m) => m.ext === 'npy')!.data).data);
  }
  return { xs, ys };
}

/** Test accuracy of a nearest-class-mean classifier fitted on a train split. */
function nearestMeanAccuracy(overlap: number): number {
  const train = load(3000, 1, overlap);
  const evalSet = load(1000, 2, overlap);
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
  assert.equal(nearestMeanAccuracy(0), 1, 'without overlap every image is classified right');
  const acc = nearestMeanAccuracy(DEMO_SYNTHETIC_OVERLAP);
  assert.ok(acc > 0.8 && acc < 0.92, `accuracy ${acc}`);
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
  assert.match(r.stdout, /2 epochs in \d+ s: fetched .* final test accuracy \d+\.\d\d%/);
});

test('the banner without Fashion-MNIST says how to install it and what the synthetic accuracy means', () => {
  const banner = syntheticBanner(false);
  assert.match(banner, /Fashion-MNIST is not installed in \/usr\/share\/datasets\/fashion-mnist/);
  assert.match(banner, /apt-get install -y dataset-fashion-mnist/);
  assert.match(banner, /about 85-90 %/);
  assert.doesNotMatch(syntheticBanner(true), /not installed/);
});
