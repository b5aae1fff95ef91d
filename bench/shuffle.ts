// Locality and quality of the epoch orders, measured on one plan.
//
//   npm run bench:shuffle [-- --quick]
//
// A dataset of ImageNet's shape scaled down 5x (256,000 samples in 256 shards
// of 1,000; --quick: 64 shards), a random plan keeping half, one rank, batches
// of 64 and a prefetch window of 8 batches (the loader's default). Per order:
// - locality: distinct shards per batch and per window, selected samples per
//   shard per window, and merged spans per sample (runs of samples adjacent in
//   the plan's id order within a window's shard: the GETs per sample a reader
//   merging spans would issue);
// - quality: (1) batch label entropy relative to the global shuffle when
//   every shard holds one class (the worst case: class-sorted shards);
//   (2) same-shard spread: mean |position(i) - position(j)| / M over pairs of
//   one shard, relative to a uniform shuffle's 1/3 (1 = as mixed as uniform).
// Writes bench/results/shuffle.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../common/paths.js';
import { shufflePlan, type ShuffleMode } from '../loader/index.js';

const quick = process.argv.includes('--quick');
const SHARDS = quick ? 64 : 256;
const PER_SHARD = 1_000;
const N = SHARDS * PER_SHARD;
const BATCH = 64;
const WINDOW_BATCHES = 8;
const shardOf = (id: number): number => Math.floor(id / PER_SHARD);

// Random plan keeping half (a fixed xorshift, so every order sees the same ids).
const picked: number[] = [];
let x = 0x2545f491;
for (let id = 0; id < N; id++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  if ((x >>> 0) / 2 ** 32 < 0.5) picked.push(id);
}
const ids = Uint32Array.from(picked);
const M = ids.length;
const planIndexOf = new Map<number, number>();
ids.forEach((id, i) => planIndexOf.set(id, i));

function entropy(labels: number[]): number {
  const counts = new Map<number, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) h -= (c / labels.length) * Math.log2(c / labels.length);
  return h;
}

interface Quality {
  shardsPerBatch: number;
  shardsPerWindow: number;
  samplesPerShardPerWindow: number;
  spansPerSample: number;
  batchEntropyBits: number;
  sameShardSpread: number;
}

function measure(mode: ShuffleMode, blockShards: number): Quality {
  const perm = shufflePlan({ ids, seed: 7n, epoch: 1, mode, blockShards, shardOf });
  const order = Array.from(perm, (p) => ids[p] as number);
  let shardsPerBatch = 0;
  let entropySum = 0;
  let batches = 0;
  for (let b = 0; b + BATCH <= M; b += BATCH, batches++) {
    const labels = order.slice(b, b + BATCH).map(shardOf);
    shardsPerBatch += new Set(labels).size;
    entropySum += entropy(labels);
  }
  const W = BATCH * WINDOW_BATCHES;
  let shardsPerWindow = 0;
  let spans = 0;
  let windows = 0;
  for (let w = 0; w + W <= M; w += W, windows++) {
    const inWindow = order.slice(w, w + W).sort((a, b) => a - b);
    shardsPerWindow += new Set(inWindow.map(shardOf)).size;
    // A new span starts unless the previous id is the plan's previous id in the same shard.
    for (let k = 0; k < inWindow.length; k++) {
      const id = inWindow[k] as number;
      const prev = inWindow[k - 1];
      const adjacent =
        prev !== undefined &&
        shardOf(prev) === shardOf(id) &&
        planIndexOf.get(prev) === (planIndexOf.get(id) as number) - 1;
      if (!adjacent) spans++;
    }
  }
  // Same-shard spread, sampled: consecutive plan ids of one shard.
  const pos = new Float64Array(N);
  order.forEach((id, p) => (pos[id] = p / M));
  let spread = 0;
  let pairs = 0;
  for (let i = 1; i < M; i++) {
    const a = ids[i - 1] as number;
    const b = ids[i] as number;
    if (shardOf(a) !== shardOf(b)) continue;
    spread += Math.abs((pos[a] as number) - (pos[b] as number));
    pairs++;
  }
  const r = (v: number, d = 3): number => Math.round(v * 10 ** d) / 10 ** d;
  return {
    shardsPerBatch: r(shardsPerBatch / batches, 2),
    shardsPerWindow: r(shardsPerWindow / windows, 2),
    samplesPerShardPerWindow: r(W / (shardsPerWindow / windows), 1),
    spansPerSample: r(spans / (windows * W)),
    batchEntropyBits: r(entropySum / batches),
    sameShardSpread: r(spread / pairs / (1 / 3)),
  };
}

const cases: { mode: ShuffleMode; blockShards: number }[] = [
  { mode: 'global', blockShards: 1 },
  { mode: 'shard-block', blockShards: 4 },
  { mode: 'shard-block', blockShards: 16 },
  { mode: 'shard-buffer', blockShards: 4 },
  { mode: 'shard-buffer', blockShards: 16 },
];
const measured = cases.map((c) => ({ ...c, ...measure(c.mode, c.blockShards) }));
const globalEntropy = measured[0]?.batchEntropyBits ?? 1;
const rows = measured.map((row) => ({
  ...row,
  batchEntropyRatio: Math.round((row.batchEntropyBits / globalEntropy) * 1000) / 1000,
}));
for (const row of rows) {
  process.stdout.write(`${JSON.stringify(row)}\n`);
}
await mkdir(join(packageRoot, 'bench/results'), { recursive: true });
await writeFile(
  join(packageRoot, 'bench/results', quick ? 'shuffle-quick.json' : 'shuffle.json'),
  `${JSON.stringify(
    {
      benchmark: 'shuffle',
      generatedAt: new Date().toISOString(),
      command: `npm run bench:shuffle${quick ? ' -- --quick' : ''}`,
      machine: {
        cpus: cpus().length,
        node: process.version,
        loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
      },
      dataset: { samples: N, shards: SHARDS, selected: M, batch: BATCH, windowBatches: WINDOW_BATCHES },
      rows,
    },
    null,
    2,
  )}\n`,
);
