// Units: the offset scanner does not depend on how the stream is chunked,
// and the WebDataset key rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pack } from 'tar-stream';
import { TarScanner, splitMemberName, type TarRecord } from '../../../loader/shards/index.js';

async function tarOf(entries: Array<{ name: string; size: number }>): Promise<Buffer> {
  const p = pack();
  for (const e of entries) p.entry({ name: e.name }, Buffer.alloc(e.size, 0x61));
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function scan(bytes: Buffer, cuts: number[]): TarRecord[] {
  const scanner = new TarScanner('mem.tar');
  const out: TarRecord[] = [];
  let pos = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)]
    .sort((a, b) => a - b)
    .concat(bytes.length)) {
    scanner.push(bytes.subarray(pos, cut), out);
    pos = cut;
  }
  scanner.finish();
  assert.equal(scanner.offset, bytes.length);
  return out;
}

test('records are the same for any chunking, and match the entries written (long names use PAX)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({ long: fc.boolean(), size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 })) }),
        { minLength: 1, maxLength: 12 },
      ),
      fc.array(fc.nat({ max: 40_000 }), { maxLength: 30 }),
      async (specs, cuts) => {
        const entries = specs.map((s, i) => ({
          name: s.long
            ? `d/${'p'.repeat(120)}_${String(i).padStart(4, '0')}.bin`
            : `${String(i).padStart(4, '0')}.bin`,
          size: s.size,
        }));
        const bytes = await tarOf(entries);
        const whole = scan(bytes, []);
        assert.deepEqual(scan(bytes, cuts), whole);
        assert.equal(whole.length, entries.length);
        let next = 0;
        whole.forEach((r, i) => {
          const e = entries[i] as { name: string; size: number };
          assert.equal(r.headerOffset, next, `member ${i} starts where the previous ended`);
          assert.equal(r.size, e.size);
          assert.equal(r.dataOffset - r.headerOffset, e.name.length > 100 ? 3 * 512 : 512);
          assert.equal(r.end, r.dataOffset + Math.ceil(e.size / 512) * 512);
          next = r.end;
        });
      },
    ),
    { numRuns: 60 },
  );
});

test('splitMemberName: key up to the first dot of the basename, dirname kept (webdataset rules)', () => {
  assert.deepEqual(splitMemberName('000123.cls'), { key: '000123', ext: 'cls', skip: undefined });
  assert.deepEqual(splitMemberName('a.b/c/n0144_1.seg.png'), {
    key: 'a.b/c/n0144_1',
    ext: 'seg.png',
    skip: undefined,
  });
  assert.deepEqual(splitMemberName('./x/README'), { key: '', ext: '', skip: 'no-extension' });
  assert.deepEqual(splitMemberName('__key__.txt'), { key: '__key__', ext: 'txt', skip: undefined });
  // webdataset's regex backtracks to the dirname here: key `d/`, field `hidden`.
  assert.deepEqual(splitMemberName('d/.hidden'), { key: 'd/', ext: 'hidden', skip: undefined });
  assert.deepEqual(splitMemberName('.hidden'), { key: '', ext: '', skip: 'no-extension' });
});
