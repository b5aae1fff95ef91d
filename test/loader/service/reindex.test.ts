// A dataset re-indexed while a trainer is mid-epoch: the manifest is
// replaced (pointing at a new layout of the same samples) and every old
// shard overwritten. The loader's next GETs of old shards fail their ETag
// pin, it re-reads the manifest once (its ETag changed), and the epoch goes
// on from the new index without a restart: the trainer SDK receives exactly
// the plan, byte-identical, with no error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRangeReader, type FetchedSample } from '../../../loader/fetch/index.js';
import { buildShards, syntheticSource } from '../../../loader/shards/index.js';
import { openStore } from '../../../storage/index.js';
import { createLoaderClient } from '../../../trainer/client/index.js';
import { MEAN_BYTES, SAMPLES, SOURCE_SEED, getPlan, scoreOf, useStack } from './helpers.js';

const stack = useStack();

/** Re-indexes the rig's dataset in place: a new layout under ds2/, then the manifest swapped, then every old shard overwritten. */
async function reindex(): Promise<void> {
  const bucket = new URL(stack.manifestUrl).host;
  await buildShards(
    syntheticSource({ count: SAMPLES, meanBytes: MEAN_BYTES, seed: SOURCE_SEED, classes: 10 }),
    { out: `s3://${bucket}/ds2`, client: stack.s3Client, shardBytes: 20 * 1024 },
  );
  const ds2 = openStore(`s3://${bucket}/ds2`, { client: stack.s3Client });
  const ds = openStore(`s3://${bucket}/ds`, { client: stack.s3Client });
  const manifest = JSON.parse(Buffer.from(await ds2.get('manifest.json')).toString('utf8')) as {
    shards: Array<{ url: string; index: string }>;
  };
  for (const shard of manifest.shards) {
    shard.url = `s3://${bucket}/ds2/${shard.url}`;
    shard.index = `s3://${bucket}/ds2/${shard.index}`;
  }
  await ds.put('manifest.json', Buffer.from(JSON.stringify(manifest)));
  for (let s = 0; s < stack.dataset.shardCount; s++) {
    const key = stack.dataset.shardKey(s);
    await ds.put(key, Buffer.from(`replaced by a re-index: ${key}`));
  }
}

test('a re-index mid-epoch takes effect without a restart: the SDK gets exactly the plan, byte-identical', async () => {
  const jobId = await stack.createJob({ epochs: 1, pruneRatio: 0.5 });
  const plan = await getPlan(stack.scorerClient, jobId, 0);
  // What every sample holds, read before the re-index (the same samples are written again).
  const reference = new Map<number, FetchedSample>();
  const all = Array.from({ length: SAMPLES }, (_, i) => i);
  for (const s of await createRangeReader().read(stack.dataset, all)) reference.set(s.id, s);

  const loader = await stack.startLoader({ prefetchBatches: 2 });
  const client = createLoaderClient({ address: loader.address });
  const got: number[] = [];
  let reindexed = false;
  try {
    const stream = client.epoch({ job: jobId, epoch: 0, rank: 0, worldSize: 1, batchSize: 24 });
    for await (const batch of stream) {
      batch.ids.forEach((id, j) => {
        if (batch.padded[j]) return;
        got.push(id);
        const want = reference.get(id)!;
        for (const [field, bytes] of Object.entries(want.fields)) {
          const sent = batch.fields[field]?.[j];
          assert.ok(sent && Buffer.from(sent).equals(Buffer.from(bytes)), `sample ${id}.${field} differs`);
        }
      });
      if (!reindexed) {
        // Holding batch 0: the loader has fetched at most a few batches ahead.
        await reindex();
        reindexed = true;
      }
      await batch.ack({ scores: Array.from(batch.ids, scoreOf) });
    }
  } finally {
    client.close();
  }
  assert.deepEqual(
    [...got].sort((a, b) => a - b),
    [...plan.ids].sort((a, b) => a - b),
  );
  const { io, planner } = loader.stats();
  assert.ok(io.datasetReloads >= 1, `${io.datasetReloads} reloads`);
  // The planner's choices are in the loader's stats (the rig pins `ranges`).
  assert.equal(planner.mode, 'ranges');
  assert.ok(planner.plans >= 1);
  // Later batches came from the new layout.
  assert.ok(
    stack.requests.some((r) => r.key.includes('/ds2/')),
    'no GET of the re-indexed shards',
  );
});
