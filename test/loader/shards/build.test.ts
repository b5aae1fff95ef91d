// Shards written by buildShards are ordinary tar files: GNU tar lists them and
// Python's tarfile reads the same names and bytes the source produced; their
// indexes point at the right bytes; the dataset opens from local disk and S3.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fashionMnistAvailable, readFashionMnist } from '../../../common/datasets/fashion-mnist.js';
import { isSadpError } from '../../../common/errors.js';
import {
  buildShards,
  decodeNpyUint8,
  fashionMnistSource,
  imageFolderSource,
  indexShard,
  openDataset,
  syntheticSampleSize,
  syntheticSource,
  type DatasetManifest,
  type Sample,
  type SampleSource,
  type ShardIndex,
} from '../../../loader/shards/index.js';
import { openStore } from '../../../storage/index.js';
import { startTempS3, type TempS3 } from '../../helpers/temp-s3.js';
import { tarMembers } from '../../helpers/tar.js';

const run = promisify(execFile);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let tmp: TempS3;

before(async () => {
  tmp = await startTempS3({ prefix: 'sadp-build-', buckets: ['shards'] });
});

after(() => tmp?.close());

/** Every sample a source yields, as name -> sha256, in order. */
async function expectedMembers(source: SampleSource): Promise<Array<[string, string, number]>> {
  const out: Array<[string, string, number]> = [];
  for await (const s of source.samples()) {
    for (const m of s.members) out.push([`${s.key}.${m.ext}`, sha(m.data), m.data.length]);
  }
  return out;
}

/** Members of all shards as Python's tarfile sees them: [name, sha256, size]. */
async function pythonMembers(paths: string[]): Promise<Array<[string, string, number]>> {
  const script = `
import hashlib, json, sys, tarfile
out = []
for path in sys.argv[1:]:
    with tarfile.open(path, 'r:') as tf:
        for m in tf:
            if m.isfile():
                out.append([m.name, hashlib.sha256(tf.extractfile(m).read()).hexdigest(), m.size])
print(json.dumps(out))
`;
  const { stdout } = await run('python3', ['-c', script, ...paths], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as Array<[string, string, number]>;
}

/** `tar -tvf` listing: [name, size] for regular files. */
async function gnuTarMembers(path: string): Promise<Array<[string, number]>> {
  const { stdout } = await run('tar', ['-tvf', path]);
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      // -rw-r--r-- 0/0   1234 2000-01-01 00:00 name
      const m = /^-\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line);
      assert.ok(m, `unexpected tar -tv line: ${line}`);
      return [m[2] as string, Number(m[1])] as [string, number];
    });
}

/** Checks every sample's range and member offsets against the shard's bytes. */
async function checkIndexAgainstBytes(shard: Uint8Array, index: ShardIndex): Promise<void> {
  assert.equal(index.size, shard.length);
  for (const s of index.samples) {
    const parsed = await tarMembers(shard.subarray(s.offset, s.end));
    assert.deepEqual(
      parsed.map((p) => p.name),
      s.members.map((m) => m.name),
      `sample ${s.key} at offset ${s.offset}`,
    );
    for (const [i, m] of s.members.entries()) {
      assert.ok(m.name.startsWith(`${s.key}.`));
      assert.equal(m.ext, m.name.slice(s.key.length + 1));
      assert.deepEqual(Buffer.from(shard.subarray(m.dataOffset, m.dataOffset + m.size)), parsed[i]?.data);
    }
  }
}

function shardPaths(root: string, manifest: DatasetManifest): string[] {
  return manifest.shards.map((s) => join(root, s.url));
}

