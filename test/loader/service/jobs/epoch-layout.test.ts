// The pure arithmetic of an epoch: the deterministic shuffle and the split
// of an epoch into equal per-rank streams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { batchSpan, epochLayout, orderIndexAt, shufflePlan } from '../../../../loader/index.js';
import {
  deliveredTo,
  shufflePlanAsync,
  type ShuffleInput,
} from '../../../../loader/service/jobs/epoch-layout.js';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';

function ascending(n: number, stride = 1): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => i * stride);
}

test('the global shuffle is a permutation fixed by (seed, epoch)', () => {
  const ids = ascending(5_000, 3);
  const shardOf = (id: number): number => Math.floor(id / 300);
  const a = shufflePlan({ ids, seed: 42n, epoch: 1, mode: 'global', blockShards: 4, shardOf });
  const b = shufflePlan({ ids, seed: 42n, epoch: 1, mode: 'global', blockShards: 4, shardOf });
  assert.deepEqual(a, b, 'same inputs, same order (every replica and restart agrees)');
  assert.deepEqual(
    [...a].sort((x, y) => x - y),
    [...ascending(5_000)],
    'a permutation of plan positions',
  );
  const otherEpoch = shufflePlan({ ids, seed: 42n, epoch: 2, mode: 'global', blockShards: 4, shardOf });
  const otherSeed = shufflePlan({ ids, seed: 43n, epoch: 1, mode: 'global', blockShards: 4, shardOf });
  const same = (x: Uint32Array, y: Uint32Array): number => x.reduce((n, v, i) => n + (v === y[i] ? 1 : 0), 0);
  assert.ok(same(a, otherEpoch) < 50, 'another epoch reorders');
  assert.ok(same(a, otherSeed) < 50, 'another seed reorders');
  // Well mixed: the first tenth of the order is spread over the whole range.
  const head = [...a.slice(0, 500)];
  assert.ok(Math.min(...head) < 250 && Math.max(...head) > 4_750);
});

interface ShardCase {
  ids: Uint32Array;
  shardOf: (id: number) => number;
  k: number;
  input: ShuffleInput;
  perm: Uint32Array;
}

/**
 * Property over n ids (every other id of shards of `perShard`), blocks of K
 * shards and any seed: the mode's order is a permutation, then `check`.
 */
function shardShuffleProperty(
  mode: 'shard-block' | 'shard-buffer',
  minN: number,
  maxN: number,
  check: (c: ShardCase) => void,
): void {
  fc.assert(
    fc.property(
      fc.integer({ min: minN, max: maxN }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 6 }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      (n, perShard, k, seed) => {
        const ids = ascending(n, 2);
        const shardOf = (id: number): number => Math.floor(id / 2 / perShard);
        const input: ShuffleInput = { ids, seed, epoch: 3, mode, blockShards: k, shardOf };
        const perm = shufflePlan(input);
        assert.deepEqual(
          [...perm].sort((x, y) => x - y),
          [...ascending(n)],
        );
        check({ ids, shardOf, k, input, perm });
      },
    ),
    { numRuns: 60 },
  );
}

test('shard-block keeps every shard inside one block of K shards, blocks in shuffled order', () => {
  shardShuffleProperty('shard-block', 1, 400, ({ ids, shardOf, k, perm }) => {
    // Block of a shard = (rank of its first appearance) / K: non-decreasing along the order.
    const firstSeen = new Map<number, number>();
    let lastBlock = 0;
    for (const pos of perm) {
      const shard = shardOf(ids[pos] as number);
      if (!firstSeen.has(shard)) firstSeen.set(shard, firstSeen.size);
      const block = Math.floor((firstSeen.get(shard) as number) / k);
      assert.ok(block >= lastBlock, `shard ${shard} appears after its block ended`);
      lastBlock = block;
    }
  });
});

const MODES = ['global', 'shard-block', 'shard-buffer'] as const;

