// Bad shards, indexes and manifests fail with a SadpError whose code says
// what is wrong and whose message names the shard and the byte offset.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { isSadpError, type SadpErrorCode } from '../../../common/errors.js';
import {
  buildShards,
  indexShard,
  indexShards,
  openDataset,
  syntheticSource,
  type DatasetManifest,
  type ShardIndex,
} from '../../../loader/shards/index.js';
import { openStore, type ObjectStore } from '../../../storage/index.js';
import { startTempS3, type TempS3 } from '../../helpers/temp-s3.js';

let tmp: TempS3;
let root: string;
let manifest: DatasetManifest;
let shardBytes: Buffer;
let shardIndex: ShardIndex;

before(async () => {
  tmp = await startTempS3({ prefix: 'sadp-bad-', buckets: ['bad'], client: { maxAttempts: 1 } });
  root = join(tmp.dir, 'good');
  manifest = await buildShards(syntheticSource({ count: 200, meanBytes: 2000, seed: 5 }), {
    out: root,
    shardBytes: 120_000,
  });
  shardBytes = await readFile(join(root, 'train-000000.tar'));
  shardIndex = JSON.parse(await readFile(join(root, 'index', 'train-000000.idx.json'), 'utf8')) as ShardIndex;
});

after(() => tmp?.close());

function expectError(code: SadpErrorCode, ...mentions: Array<string | number>) {
  return (err: unknown): boolean => {
    assert.ok(isSadpError(err, code), `expected ${code}, got ${String(err)}`);
    for (const m of mentions)
      assert.ok(err.message.includes(String(m)), `"${err.message}" should mention ${m}`);
    return true;
  };
}

async function writeTar(name: string, entries: Array<[string, string]>): Promise<string> {
  const p = pack();
  for (const [member, body] of entries) p.entry({ name: member }, body);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  await writeFile(join(tmp.dir, name), Buffer.concat(chunks));
  return name;
}

