// Shards written by other tools are indexed correctly: GNU tar (ustar, pax,
// gnu with a >100-character name) and Python's tarfile (PAX, GNU, USTAR).
// Offsets are verified by slicing the file: the data at [dataOffset, +size)
// is the file's content, and [offset, end) parses as exactly the sample.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  indexShard,
  indexShards,
  openDataset,
  splitMemberName,
  type ShardIndex,
} from '../../../loader/shards/index.js';
import { openStore } from '../../../storage/index.js';
import { startTempS3, type TempS3 } from '../../helpers/temp-s3.js';
import { tarMembers } from '../../helpers/tar.js';

const run = promisify(execFile);

let dir: string;
let src: string;
/** Relative path -> content of every file in the source tree. */
const files = new Map<string, Buffer>();
/** Sample keys in the order the writers see them (sorted paths). */
let expectedKeys: string[];

const LONG_DIR = `deep/${'d'.repeat(60)}`;
const LONG_BASE = `${'n'.repeat(110)}_0007`; // > 100 characters: needs PAX or GNU longname

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-foreign-'));
  src = join(dir, 'src');
  const add = (path: string, data: Buffer): void => void files.set(path, data);
  for (let i = 0; i < 12; i++) {
    const stem = String(i).padStart(6, '0');
    add(`${stem}.cls`, Buffer.from(String(i % 10)));
    add(`${stem}.jpg`, randomBytes(i === 3 ? 0 : 100 + i * 997)); // one empty member
    if (i % 3 === 0) add(`${stem}.seg.png`, randomBytes(513));
  }
  add(`${LONG_DIR}/000100.jpg`, randomBytes(2000)); // ustar prefix split works for this one
  add(`${LONG_DIR}/000100.cls`, Buffer.from('4'));
  for (const [path, data] of files) {
    await mkdir(join(src, path, '..'), { recursive: true });
    await writeFile(join(src, path), data);
  }
  expectedKeys = [...new Set([...files.keys()].sort().map((p) => splitMemberName(p).key))];
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** GNU tar of the tree, members in sorted order, directories included. */
async function gnuTar(format: string, extra: Map<string, Buffer> = new Map()): Promise<string> {
  const out = join(dir, `gnu-${format}.tar`);
  const tree = extra.size ? join(dir, `tree-${format}`) : src;
  if (extra.size) {
    await run('cp', ['-r', src, tree]);
    for (const [path, data] of extra) {
      await mkdir(join(tree, path, '..'), { recursive: true });
      await writeFile(join(tree, path), data);
    }
  }
  await run('tar', [`--format=${format}`, '--sort=name', '-C', tree, '-cf', out, '.']);
  return out;
}

async function pythonTar(
  format: 'PAX_FORMAT' | 'GNU_FORMAT' | 'USTAR_FORMAT',
  names: string[],
  root = src,
): Promise<string> {
  const out = join(dir, `py-${format}-${names.length}.tar`);
  const script = `
import sys, tarfile
out, fmt, root, *names = sys.argv[1:]
with tarfile.open(out, 'w', format=getattr(tarfile, fmt)) as tf:
    for n in names:
        tf.add(root + '/' + n, arcname=n, recursive=False)
`;
  await run('python3', ['-c', script, out, format, root, ...names]);
  return out;
}

/** Verifies an index against the tar's bytes and the source files (name prefix stripped). */
async function verify(
  tarPath: string,
  index: ShardIndex,
  content: Map<string, Buffer>,
  strip = '',
): Promise<void> {
  const bytes = await readFile(tarPath);
  assert.equal(index.size, bytes.length);
  const seen = new Set<string>();
  let prevEnd = 0;
  for (const s of index.samples) {
    assert.ok(s.offset >= prevEnd && s.offset % 512 === 0 && s.end % 512 === 0, `sample ${s.key} range`);
    prevEnd = s.end;
    assert.equal(s.offset, s.members[0]?.headerOffset);
    const parsed = await tarMembers(bytes.subarray(s.offset, s.end), { filesOnly: true });
    assert.deepEqual(
      parsed.map((p) => p.name),
      s.members.map((m) => m.name),
      `slice [${s.offset}, ${s.end}) of ${s.key} holds exactly its members`,
    );
    for (const m of s.members) {
      const path = m.name.slice(strip.length);
      const want = content.get(path);
      assert.ok(want, `unexpected member ${m.name}`);
      assert.equal(m.size, want.length, m.name);
      assert.deepEqual(bytes.subarray(m.dataOffset, m.dataOffset + m.size), want, `data of ${m.name}`);
      assert.ok(m.headerOffset + 512 <= m.dataOffset);
      seen.add(path);
    }
  }
  assert.deepEqual([...seen].sort(), [...content.keys()].sort(), 'every file is indexed once');
}

async function indexLocal(tarPath: string): Promise<ShardIndex> {
  const { index } = await indexShard(openStore(dir), tarPath.slice(dir.length + 1));
  return index;
}

