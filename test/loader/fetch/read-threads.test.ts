// Read threads (readerOptions.threads): GET + cut in worker threads deliver
// the bytes a read on the calling thread delivers, with the same GETs and
// counters, and an error raised inside a worker reaches the caller with the
// calling thread's code, status and message (object and byte offset).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isSadpError, type SadpError } from '../../../common/errors.js';
import { createRangeReader, type RangeReaderOptions } from '../../../loader/fetch/index.js';
import { openDataset, type Dataset, type ShardIndex } from '../../../loader/shards/index.js';
import { s3OptionsForEmbedded } from '../../../storage/index.js';
import { mulberry32 } from '../../helpers/random.js';
import { diffSamples, startFixture, type Fixture } from './fixtures.js';

let fx: Fixture;

before(async () => {
  fx = await startFixture({ samples: 120, shardBytes: 96 * 1024, seed: 21 });
});

after(async () => {
  await fx.close();
});

function threaded(options: RangeReaderOptions = {}): RangeReaderOptions {
  return { ...options, threads: 1, threadS3: { ...s3OptionsForEmbedded(fx.s3), maxAttempts: 1 } };
}

/** The error `read` rejects with (it must reject). */
async function failure(read: Promise<unknown>): Promise<SadpError> {
  try {
    await read;
  } catch (err) {
    assert.ok(isSadpError(err), String(err));
    return err;
  }
  assert.fail('the read succeeded');
}

for (const where of ['local', 's3'] as const) {
  test(`reads from ${where} in a read thread equal the calling thread's: samples, GETs and counters`, async (t) => {
    const dataset = where === 'local' ? fx.local : fx.remote;
    const coin = mulberry32(where === 'local' ? 4 : 5);
    const here = createRangeReader({ planner: 'ranges', gapBytes: 0 });
    const there = createRangeReader(threaded({ planner: 'ranges', gapBytes: 0 }));
    t.after(() => there.close());
    const logs = { here: [] as string[], there: [] as string[] };
    here.onRequest = (r) => logs.here.push(`${r.key} ${r.start}-${r.end} #${r.attempt}`);
    there.onRequest = (r) => logs.there.push(`${r.key} ${r.start}-${r.end} #${r.attempt}`);
    for (let round = 0; round < 6; round++) {
      // A repeated id (a padded sample) comes back as the same sample.
      const ids = Array.from({ length: dataset.size }, (_, i) => i).filter(() => coin() < 0.3);
      ids.push(ids[0] as number);
      const [a, b] = await Promise.all([here.read(dataset, ids), there.read(dataset, ids)]);
      assert.equal(diffSamples(ids, b, fx.reference), undefined);
      assert.deepEqual(
        b.map((s) => [s.id, s.key, s.bytes, Object.keys(s.fields)]),
        a.map((s) => [s.id, s.key, s.bytes, Object.keys(s.fields)]),
      );
      assert.equal(b.at(-1), b[0], 'a repeated id yields the same object');
    }
    assert.deepEqual(logs.there.sort(), logs.here.sort());
    assert.deepEqual(there.stats, here.stats);
  });
}

test('a member that disagrees with the index: the read thread names shard and offset as the calling thread does', async (t) => {
  // Sample 2's first member renamed in the index only (see range-reader.test.ts).
  const opened = await openDataset(`${fx.dir}/local/manifest.json`);
  const indexKey = opened.manifest.shards[0]!.index;
  const originalIndex = await opened.store.get(indexKey);
  const index = JSON.parse(Buffer.from(originalIndex).toString('utf8')) as ShardIndex;
  const member = index.samples[2]!.members[0]!;
  member.name = member.name.replace(/\.cls$/, '.txt');
  member.ext = 'txt';
  await opened.store.put(indexKey, Buffer.from(JSON.stringify(index)));
  try {
    const tampered: Dataset = await openDataset(`${fx.dir}/local/manifest.json`);
    const there = createRangeReader(threaded({ gapBytes: 0 }));
    t.after(() => there.close());
    const expected = await failure(createRangeReader({ gapBytes: 0 }).read(tampered, [2]));
    const got = await failure(there.read(tampered, [2]));
    assert.equal(got.code, 'SADP_TAR_CORRUPT');
    assert.deepEqual([got.code, got.status, got.message], [expected.code, expected.status, expected.message]);
    assert.ok(got.message.includes(tampered.shardKey(0)), got.message);
    assert.ok(got.message.includes(`byte ${member.headerOffset}`), got.message);
    assert.equal(diffSamples([0, 1], await there.read(tampered, [0, 1]), fx.reference), undefined);
  } finally {
    await opened.store.put(indexKey, originalIndex);
  }
});

test('a shard overwritten after indexing: the read thread fails with the same SADP_OBJECT_CHANGED, samples named', async (t) => {
  const dataset = fx.remote;
  const shard = 2;
  const key = dataset.shardKey(shard);
  const original = await dataset.store.get(key);
  const altered = Buffer.from(original);
  altered[altered.length - 1] = 0xff;
  await dataset.store.put(key, altered);
  try {
    const id = dataset.manifest.shards[shard]!.firstId;
    const there = createRangeReader(threaded());
    t.after(() => there.close());
    const expected = await failure(createRangeReader().read(dataset, [id]));
    const got = await failure(there.read(dataset, [id]));
    assert.equal(got.code, 'SADP_OBJECT_CHANGED');
    assert.deepEqual([got.code, got.status, got.message], [expected.code, expected.status, expected.message]);
    assert.ok(got.message.includes(key) && got.message.includes(`samples ${id}..${id}`), got.message);
  } finally {
    await dataset.store.put(key, original);
  }
});

test('threads outside 0..64 are refused naming the option; a closed reader refuses reads', async () => {
  for (const threads of [-1, 1.5, 65]) {
    assert.throws(
      () => createRangeReader({ threads }),
      (err: unknown) => {
        assert.ok(isSadpError(err, 'SADP_INVALID_OPTION'), String(err));
        assert.match(err.message, /threads/);
        return true;
      },
    );
  }
  const reader = createRangeReader(threaded());
  assert.equal(diffSamples([3], await reader.read(fx.remote, [3]), fx.reference), undefined);
  await reader.close();
  const err = await failure(reader.read(fx.remote, [4]));
  assert.equal(err.code, 'SADP_CANCELLED');
});