describe('tar problems found while indexing', () => {
  test('a corrupt header checksum -> SADP_TAR_CORRUPT naming the shard and the header offset', async () => {
    const victim = shardIndex.samples[5]?.members[1];
    assert.ok(victim);
    const bytes = Buffer.from(shardBytes);
    bytes[victim.headerOffset + 3] = (bytes[victim.headerOffset + 3] ?? 0) ^ 0x20; // flip a bit of the name
    await writeFile(join(tmp.dir, 'corrupt.tar'), bytes);
    await assert.rejects(
      indexShard(openStore(tmp.dir), 'corrupt.tar'),
      expectError('SADP_TAR_CORRUPT', 'corrupt.tar', `offset ${victim.headerOffset}`),
    );
  });

  test('an object cut inside a member -> SADP_TAR_TRUNCATED naming the shard and the member offset', async () => {
    const victim = shardIndex.samples[7]?.members[1];
    assert.ok(victim);
    await writeFile(join(tmp.dir, 'cut.tar'), shardBytes.subarray(0, victim.dataOffset + 100));
    await assert.rejects(
      indexShard(openStore(tmp.dir), 'cut.tar'),
      expectError('SADP_TAR_TRUNCATED', 'cut.tar', `offset ${victim.headerOffset}`),
    );
  });

  test('an object cut exactly at a member boundary (no end-of-archive) -> SADP_TAR_TRUNCATED', async () => {
    const boundary = shardIndex.samples[9]?.end as number;
    await writeFile(join(tmp.dir, 'boundary.tar'), shardBytes.subarray(0, boundary));
    await assert.rejects(
      indexShard(openStore(tmp.dir), 'boundary.tar'),
      expectError('SADP_TAR_TRUNCATED', 'boundary.tar', `offset ${boundary}`),
    );
  });

  test('an object cut inside a header -> SADP_TAR_TRUNCATED at that header', async () => {
    const victim = shardIndex.samples[2]?.members[0];
    assert.ok(victim);
    await writeFile(join(tmp.dir, 'half-header.tar'), shardBytes.subarray(0, victim.headerOffset + 200));
    await assert.rejects(
      indexShard(openStore(tmp.dir), 'half-header.tar'),
      expectError('SADP_TAR_TRUNCATED', 'half-header.tar', `offset ${victim.headerOffset}`),
    );
  });

  test('a key coming back after another key (split sample) -> SADP_SHARD_INVALID with the offset', async () => {
    const name = await writeTar('split.tar', [
      ['a.jpg', 'A'],
      ['b.jpg', 'B'],
      ['a.cls', '1'],
    ]);
    await assert.rejects(
      indexShard(openStore(tmp.dir), name),
      expectError('SADP_SHARD_INVALID', 'split.tar', 'offset 2048', 'split sample'),
    );
  });

  test('an extension repeated within a sample -> SADP_SHARD_INVALID with the offset', async () => {
    const name = await writeTar('dup.tar', [
      ['a.jpg', 'A'],
      ['a.cls', '1'],
      ['a.jpg', 'again'],
    ]);
    await assert.rejects(
      indexShard(openStore(tmp.dir), name),
      expectError('SADP_SHARD_INVALID', 'dup.tar', 'offset 2048', '"jpg"'),
    );
  });

  test('directories and symlinks are skipped; __meta__.json is a sample, as in webdataset', async () => {
    const p = pack();
    p.entry({ name: '__meta__.json' }, '{}');
    p.entry({ name: 'dir/', type: 'directory' });
    p.entry({ name: 'dir/a.jpg' }, 'A');
    p.entry({ name: 'dir/a.cls' }, '1');
    p.entry({ name: 'link', type: 'symlink', linkname: 'dir/a.jpg' });
    p.entry({ name: 'dir/b.cls' }, '2');
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
    await writeFile(join(tmp.dir, 'meta.tar'), Buffer.concat(chunks));
    const { index, extensions } = await indexShard(openStore(tmp.dir), 'meta.tar');
    assert.deepEqual(
      index.samples.map((s) => [s.key, s.offset, s.members.map((m) => m.ext)]),
      [
        ['__meta__', 0, ['json']],
        ['dir/a', 1536, ['jpg', 'cls']],
        ['dir/b', 4096, ['cls']],
      ],
    );
    assert.deepEqual([...extensions].sort(), ['cls', 'jpg', 'json']);
  });

  test('an object changed between HEAD and GET -> SADP_OBJECT_CHANGED naming the shard and the pinned ETag', async () => {
    const store = openStore('s3://bad/changing', { client: tmp.client });
    const first = await store.put('shard.tar', shardBytes);
    // Replace the object right after the indexer's HEAD, before its GET.
    const racing: ObjectStore = {
      url: store.url,
      put: (k, b, o) => store.put(k, b, o),
      get: (k, o) => store.get(k, o),
      getStream: (k, o) => store.getStream(k, o),
      list: (p, o) => store.list(p, o),
      delete: (k, o) => store.delete(k, o),
      async head(k, o) {
        const info = await store.head(k, o);
        await store.put(k, shardBytes.subarray(0, shardBytes.length - 1024));
        return info;
      },
    };
    await assert.rejects(
      indexShard(racing, 'shard.tar'),
      expectError('SADP_OBJECT_CHANGED', 's3://bad/changing/shard.tar', first.etag),
    );
  });

  test('a shard pattern with a missing shard -> SADP_OBJECT_NOT_FOUND naming it', async () => {
    await assert.rejects(
      indexShards(join(root, 'train-{000000..000099}.tar'), { out: join(tmp.dir, 'partial') }),
      expectError('SADP_OBJECT_NOT_FOUND', 'train-0000'),
    );
  });
});

