// Bad bytes from storage, fuzzed (fast-check): mutated tar shards through the
// offset scanner and the indexer, mutated manifests and shard indexes through
// openDataset. Nothing but a SadpError with one of the documented codes and a
// message naming the object may come out, and no input may hang. CI runs a
// few thousand inputs; `npm run reliability:fuzz` runs tens of thousands.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSadpError } from '../../common/errors.js';
import { createRangeReader } from '../../loader/fetch/index.js';
import { openDataset, type DatasetManifest } from '../../loader/shards/index.js';
import {
  fuzzDatasetJson,
  fuzzIndexShard,
  fuzzTarScanner,
  startFuzzFixture,
  type FuzzFixture,
  type FuzzStats,
} from './fuzz.js';

let fx: FuzzFixture;
before(async () => {
  fx = await startFuzzFixture();
});
after(async () => {
  await fx?.close();
});

/** The run exercised both outcomes: some inputs still parse, most are rejected. */
function assertMixed(stats: FuzzStats, runs: number): void {
  assert.equal(stats.inputs, runs);
  const rejected = Object.values(stats.errors).reduce((a, b) => a + b, 0);
  assert.equal(stats.parsed + rejected, runs);
  assert.ok(rejected > runs / 2, `most mutations are caught: ${JSON.stringify(stats)}`);
  assert.ok(stats.parsed > 0, 'some mutations leave a valid input (the parser is not just refusing)');
}

describe('fuzzed storage input: only SadpErrors naming the object, no hang', () => {
  test('TarScanner: 2,000 mutated shards, whole and chunked give the same answer', async () => {
    assertMixed(await fuzzTarScanner(fx, { numRuns: 2_000, seed: 101 }), 2_000);
  });

  test('indexShard: 300 mutated shards through scanner, tar-stream and the sample grouper', async () => {
    assertMixed(await fuzzIndexShard(fx, { numRuns: 300, seed: 102 }), 300);
  });

  test('openDataset: 300 mutated manifests and shard indexes', async () => {
    assertMixed(await fuzzDatasetJson(fx, { numRuns: 300, seed: 103 }), 300);
  });
});

test('a manifest whose totals add up around 2^32 or more samples is SADP_MANIFEST_INVALID, not a RangeError', async () => {
  // Found by the openDataset fuzzer: the per-sample arrays were sized from the
  // manifest's count before any index was read.
  for (const samples of [2 ** 31, 2 ** 32, 2 ** 40]) {
    const root = join(fx.dir, `huge-${samples}`);
    await mkdir(join(root, 'index'), { recursive: true });
    const m: DatasetManifest = structuredClone(fx.manifest);
    const first = m.shards[0] as { samples: number };
    const delta = samples - first.samples;
    first.samples = samples;
    m.shards.slice(1).forEach((s) => ((s as { firstId: number }).firstId += delta));
    (m as { samples: number }).samples += delta;
    await writeFile(join(root, 'manifest.json'), JSON.stringify(m));
    for (const [key, index] of fx.indexes) await writeFile(join(root, key), JSON.stringify(index));
    await assert.rejects(openDataset(join(root, 'manifest.json')), (err: unknown) => {
      assert.ok(isSadpError(err, 'SADP_MANIFEST_INVALID'), `${samples}: ${String(err)}`);
      assert.match(err.message, /shards\.0\.samples/);
      assert.ok(err.message.includes(root), err.message);
      return true;
    });
  }
});

test('keys in a manifest cannot leave the dataset directory', async () => {
  const root = join(fx.dir, 'escape');
  await mkdir(join(root, 'index'), { recursive: true });
  for (const [key, index] of fx.indexes) await writeFile(join(root, key), JSON.stringify(index));
  const write = async (edit: (m: DatasetManifest) => void): Promise<string> => {
    const m: DatasetManifest = structuredClone(fx.manifest);
    edit(m);
    await writeFile(join(root, 'manifest.json'), JSON.stringify(m));
    return join(root, 'manifest.json');
  };
  for (const bad of ['../../../etc/passwd', '/etc/passwd', 'index/../../../../etc/hostname']) {
    const url = await write((m) => ((m.shards[0] as { index: string }).index = bad));
    await assert.rejects(openDataset(url), (err: unknown) => {
      assert.ok(isSadpError(err, 'SADP_INVALID_KEY'), `${bad}: ${String(err)}`);
      assert.ok(err.message.includes(bad));
      return true;
    });
  }
  // A shard key is checked when it is read: the read fails, nothing outside is opened.
  const url = await write((m) => ((m.shards[0] as { url: string }).url = '../../outside.tar'));
  const dataset = await openDataset(url);
  await assert.rejects(createRangeReader({ maxAttempts: 1 }).read(dataset, [0]), (err: unknown) =>
    isSadpError(err, 'SADP_INVALID_KEY'),
  );
});
