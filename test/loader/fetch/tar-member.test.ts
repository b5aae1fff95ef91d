// The header-chain parser against tars written by tar-stream (ustar, prefix
// split, PAX long and non-ASCII names) and a hand-built GNU long-name member.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pack } from 'tar-stream';
import { parseMemberAt, TarHeaderError } from '../../../loader/fetch/tar-member.js';
import { tarMembers } from '../../helpers/tar.js';

interface Entry {
  name: string;
  data: Uint8Array;
}

async function packTar(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of p as AsyncIterable<Buffer>) chunks.push(chunk);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      p.entry({ name: e.name, size: e.data.length, mtime: new Date(0) }, Buffer.from(e.data), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Walks a whole tar with parseMemberAt until the end-of-archive blocks. */
function walk(tar: Buffer): { name: string; data: Buffer }[] {
  const out: { name: string; data: Buffer }[] = [];
  let pos = 0;
  while (pos + 512 <= tar.length && tar.subarray(pos, pos + 512).some((b) => b !== 0)) {
    const m = parseMemberAt(tar, pos);
    out.push({ name: m.name, data: tar.subarray(m.dataStart, m.dataStart + m.size) });
    pos = m.dataStart + Math.ceil(m.size / 512) * 512;
  }
  return out;
}

const segment = fc.stringMatching(/^[a-z0-9_ é漢]{1,40}$/);
const nameArb = fc
  .array(segment, { minLength: 1, maxLength: 6 })
  .map((parts) => `${parts.join('/')}.${parts.length % 2 === 0 ? 'png' : 'seg.json'}`);

test('parses every member tar-stream writes, PAX and prefix-split names included', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ name: nameArb, data: fc.uint8Array({ maxLength: 2000 }) }), {
        minLength: 1,
        maxLength: 8,
      }),
      async (entries) => {
        const tar = await packTar(entries);
        assert.deepEqual(walk(tar), await tarMembers(tar));
      },
    ),
    { numRuns: 60 },
  );
});

test('a name longer than 100 bytes without a split point comes from the PAX header', async () => {
  const name = `${'x'.repeat(150)}.cls`;
  const tar = await packTar([{ name, data: Buffer.from('7') }]);
  assert.equal(tar[156], 0x78, 'tar-stream wrote a PAX header first');
  const m = parseMemberAt(tar, 0);
  assert.equal(m.name, name);
  assert.equal(tar.subarray(m.dataStart, m.dataStart + m.size).toString(), '7');
});

function gnuBlock(name: string, size: number, type: string, magic: 'gnu' | 'posix'): Buffer {
  const b = Buffer.alloc(512);
  b.write(name.slice(0, 100), 0, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  b.write('00000000000\0', 136);
  b.write(type, 156);
  if (magic === 'gnu') b.write('ustar  \0', 257, 'latin1');
  else b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

test('a GNU long-name (L) header names the member that follows', () => {
  const long = `dir/${'y'.repeat(200)}.jpg`;
  const payload = Buffer.alloc(512);
  payload.write(`${long}\0`);
  const data = Buffer.alloc(512);
  data.write('hello');
  const tar = Buffer.concat([
    gnuBlock('././@LongLink', long.length + 1, 'L', 'gnu'),
    payload,
    gnuBlock(long.slice(0, 100), 5, '0', 'gnu'),
    data,
  ]);
  const m = parseMemberAt(tar, 0);
  assert.equal(m.name, long);
  assert.equal(m.size, 5);
  assert.equal(m.dataStart, 1536);
});

test('a flipped header byte, a zero block, a directory and a short buffer are errors with the offset', async () => {
  const tar = await packTar([
    { name: 'a.cls', data: Buffer.from('1') },
    { name: 'b.cls', data: Buffer.from('2') },
  ]);
  const flipped = Buffer.from(tar);
  flipped[1024 + 3] = (flipped[1024 + 3] ?? 0) ^ 0x01;
  assert.throws(
    () => parseMemberAt(flipped, 1024),
    (err: unknown) => err instanceof TarHeaderError && err.at === 1024 && /checksum/.test(err.message),
  );
  assert.throws(
    () => parseMemberAt(tar, 2048),
    (err: unknown) => err instanceof TarHeaderError && /zero block/.test(err.message),
  );
  assert.throws(
    () => parseMemberAt(tar.subarray(0, 700), 512),
    (err: unknown) => err instanceof TarHeaderError && err.at === 512,
  );
  const dir = gnuBlock('somedir/', 0, '5', 'posix');
  assert.throws(
    () => parseMemberAt(dir, 0),
    (err: unknown) => err instanceof TarHeaderError && /not a regular file/.test(err.message),
  );
});