describe('bad manifests and indexes found by openDataset', () => {
  /** A copy of the good dataset on S3 with `edit` applied to its files. */
  async function variant(
    name: string,
    edit: (files: { manifest: DatasetManifest; indexes: Map<string, ShardIndex> }) => void,
    omitIndex?: string,
  ): Promise<string> {
    const store = openStore(`s3://bad/${name}`, { client: tmp.client });
    const m = structuredClone(manifest);
    const indexes = new Map<string, ShardIndex>();
    for (const s of m.shards) {
      indexes.set(s.index, JSON.parse(await readFile(join(root, s.index), 'utf8')) as ShardIndex);
    }
    edit({ manifest: m, indexes });
    for (const [key, idx] of indexes)
      if (key !== omitIndex) await store.put(key, Buffer.from(JSON.stringify(idx)));
    await store.put('manifest.json', Buffer.from(JSON.stringify(m)));
    return `s3://bad/${name}/manifest.json`;
  }

  test('the unchanged copy opens (the variants below differ only in their edit)', async () => {
    const dataset = await openDataset(await variant('ok', () => undefined), { client: tmp.client });
    assert.equal(dataset.size, 200);
  });

  test('missing manifest -> SADP_MANIFEST_MISSING naming it', async () => {
    await assert.rejects(
      openDataset('s3://bad/nothing-here/manifest.json', { client: tmp.client }),
      expectError('SADP_MANIFEST_MISSING', 's3://bad/nothing-here/manifest.json'),
    );
  });

  test('a field of the wrong type -> SADP_MANIFEST_INVALID naming the field', async () => {
    const url = await variant('schema', ({ manifest: m }) => {
      (m.shards[1] as unknown as Record<string, unknown>).size = 'big';
    });
    await assert.rejects(
      openDataset(url, { client: tmp.client }),
      expectError('SADP_MANIFEST_INVALID', 'shards.1.size'),
    );
  });

  test('a gap in firstIds -> SADP_MANIFEST_INVALID naming the shard', async () => {
    const url = await variant('gap', ({ manifest: m }) => {
      (m.shards[2] as { firstId: number }).firstId += 1;
    });
    await assert.rejects(
      openDataset(url, { client: tmp.client }),
      expectError('SADP_MANIFEST_INVALID', 'shards.2.firstId', manifest.shards[2]?.url as string),
    );
  });

  test('a missing index -> SADP_INDEX_MISSING naming the shard and the index', async () => {
    const victim = manifest.shards[1];
    assert.ok(victim);
    const url = await variant('missing', () => undefined, victim.index);
    await assert.rejects(
      openDataset(url, { client: tmp.client }),
      expectError('SADP_INDEX_MISSING', victim.url, `s3://bad/missing/${victim.index}`),
    );
  });

  test('manifest and index disagree on the sample count -> SADP_INDEX_MISMATCH naming the shard and an offset', async () => {
    const victim = manifest.shards[0];
    assert.ok(victim);
    let dropped = 0;
    const url = await variant('count', ({ indexes }) => {
      const idx = indexes.get(victim.index) as ShardIndex;
      dropped = (idx.samples.pop() as { offset: number }).offset;
    });
    assert.ok(dropped > 0);
    await assert.rejects(
      openDataset(url, { client: tmp.client }),
      expectError('SADP_INDEX_MISMATCH', victim.url, 'samples', `offset ${dropped}`),
    );
  });

  test('an index built for another version of the shard -> SADP_INDEX_MISMATCH naming both ETags', async () => {
    const victim = manifest.shards[3];
    assert.ok(victim);
    const url = await variant('etag', ({ indexes }) => {
      (indexes.get(victim.index) as ShardIndex).etag = 'feedfacefeedfacefeedfacefeedface';
    });
    await assert.rejects(
      openDataset(url, { client: tmp.client }),
      expectError('SADP_INDEX_MISMATCH', victim.url, 'feedfacefeedfacefeedfacefeedface', victim.etag),
    );
  });

  test('overlapping sample ranges in an index -> SADP_INDEX_INVALID naming the shard and the offset', async () => {
    const victim = manifest.shards[1];
    assert.ok(victim);
    let offset = 0;
    const url = await variant('overlap', ({ indexes }) => {
      const s = (indexes.get(victim.index) as ShardIndex).samples[4] as { offset: number };
      s.offset -= 512;
      offset = s.offset;
    });
    await assert.rejects(
      openDataset(url, { client: tmp.client }),
      expectError('SADP_INDEX_INVALID', victim.url, `offset ${offset}`),
    );
  });

  test('not JSON -> SADP_MANIFEST_INVALID', async () => {
    const store = openStore('s3://bad/garbage', { client: tmp.client });
    await store.put('manifest.json', Buffer.from('{"format": "sadp-webdataset", '));
    await assert.rejects(
      openDataset('s3://bad/garbage/manifest.json', { client: tmp.client }),
      expectError('SADP_MANIFEST_INVALID', 'JSON'),
    );
  });

  test('a shard rewritten after indexing fails reads pinned to the manifest ETag', async () => {
    const store = openStore('s3://bad/rewritten', { client: tmp.client });
    const built = await buildShards(syntheticSource({ count: 20, meanBytes: 1000 }), {
      out: store.url,
      client: tmp.client,
    });
    const dataset = await openDataset(`${store.url}/manifest.json`, { client: tmp.client });
    const entry = built.shards[0];
    assert.ok(entry);
    await store.put(entry.url, shardBytes);
    await assert.rejects(
      dataset.store.get(dataset.shardKey(0), {
        start: dataset.offsets[3],
        end: dataset.ends[3],
        ifMatch: entry.etag,
      }),
      expectError('SADP_OBJECT_CHANGED', `${store.url}/${entry.url}`, entry.etag),
    );
  });

  test('a truncated local shard is caught by the size check too', async () => {
    const copy = join(tmp.dir, 'copy');
    await buildShards(syntheticSource({ count: 30, meanBytes: 1000 }), { out: copy });
    await truncate(join(copy, 'train-000000.tar'), 2048);
    await assert.rejects(
      indexShards(join(copy, 'train-000000.tar'), { out: join(copy, 'reindexed.json') }),
      expectError('SADP_TAR_TRUNCATED', 'train-000000.tar', 'offset'),
    );
  });
});