describe('buildShards: synthetic ImageNet-shaped samples', () => {
  const options = { count: 200, seed: 7, meanBytes: 4000 };
  let root: string;
  let manifest: DatasetManifest;

  before(async () => {
    root = join(tmp.dir, 'synthetic');
    manifest = await buildShards(syntheticSource(options), { out: root, shardBytes: 150_000 });
  });

  test('the manifest adds up: dense ids, several shards, each under the target unless a single sample', () => {
    assert.equal(manifest.samples, 200);
    assert.deepEqual(manifest.fields, ['cls', 'jpg']);
    assert.ok(manifest.shards.length > 3, `${manifest.shards.length} shards`);
    let next = 0;
    for (const s of manifest.shards) {
      assert.equal(s.firstId, next);
      next += s.samples;
      assert.ok(s.size <= 150_000 + 1024 || s.samples === 1, `shard ${s.url} is ${s.size} bytes`);
    }
    assert.equal(next, 200);
    assert.equal(
      manifest.bytes,
      manifest.shards.reduce((a, s) => a + s.bytes, 0),
    );
  });

  test('GNU tar lists exactly the members the source produced', async () => {
    const want = await expectedMembers(syntheticSource(options));
    const got = [];
    for (const path of shardPaths(root, manifest)) got.push(...(await gnuTarMembers(path)));
    assert.deepEqual(
      got,
      want.map(([name, , size]) => [name, size]),
    );
  });

  test("Python's tarfile reads identical names and bytes", async () => {
    const want = await expectedMembers(syntheticSource(options));
    assert.deepEqual(await pythonMembers(shardPaths(root, manifest)), want);
  });

  test('payload sizes follow the seeded lognormal and labels are in 0..999', async () => {
    const sizes: number[] = [];
    for await (const s of syntheticSource(options).samples()) {
      const jpg = s.members.find((m) => m.ext === 'jpg')?.data as Uint8Array;
      const cls = Number(Buffer.from(s.members.find((m) => m.ext === 'cls')?.data as Uint8Array).toString());
      assert.equal(jpg.length, syntheticSampleSize(Number(s.key), options));
      assert.ok(Number.isInteger(cls) && cls >= 0 && cls < 1000);
      sizes.push(jpg.length);
    }
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    assert.ok(mean > 3000 && mean < 5000, `mean ${mean}`);
    assert.ok(new Set(sizes).size > 150, 'sizes vary');
  });

  test('the same seed gives byte-identical shards; another seed does not', async () => {
    const again = await buildShards(syntheticSource(options), {
      out: join(tmp.dir, 'synthetic-again'),
      shardBytes: 150_000,
    });
    const other = await buildShards(syntheticSource({ ...options, seed: 8 }), {
      out: join(tmp.dir, 'synthetic-other'),
      shardBytes: 150_000,
    });
    const first = await readFile(join(root, manifest.shards[0]?.url as string));
    assert.equal(
      sha(await readFile(join(tmp.dir, 'synthetic-again', again.shards[0]?.url as string))),
      sha(first),
    );
    assert.notEqual(
      sha(await readFile(join(tmp.dir, 'synthetic-other', other.shards[0]?.url as string))),
      sha(first),
    );
  });

  test('every index entry points at the right bytes, and openDataset fills the flat arrays from them', async () => {
    const dataset = await openDataset(join(root, 'manifest.json'));
    assert.equal(dataset.size, 200);
    assert.equal(dataset.shardCount, manifest.shards.length);
    for (let shard = 0; shard < dataset.shardCount; shard++) {
      const bytes = await readFile(join(root, dataset.shardKey(shard)));
      const index = dataset.shardIndex(shard);
      const onDisk = JSON.parse(
        await readFile(join(root, manifest.shards[shard]?.index as string), 'utf8'),
      ) as unknown;
      assert.deepEqual(index, onDisk, 'the in-memory index is the index file');
      await checkIndexAgainstBytes(bytes, index);
      index.samples.forEach((s, i) => {
        const id = index.firstId + i;
        assert.equal(dataset.offsets[id], s.offset);
        assert.equal(dataset.ends[id], s.end);
        assert.equal(dataset.shardOf(id), shard);
        assert.equal(dataset.key(id), s.key);
      });
    }
    assert.equal(dataset.key(0), '000000');
    assert.equal(dataset.key(199), '000199');
  });
});