describe('GNU tar', () => {
  test('--format=ustar (long path split into the ustar prefix; directory entries skipped)', async () => {
    const path = await gnuTar('ustar');
    const index = await indexLocal(path);
    assert.deepEqual(
      index.samples.map((s) => s.key),
      expectedKeys.map((k) => `./${k}`),
    );
    await verify(path, index, files, './');
  });

  test('--format=pax with a >100-character basename (PAX x headers)', async () => {
    const long = new Map([
      [`${LONG_DIR}/${LONG_BASE}.jpg`, randomBytes(3000)],
      [`${LONG_DIR}/${LONG_BASE}.cls`, Buffer.from('9')],
    ]);
    const path = await gnuTar('pax', long);
    const index = await indexLocal(path);
    const all = new Map([...files, ...long]);
    await verify(path, index, all, './');
    const sample = index.samples.find((s) => s.key.endsWith(LONG_BASE));
    assert.ok(sample, 'the long-named sample is indexed');
    assert.deepEqual(
      sample.members.map((m) => m.ext),
      ['cls', 'jpg'],
    );
    // The member starts at its PAX header, one header + PAX data before the ustar header.
    for (const m of sample.members)
      assert.ok(m.dataOffset - m.headerOffset >= 3 * 512, `${m.name} includes its PAX header`);
  });

  test('--format=gnu with a >100-character basename (././@LongLink)', async () => {
    const long = new Map([
      [`${LONG_DIR}/${LONG_BASE}.jpg`, randomBytes(1500)],
      [`${LONG_DIR}/${LONG_BASE}.txt`, Buffer.from('x')],
    ]);
    const path = await gnuTar('gnu', long);
    const index = await indexLocal(path);
    await verify(path, index, new Map([...files, ...long]), './');
    const sample = index.samples.find((s) => s.key.endsWith(LONG_BASE));
    assert.ok(sample);
    const bytes = await readFile(path);
    for (const m of sample.members) {
      // The member's first header is the GNU longname header.
      assert.equal(bytes.subarray(m.headerOffset, m.headerOffset + 13).toString(), '././@LongLink');
    }
  });
});

describe("Python's tarfile", () => {
  const names = (): string[] => [...files.keys()].sort();

  test('PAX_FORMAT', async () => {
    const path = await pythonTar('PAX_FORMAT', names());
    const index = await indexLocal(path);
    assert.deepEqual(
      index.samples.map((s) => s.key),
      expectedKeys,
    );
    await verify(path, index, files);
  });

  test('GNU_FORMAT', async () => {
    const path = await pythonTar('GNU_FORMAT', names());
    await verify(path, await indexLocal(path), files);
  });

  test('USTAR_FORMAT', async () => {
    const path = await pythonTar('USTAR_FORMAT', names());
    await verify(path, await indexLocal(path), files);
  });

  test('PAX with non-ASCII and >100-character names (PAX path records)', async () => {
    const extra = new Map([
      [`ünïcødé/${'x'.repeat(120)}.jpg`, randomBytes(700)],
      [`ünïcødé/${'x'.repeat(120)}.cls`, Buffer.from('1')],
    ]);
    const root = join(dir, 'unicode');
    for (const [p, d] of extra) {
      await mkdir(join(root, p, '..'), { recursive: true });
      await writeFile(join(root, p), d);
    }
    const path = await pythonTar('PAX_FORMAT', [...extra.keys()], root);
    const index = await indexLocal(path);
    assert.equal(index.samples.length, 1);
    assert.equal(index.samples[0]?.key, `ünïcødé/${'x'.repeat(120)}`);
    await verify(path, index, extra);
  });
});

describe('indexShards over S3 with a brace pattern', () => {
  let tmp: TempS3;

  before(async () => {
    tmp = await startTempS3({ prefix: 'sadp-foreign-s3-', buckets: ['foreign'] });
  });

  after(() => tmp?.close());

  test('shards from GNU tar and tarfile, uploaded to S3, index into one dense manifest', async () => {
    const store = openStore('s3://foreign/wds', { client: tmp.client });
    const paths = [await gnuTar('ustar'), await pythonTar('PAX_FORMAT', [...files.keys()].sort())];
    for (const [i, p] of paths.entries())
      await store.put(`part-${String(i).padStart(6, '0')}.tar`, await readFile(p));
    const manifest = await indexShards('s3://foreign/wds/part-{000000..000001}.tar', {
      out: 's3://foreign/wds/manifest.json',
      client: tmp.client,
    });
    assert.deepEqual(
      manifest.shards.map((s) => [s.url, s.firstId, s.samples]),
      [
        ['part-000000.tar', 0, expectedKeys.length],
        ['part-000001.tar', expectedKeys.length, expectedKeys.length],
      ],
    );
    assert.deepEqual(manifest.fields, ['cls', 'jpg', 'seg.png']);
    const dataset = await openDataset('s3://foreign/wds/manifest.json', { client: tmp.client });
    assert.equal(dataset.size, 2 * expectedKeys.length);
    assert.equal(dataset.key(expectedKeys.length + 1), expectedKeys[1]);
    await verify(paths[1] as string, dataset.shardIndex(1), files);

    // The same shards indexed into a manifest elsewhere keep absolute URLs and still open.
    const elsewhere = await indexShards('s3://foreign/wds/', {
      out: join(dir, 'local-manifest'),
      client: tmp.client,
      concurrency: 2,
    });
    assert.deepEqual(
      elsewhere.shards.map((s) => s.url),
      ['s3://foreign/wds/part-000000.tar', 's3://foreign/wds/part-000001.tar'],
    );
    const remote = await openDataset(join(dir, 'local-manifest', 'manifest.json'), { client: tmp.client });
    const id = 3;
    const bytes = await remote.store.get(remote.shardKey(0), {
      start: remote.offsets[id],
      end: remote.ends[id],
    });
    const parsed = await tarMembers(bytes, { filesOnly: true });
    assert.deepEqual(
      parsed.map((p) => p.name),
      remote.shardIndex(0).samples[id]?.members.map((m) => m.name),
    );
  });
});
