// The one tar header parser, as the indexer's scanner and the cutter both see
// it: GNU base-256 sizes, negative and oversized numbers, and PAX records the
// two used to read differently (a malformed `size` record).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSadpError } from '../../../common/errors.js';
import { parseMemberAt } from '../../../loader/fetch/tar-member.js';
import { TarHeaderError, TarScanner, decodeHeader, type TarRecord } from '../../../loader/shards/index.js';

function checksum(b: Buffer): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

function header(name: string, type: string, size: number | Buffer): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  if (typeof size === 'number') b.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  else size.copy(b, 124);
  b.write('00000000000\0', 136);
  b.write(type, 156);
  b.write('ustar\x0000', 257, 'latin1');
  checksum(b);
  return b;
}

const base256 = (n: number, first = 0x80): Buffer => {
  const f = Buffer.alloc(12);
  f[0] = first;
  f.writeUIntBE(n, 6, 6);
  return f;
};

function pax(records: string[]): Buffer {
  const body = records
    .map((r) => {
      let len = r.length + 3;
      while (`${len} ${r}\n`.length !== len) len++;
      return `${len} ${r}\n`;
    })
    .join('');
  const data = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  data.write(body);
  return Buffer.concat([header('PaxHeaders/x', 'x', body.length), data]);
}

function scan(tar: Buffer): TarRecord[] {
  const scanner = new TarScanner('t.tar');
  const out: TarRecord[] = [];
  scanner.push(tar, out);
  scanner.finish();
  return out;
}

const data = (n: number): Buffer => Buffer.alloc(Math.ceil(n / 512) * 512, 0x61);
const end = Buffer.alloc(1024);

test('a GNU base-256 size reads like its octal twin, in the scanner and the cutter', () => {
  const octal = Buffer.concat([header('a.bin', '0', 700), data(700), end]);
  const binary = Buffer.concat([header('a.bin', '0', base256(700)), data(700), end]);
  assert.equal(decodeHeader(binary.subarray(0, 512), 0).size, 700);
  assert.deepEqual(scan(binary), scan(octal));
  assert.deepEqual(parseMemberAt(binary, 0), parseMemberAt(octal, 0));
});

test('negative and unsafe base-256 numbers are errors with the header offset', () => {
  const negative = header('a.bin', '0', base256(1, 0xff));
  assert.throws(
    () => decodeHeader(negative, 512),
    (err: unknown) =>
      err instanceof TarHeaderError && err.at === 512 && /negative base-256/.test(err.message),
  );
  const huge = header('a.bin', '0', base256(1, 0x81));
  assert.throws(() => decodeHeader(huge, 0), /base-256 number too large/);
  assert.throws(
    () => scan(Buffer.concat([huge, end])),
    (err: unknown) => isSadpError(err, 'SADP_TAR_CORRUPT') && /t\.tar.*offset 0.*too large/.test(err.message),
  );
});

test('a PAX size record overrides the header; a malformed one fails both readers alike', () => {
  const good = Buffer.concat([
    pax(['size=5', 'path=long/name.bin']),
    header('short.bin', '0', 0),
    data(5),
    end,
  ]);
  const [rec] = scan(good);
  assert.equal(rec?.size, 5);
  assert.deepEqual(parseMemberAt(good, 0), { name: 'long/name.bin', size: 5, dataStart: 1536 });
  const bad = Buffer.concat([pax(['size=5x']), header('short.bin', '0', 0), data(5), end]);
  assert.throws(() => parseMemberAt(bad, 0), /bad PAX size "5x"/);
  assert.throws(
    () => scan(bad),
    (err: unknown) => isSadpError(err, 'SADP_TAR_CORRUPT') && /offset 0: bad PAX size "5x"/.test(err.message),
  );
});