describe(
  'buildShards: Fashion-MNIST',
  { skip: !fashionMnistAvailable() && 'Fashion-MNIST idx files not installed' },
  () => {
    test('.npy holds the 28x28 pixels and .cls the label of each image', async () => {
      const root = join(tmp.dir, 'fmnist');
      const manifest = await buildShards(fashionMnistSource({ split: 'test', limit: 200 }), {
        out: root,
        prefix: 'test',
        shardBytes: 100_000,
      });
      assert.equal(manifest.samples, 200);
      assert.equal(manifest.source, 'fashion-mnist:test');
      assert.deepEqual(manifest.fields, ['cls', 'npy']);
      const data = await readFashionMnist('test');
      const dataset = await openDataset(join(root, 'manifest.json'));
      for (const id of [0, 1, 57, 199]) {
        const shard = dataset.shardOf(id);
        const index = dataset.shardIndex(shard);
        const sample = index.samples[id - index.firstId];
        assert.ok(sample);
        const bytes = await dataset.store.get(dataset.shardKey(shard), {
          start: sample.offset,
          end: sample.end,
        });
        const members = await tarMembers(bytes);
        const npy = members.find((m) => m.name.endsWith('.npy'))?.data as Buffer;
        const cls = members.find((m) => m.name.endsWith('.cls'))?.data.toString();
        const { shape, data: pixels } = decodeNpyUint8(npy);
        assert.deepEqual(shape, [28, 28]);
        assert.deepEqual(Buffer.from(pixels), Buffer.from(data.pixels.subarray(id * 784, (id + 1) * 784)));
        assert.equal(cls, String(data.labels[id]));
      }
      const { stdout } = await run('python3', [
        '-c',
        'import tarfile,sys; tf=tarfile.open(sys.argv[1]); print(",".join(m.name for m in tf.getmembers()[:4]))',
        join(root, 'test-000000.tar'),
      ]);
      assert.equal(stdout.trim(), '000000.cls,000000.npy,000001.cls,000001.npy');
    });
  },
);

describe('buildShards: image folder', () => {
  test('class folders become .cls indexes in sorted order, files group by stem, classes.json is written', async () => {
    const input = join(tmp.dir, 'folder');
    const files: Record<string, string> = {
      'dog/b.jpg': 'dog-b',
      'cat/a.jpg': 'cat-a-jpg',
      'cat/a.json': '{"a":1}',
      'cat/sub/c.jpg': 'cat-sub-c',
      'cat/b.jpg': 'cat-b',
      'cat/.hidden': 'skip me',
      'ant/x.seg.png': 'ant-x',
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(input, path, '..'), { recursive: true });
      await writeFile(join(input, path), text);
    }
    const root = join(tmp.dir, 'folder-shards');
    const manifest = await buildShards(imageFolderSource({ input }), { out: root });
    assert.deepEqual(JSON.parse(await readFile(join(root, 'classes.json'), 'utf8')), ['ant', 'cat', 'dog']);
    assert.deepEqual(manifest.fields, ['cls', 'jpg', 'json', 'seg.png']);
    const got = await pythonMembers(shardPaths(root, manifest));
    const text = (name: string, body: string): [string, string, number] => [
      name,
      sha(Buffer.from(body)),
      body.length,
    ];
    assert.deepEqual(got, [
      text('ant/x.seg.png', 'ant-x'),
      text('ant/x.cls', '0'),
      text('cat/a.jpg', 'cat-a-jpg'),
      text('cat/a.json', '{"a":1}'),
      text('cat/a.cls', '1'),
      text('cat/b.jpg', 'cat-b'),
      text('cat/b.cls', '1'),
      text('cat/sub/c.jpg', 'cat-sub-c'),
      text('cat/sub/c.cls', '1'),
      text('dog/b.jpg', 'dog-b'),
      text('dog/b.cls', '2'),
    ]);
    const dataset = await openDataset(join(root, 'manifest.json'));
    assert.deepEqual(
      Array.from({ length: dataset.size }, (_, id) => dataset.key(id)),
      ['ant/x', 'cat/a', 'cat/b', 'cat/sub/c', 'dog/b'],
    );
  });
});

