// The manifest eval set is read through the dataset and the cutter: labels
// and pixels come back as built, and an index that disagrees with the shard
// fails with the shard and offset instead of yielding other bytes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSadpError } from '../../../common/errors.js';
import { buildShards, syntheticImagesSource, type ShardIndex } from '../../../loader/index.js';
import { loadEvalSet } from '../../../trainer/train/eval-data.js';

const geometry = { width: 28, height: 28, channels: 1, classes: 10 };
let dir: string;
let manifestUrl: string;
const labels: number[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-eval-'));
  const source = syntheticImagesSource({ count: 40, seed: 4 });
  for await (const s of source.samples()) {
    const cls = s.members.find((m) => m.ext === 'cls');
    labels.push(Number(Buffer.from(cls?.data ?? []).toString()));
  }
  // Small shards: the eval set spans several of them.
  await buildShards(syntheticImagesSource({ count: 40, seed: 4 }), {
    out: join(dir, 'ds'),
    shardBytes: 16 * 1024,
  });
  manifestUrl = join(dir, 'ds', 'manifest.json');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a manifest eval set yields every sample with its label, across shards', async () => {
  const set = await loadEvalSet({ kind: 'manifest', url: manifestUrl }, geometry, 1000);
  assert.equal(set.count, 40);
  assert.deepEqual(Array.from(set.labels), labels);
  assert.equal(set.inputs.length, 40 * 28 * 28);
  const limited = await loadEvalSet({ kind: 'manifest', url: manifestUrl }, geometry, 7);
  assert.equal(limited.count, 7);
  assert.deepEqual(Array.from(limited.labels), labels.slice(0, 7));
});

test('an index whose member size disagrees with the tar header -> SADP_TAR_CORRUPT with shard and offset', async () => {
  const indexPath = join(dir, 'ds', 'index', 'train-000000.idx.json');
  const original = await readFile(indexPath, 'utf8');
  const index = JSON.parse(original) as ShardIndex;
  const member = index.samples[1]?.members[0];
  assert.ok(member);
  assert.ok(member.size > 0);
  member.size -= 1;
  await writeFile(indexPath, JSON.stringify(index));
  try {
    await assert.rejects(
      loadEvalSet({ kind: 'manifest', url: manifestUrl }, geometry, 1000),
      (err: unknown) =>
        isSadpError(err, 'SADP_TAR_CORRUPT') &&
        err.message.includes('train-000000.tar') &&
        err.message.includes(`byte ${member.headerOffset}`) &&
        err.message.includes(`"${member.name}"`),
    );
  } finally {
    await writeFile(indexPath, original);
  }
});
