// WebDataset 1.x parity (loader/shards/README.md has the table): shards made
// by GNU tar and by Python's tarfile, holding each case where the conventions
// could differ, index into the samples webdataset yields, and the loader's
// read path returns their bytes; the two deliberate differences are refused
// with an error naming the shard and offset.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isSadpError } from '../../../common/errors.js';
import { createRangeReader } from '../../../loader/fetch/index.js';
import { indexShard, indexShards, openDataset, splitMemberName } from '../../../loader/shards/index.js';
import { openStore } from '../../../storage/index.js';

const run = promisify(execFile);
// Debian's interpreter: its tarfile is the one a user of this machine has.
const PYTHON = '/usr/bin/python3';

let dir: string;
let src: string;
const content = new Map<string, Buffer>();

/** Members in archive order; names ending in '/' are (empty) directories. */
const PARITY_ORDER = [
  'a.JPG', // field `jpg`: webdataset lower-cases extensions
  'a.cls',
  '__meta__.json', // an ordinary sample `__meta__`
  '__skipme__', // top-level meta member: skipped
  '__cache__/', // a directory: skipped
  '__cache__/x.txt', // under a meta directory: skipped
  'k1.jpg',
  'k1dir/', // a directory between two members of one key: skipped, k1 goes on
  'k1.cls',
  'k2.jpg',
  'README', // no extension: skipped, k2 goes on
  'k2.cls',
  'k3.txt',
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-wds-parity-'));
  src = join(dir, 'src');
  const names = [...PARITY_ORDER, 's.jpg', 't.jpg', 's.cls', 'd.jpg', 'd.JPG'];
  for (const name of names) {
    if (name.endsWith('/')) {
      await mkdir(join(src, name), { recursive: true });
      continue;
    }
    const data = randomBytes(300 + content.size * 701);
    content.set(name, data);
    await mkdir(join(src, name, '..'), { recursive: true });
    await writeFile(join(src, name), data);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function gnuTar(out: string, names: readonly string[]): Promise<string> {
  const path = join(dir, out);
  const members = names.map((n) => n.replace(/\/$/, ''));
  await run('tar', ['--format=gnu', '--no-recursion', '-C', src, '-cf', path, ...members]);
  return path;
}

async function pythonTar(out: string, names: readonly string[]): Promise<string> {
  const path = join(dir, out);
  const script = `
import sys, tarfile
out, root, *names = sys.argv[1:]
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as tf:
    for n in names:
        tf.add(root + '/' + n, arcname=n, recursive=False)
`;
  await run(PYTHON, ['-c', script, path, src, ...names.map((n) => n.replace(/\/$/, ''))]);
  return path;
}

const WRITERS = { 'GNU tar': gnuTar, 'Python tarfile': pythonTar } as const;

test('the naming rules are webdataset’s base_plus_ext, lcase and meta filter', () => {
  assert.deepEqual(splitMemberName('train/n01_10026.seg.PNG'), {
    key: 'train/n01_10026',
    ext: 'seg.png',
    skip: undefined,
  });
  assert.deepEqual(splitMemberName('./a.jpg'), { key: './a', ext: 'jpg', skip: undefined });
  assert.deepEqual(splitMemberName('dir.v1/a.jpg'), { key: 'dir.v1/a', ext: 'jpg', skip: undefined });
  assert.equal(splitMemberName('__meta__.json').key, '__meta__');
  assert.equal(splitMemberName('__key__').skip, 'meta');
  assert.equal(splitMemberName('__cache__/x.jpg').skip, 'meta');
  assert.equal(splitMemberName('sub/__x__').skip, 'no-extension');
  assert.equal(splitMemberName('README').skip, 'no-extension');
  assert.equal(splitMemberName('a.b/README').skip, 'no-extension');
});

for (const [writer, make] of Object.entries(WRITERS)) {
  describe(`shards made by ${writer}`, () => {
    test('index into the samples webdataset yields, and the read path returns their bytes', async () => {
      const file = await make(`parity-${writer.replace(/ /g, '-')}.tar`, PARITY_ORDER);
      const root = join(dir, `ds-${writer.replace(/ /g, '-')}`);
      await mkdir(root, { recursive: true });
      await writeFile(join(root, 'train-000000.tar'), await readFile(file));
      let skipped;
      const manifest = await indexShards(join(root, 'train-000000.tar'), {
        out: root,
        onProgress: (p) => (skipped = p.skipped),
      });
      assert.deepEqual(skipped, { notFile: 2, meta: 2, noExtension: 1 }, 'every skipped entry is counted');
      assert.deepEqual(manifest.fields, ['cls', 'jpg', 'json', 'txt']);
      const dataset = await openDataset(join(root, 'manifest.json'));
      const keys = Array.from({ length: dataset.size }, (_, id) => dataset.key(id));
      assert.deepEqual(keys, ['a', '__meta__', 'k1', 'k2', 'k3']);
      const reader = createRangeReader({ gapBytes: 0 });
      const samples = await reader.read(
        dataset,
        keys.map((_, id) => id),
      );
      const want: Record<string, Record<string, string>> = {
        a: { jpg: 'a.JPG', cls: 'a.cls' },
        __meta__: { json: '__meta__.json' },
        k1: { jpg: 'k1.jpg', cls: 'k1.cls' },
        k2: { jpg: 'k2.jpg', cls: 'k2.cls' },
        k3: { txt: 'k3.txt' },
      };
      for (const s of samples) {
        const fields = want[s.key]!;
        assert.deepEqual(Object.keys(s.fields).sort(), Object.keys(fields).sort(), s.key);
        for (const [field, name] of Object.entries(fields))
          assert.deepEqual(Buffer.from(s.fields[field]!), content.get(name), `${s.key}.${field}`);
      }
    });

    test('a split sample is refused (webdataset would yield the key twice)', async () => {
      const file = await make(`split-${writer.replace(/ /g, '-')}.tar`, ['s.jpg', 't.jpg', 's.cls']);
      await assert.rejects(indexShard(openStore(dir), file.slice(dir.length + 1)), (err: unknown) => {
        assert.ok(isSadpError(err, 'SADP_SHARD_INVALID'), String(err));
        assert.match(
          err.message,
          /split-.*\.tar: invalid WebDataset shard at offset \d+: member "s\.cls" continues sample "s"/,
        );
        return true;
      });
    });

    test('a field repeated in a sample (d.jpg, d.JPG) is refused, as webdataset refuses it', async () => {
      const file = await make(`dup-${writer.replace(/ /g, '-')}.tar`, ['d.jpg', 'd.JPG']);
      await assert.rejects(indexShard(openStore(dir), file.slice(dir.length + 1)), (err: unknown) => {
        assert.ok(isSadpError(err, 'SADP_SHARD_INVALID'), String(err));
        assert.match(err.message, /member "d\.JPG" repeats field "jpg" of sample "d"/);
        return true;
      });
    });
  });
}

test('a shard cut after its last member without end-of-archive blocks is refused (tarfile reads it)', async () => {
  const full = await readFile(await gnuTar('eof.tar', ['k1.jpg', 'k1.cls']));
  // The end of the last member's padding: everything after it is zero blocks.
  const last = 512 + Math.ceil(content.get('k1.jpg')!.length / 512) * 512;
  const cut = last + 512 + Math.ceil(content.get('k1.cls')!.length / 512) * 512;
  assert.ok(full.subarray(cut).every((b) => b === 0) && full.length > cut);
  await writeFile(join(dir, 'cut.tar'), full.subarray(0, cut));
  const { stdout } = await run(PYTHON, [
    '-c',
    'import sys, tarfile; print(",".join(tarfile.open(sys.argv[1]).getnames()))',
    join(dir, 'cut.tar'),
  ]);
  assert.equal(stdout.trim(), 'k1.jpg,k1.cls', 'Python tarfile reads the cut shard');
  await assert.rejects(indexShard(openStore(dir), 'cut.tar'), (err: unknown) => {
    assert.ok(isSadpError(err, 'SADP_TAR_TRUNCATED'), String(err));
    assert.match(err.message, new RegExp(`cut\\.tar: truncated at offset ${cut}: no end-of-archive marker`));
    return true;
  });
});