test('shard-buffer is a permutation fixed by (seed, epoch) that keeps windows on few shards', () => {
  shardShuffleProperty('shard-buffer', 0, 600, ({ input, perm }) => {
    assert.deepEqual(shufflePlan(input), perm);
  });
  // 200 shards of 50: 32-sample windows touch few shards, unlike the global order.
  const ids = ascending(10_000);
  const shardOf = (id: number): number => Math.floor(id / 50);
  const shardsPerWindow = (perm: Uint32Array): number => {
    let sum = 0;
    let windows = 0;
    for (let w = 0; w + 32 <= perm.length - 200; w += 32, windows++) {
      sum += new Set([...perm.slice(w, w + 32)].map((p) => shardOf(ids[p] as number))).size;
    }
    return sum / windows;
  };
  const global = shardsPerWindow(
    shufflePlan({ ids, seed: 9n, epoch: 0, mode: 'global', blockShards: 4, shardOf }),
  );
  const buffered = shardsPerWindow(
    shufflePlan({ ids, seed: 9n, epoch: 0, mode: 'shard-buffer', blockShards: 4, shardOf }),
  );
  assert.ok(global > 25, `global: ${global} shards per window`);
  assert.ok(buffered < 12, `shard-buffer: ${buffered} shards per window`);
});

test('the sliced async shuffle gives the sync order in every mode', async () => {
  const ids = ascending(70_000, 3);
  const shardOf = (id: number): number => Math.floor(id / 900);
  for (const mode of MODES) {
    const input = { ids, seed: 77n, epoch: 5, mode, blockShards: 3, shardOf };
    assert.deepEqual(await shufflePlanAsync(input), shufflePlan(input), mode);
  }
});

test('every process computes the same order (digest from a separate node process)', () => {
  const ids = ascending(20_000, 5);
  const here = MODES.map((mode) => {
    const perm = shufflePlan({
      ids,
      seed: 123n,
      epoch: 2,
      mode,
      blockShards: 2,
      shardOf: (id) => Math.floor(id / 700),
    });
    return createHash('sha256').update(perm).digest('hex');
  });
  const moduleUrl = new URL('../../../../loader/service/jobs/epoch-layout.js', import.meta.url).href;
  const script = `
    import { createHash } from 'node:crypto';
    import { shufflePlan } from ${JSON.stringify(moduleUrl)};
    const ids = Uint32Array.from({ length: 20000 }, (_, i) => i * 5);
    const out = ['global', 'shard-block', 'shard-buffer'].map((mode) =>
      createHash('sha256').update(shufflePlan({ ids, seed: 123n, epoch: 2, mode, blockShards: 2, shardOf: (id) => Math.floor(id / 700) })).digest('hex'));
    process.stdout.write(JSON.stringify(out));`;
  const there = JSON.parse(
    execFileSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    }),
  ) as string[];
  assert.deepEqual(there, here);
});

test('ranks get equal-length streams that cover the order once plus padding from its start', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 500 }),
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 40 }),
      (m, world, batch) => {
        const layout = epochLayout(m, world, batch);
        assert.equal(layout.samplesPerRank, Math.ceil(m / world));
        assert.equal(layout.steps, Math.ceil(layout.samplesPerRank / batch));
        const count = new Array<number>(m).fill(0);
        const padded: number[] = [];
        for (let rank = 0; rank < world; rank++) {
          let got = 0;
          for (let b = 0; b < layout.steps; b++) {
            const { start, end } = batchSpan(layout, rank, b);
            assert.ok(end > start && end - start <= batch);
            for (let p = start; p < end; p++) {
              const o = orderIndexAt(layout, p);
              if (p >= m) padded.push(o);
              else count[o] = (count[o] ?? 0) + 1;
              // deliveredTo agrees with a walk over the batches.
              assert.ok(deliveredTo(layout, o, rank, b));
              if (b > 0 && p - start === 0 && p < m) assert.equal(deliveredTo(layout, o, rank, b - 1), false);
            }
            got += end - start;
          }
          assert.equal(got, layout.samplesPerRank, 'equal length on every rank');
        }
        assert.ok(
          count.every((c) => c === 1),
          'every selected id once outside padding',
        );
        assert.equal(padded.length, layout.padded);
        assert.deepEqual(
          padded,
          padded.map((_, i) => i % m),
          'padding repeats the order from its start',
        );
      },
    ),
    { numRuns: 200 },
  );
});