describe('buildShards to S3 (embedded server)', () => {
  test('shards stream into the bucket; the recorded ETags match HEAD; the dataset opens from s3://', async () => {
    const source = syntheticSource({ count: 200, seed: 3, meanBytes: 3000 });
    let progressCalls = 0;
    const manifest = await buildShards(source, {
      out: 's3://shards/ds',
      client: tmp.client,
      shardBytes: 200_000,
      onProgress: (p) => {
        progressCalls++;
        assert.equal(p.total, 200);
      },
    });
    assert.ok(progressCalls >= 200);
    const store = openStore('s3://shards/ds', { client: tmp.client });
    for (const s of manifest.shards) {
      const head = await store.head(s.url);
      assert.deepEqual(head && { size: head.size, etag: head.etag }, { size: s.size, etag: s.etag });
    }
    const dataset = await openDataset('s3://shards/ds/manifest.json', { client: tmp.client });
    assert.equal(dataset.size, 200);
    const shard = await store.get(dataset.shardKey(1), { ifMatch: manifest.shards[1]?.etag });
    await checkIndexAgainstBytes(shard, dataset.shardIndex(1));
    // The same source written locally gives the same bytes.
    const local = await buildShards(source, { out: join(tmp.dir, 'same-as-s3'), shardBytes: 200_000 });
    assert.equal(
      sha(await readFile(join(tmp.dir, 'same-as-s3', local.shards[1]?.url as string))),
      sha(shard),
    );
  });

  test('cancelling a build stops it with SADP_CANCELLED and writes no manifest', async () => {
    const controller = new AbortController();
    await assert.rejects(
      buildShards(syntheticSource({ count: 200, meanBytes: 50_000 }), {
        out: 's3://shards/cancelled',
        client: tmp.client,
        shardBytes: 2 * 1024 * 1024,
        signal: controller.signal,
        onProgress: (p) => p.samples === 60 && controller.abort(),
      }),
      (err: unknown) => isSadpError(err, 'SADP_CANCELLED'),
    );
    assert.equal(
      await openStore('s3://shards/cancelled', { client: tmp.client }).head('manifest.json'),
      undefined,
    );
  });

  test('a failing upload fails the build instead of hanging', async () => {
    const source: SampleSource = {
      name: 'big',
      *samples() {
        for (let i = 0; i < 50; i++) {
          yield {
            key: String(i).padStart(4, '0'),
            members: [{ ext: 'bin', data: Buffer.alloc(200_000, i) }],
          };
        }
      },
    };
    await assert.rejects(
      buildShards(source, {
        out: 's3://no-such-bucket/x',
        client: tmp.client,
        shardBytes: 100 * 1024 * 1024,
      }),
      (err: unknown) => err instanceof Error && /no-such-bucket/.test(err.message),
    );
  });
});

describe('buildShards groups members like the indexer', () => {
  const temp = { dir: '' };
  before(async () => {
    temp.dir = await mkdtemp(join(tmpdir(), 'sadp-build-group-'));
  });
  after(async () => {
    await rm(temp.dir, { recursive: true, force: true });
  });

  const sourceOf = (samples: Sample[]): SampleSource => ({ name: 'hand', samples: () => samples });

  test('an upper-case extension is indexed as its lower-case field, as indexShards reads the same shard', async () => {
    const out = join(temp.dir, 'upper');
    const manifest = await buildShards(
      sourceOf([
        {
          key: 'a/0001',
          members: [
            { ext: 'JPG', data: Buffer.from('img') },
            { ext: 'cls', data: Buffer.from('1') },
          ],
        },
        { key: 'a/0002', members: [{ ext: 'Seg.PNG', data: Buffer.from('seg') }] },
      ]),
      { out },
    );
    assert.deepEqual(manifest.fields, ['cls', 'jpg', 'seg.png']);
    const built = JSON.parse(
      await readFile(join(out, manifest.shards[0]?.index ?? ''), 'utf8'),
    ) as ShardIndex;
    assert.deepEqual(
      built.samples.map((s) => s.members.map((m) => [m.name, m.ext])),
      [
        [
          ['a/0001.JPG', 'jpg'],
          ['a/0001.cls', 'cls'],
        ],
        [['a/0002.Seg.PNG', 'seg.png']],
      ],
    );
    const { index } = await indexShard(openStore(out), manifest.shards[0]?.url ?? '');
    assert.deepEqual(index.samples, built.samples);
  });

  test('a key repeated in a shard or an extension repeated up to case -> SADP_SOURCE_INVALID naming the key', async () => {
    const one = (key: string, ext = 'cls'): Sample => ({ key, members: [{ ext, data: Buffer.from('1') }] });
    await assert.rejects(
      buildShards(sourceOf([one('k1'), one('k2'), one('k1')]), { out: join(temp.dir, 'rep') }),
      (err: unknown) => isSadpError(err, 'SADP_SOURCE_INVALID') && err.message.includes('"k1"'),
    );
    await assert.rejects(
      buildShards(
        sourceOf([
          {
            key: 'k3',
            members: [
              { ext: 'jpg', data: Buffer.from('1') },
              { ext: 'JPG', data: Buffer.from('2') },
            ],
          },
        ]),
        { out: join(temp.dir, 'case') },
      ),
      (err: unknown) => isSadpError(err, 'SADP_SOURCE_INVALID') && err.message.includes('"k3"'),
    );
  });
});
