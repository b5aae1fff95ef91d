// One behavioural suite run against both ObjectStore implementations: a local
// directory and a bucket prefix on the embedded S3 server (s3rver on
// 127.0.0.1, real sockets, SDK v3).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isSadpError, type SadpErrorCode } from '../../common/errors.js';
import { openStore, PART_SIZE, type ObjectStore } from '../../storage/index.js';
import { startTempS3, type TempS3 } from '../helpers/temp-s3.js';

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

async function listAll(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: SadpErrorCode,
  includes: string[],
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isSadpError(err, code), `expected ${code}, got ${String(err)}`);
    for (const s of includes) assert.ok(err.message.includes(s), `message "${err.message}" should name ${s}`);
    return true;
  });
}

let tmp: TempS3;

before(async () => {
  tmp = await startTempS3({ prefix: 'sadp-store-', buckets: ['conformance'] });
});

after(() => tmp?.close());

const kinds: Array<[string, () => ObjectStore]> = [
  ['local directory', () => openStore(join(tmp.dir, 'local', 'root'))],
  ['embedded S3', () => openStore('s3://conformance/some/prefix', { client: tmp.client })],
];

for (const [kind, open] of kinds) {
  describe(`ObjectStore conformance: ${kind}`, () => {
    test('put then get returns the same bytes, size and a stable etag', async () => {
      const store = open();
      const body = randomBytes(10_000);
      const info = await store.put('a/b/c.bin', body);
      assert.equal(info.key, 'a/b/c.bin');
      assert.equal(info.size, body.length);
      assert.ok(info.etag.length > 0 && !info.etag.includes('"'));
      assert.deepEqual(Buffer.from(await store.get('a/b/c.bin')), body);
      const head = await store.head('a/b/c.bin');
      assert.deepEqual(head, info);
    });

    test('byte ranges: start inclusive, end exclusive, end clamped, streams too', async () => {
      const store = open();
      const body = randomBytes(5000);
      await store.put('range.bin', body);
      assert.deepEqual(
        Buffer.from(await store.get('range.bin', { start: 100, end: 612 })),
        body.subarray(100, 612),
      );
      assert.deepEqual(Buffer.from(await store.get('range.bin', { start: 4990 })), body.subarray(4990));
      assert.deepEqual(
        Buffer.from(await store.get('range.bin', { start: 4000, end: 9000 })),
        body.subarray(4000),
      );
      assert.equal((await store.get('range.bin', { start: 7, end: 7 })).length, 0);
      const stream = await store.getStream('range.bin', { start: 1, end: 4097 });
      assert.deepEqual(await collect(stream), body.subarray(1, 4097));
      await rejectsWith(store.get('range.bin', { start: 6000 }), 'SADP_RANGE_INVALID', ['range.bin']);
    });

    test('streamed puts larger than one multipart part round-trip', async () => {
      const store = open();
      const body = randomBytes(PART_SIZE + 123_457);
      const chunks = [body.subarray(0, 1000), body.subarray(1000, PART_SIZE), body.subarray(PART_SIZE)];
      const info = await store.put('big/obj.bin', Readable.from(chunks));
      assert.equal(info.size, body.length);
      assert.deepEqual(await store.head('big/obj.bin'), info);
      const tail = await store.get('big/obj.bin', {
        start: PART_SIZE - 10,
        end: PART_SIZE + 10,
        ifMatch: info.etag,
      });
      assert.deepEqual(Buffer.from(tail), body.subarray(PART_SIZE - 10, PART_SIZE + 10));
      assert.deepEqual(await collect(await store.getStream('big/obj.bin')), body);
    });

    test('ifMatch: the current etag reads, a stale one fails with SADP_OBJECT_CHANGED naming URL and etag', async () => {
      const store = open();
      const first = await store.put('pinned.bin', Buffer.from('version one'));
      assert.equal(
        Buffer.from(await store.get('pinned.bin', { ifMatch: first.etag })).toString(),
        'version one',
      );
      const second = await store.put('pinned.bin', Buffer.from('version two!'));
      assert.notEqual(second.etag, first.etag);
      await rejectsWith(
        store.get('pinned.bin', { ifMatch: first.etag, start: 0, end: 4 }),
        'SADP_OBJECT_CHANGED',
        [`${store.url}/pinned.bin`, first.etag],
      );
      await rejectsWith(store.getStream('pinned.bin', { ifMatch: first.etag }), 'SADP_OBJECT_CHANGED', [
        first.etag,
      ]);
      await rejectsWith(
        store.get('pinned.bin', { ifMatch: first.etag, start: 3, end: 3 }),
        'SADP_OBJECT_CHANGED',
        [first.etag],
      );
    });

    test('missing objects: get -> SADP_OBJECT_NOT_FOUND naming the URL, head -> undefined', async () => {
      const store = open();
      await rejectsWith(store.get('no/such/key'), 'SADP_OBJECT_NOT_FOUND', [`${store.url}/no/such/key`]);
      await rejectsWith(store.getStream('no/such/key', { start: 5 }), 'SADP_OBJECT_NOT_FOUND', [
        'no/such/key',
      ]);
      assert.equal(await store.head('no/such/key'), undefined);
    });

    test('list returns keys under a prefix in key order with sizes', async () => {
      const store = open();
      // (No file name sorting before `/` next to a directory: s3rver lists those out of order.)
      const keys = ['l/b.txt', 'l/c/d/e.txt', 'l/a/z.txt', 'l/a0', 'm/other.txt'];
      for (const k of keys) await store.put(k, Buffer.from(k));
      assert.deepEqual(await listAll(store, 'l/'), ['l/a/z.txt', 'l/a0', 'l/b.txt', 'l/c/d/e.txt']);
      assert.deepEqual(await listAll(store, 'l/a'), ['l/a/z.txt', 'l/a0']);
      assert.deepEqual(await listAll(store, 'nothing/'), []);
      const sizes = [];
      for await (const o of store.list('m/')) sizes.push(o.size);
      assert.deepEqual(sizes, ['m/other.txt'.length]);
    });

    test('delete removes an object and is idempotent', async () => {
      const store = open();
      await store.put('del/x', Buffer.from('x'));
      await store.delete('del/x');
      assert.equal(await store.head('del/x'), undefined);
      await store.delete('del/x');
      await rejectsWith(store.get('del/x'), 'SADP_OBJECT_NOT_FOUND', ['del/x']);
    });

    test('keys escaping the root are rejected', async () => {
      const store = open();
      for (const bad of ['../up', '/abs', 'a/../../b', '']) {
        await rejectsWith(store.put(bad, Buffer.from('x')), 'SADP_INVALID_KEY', []);
      }
    });

    test('an aborted signal cancels reads with SADP_CANCELLED', async () => {
      const store = open();
      await store.put('abort.bin', randomBytes(1000));
      await rejectsWith(store.get('abort.bin', { signal: AbortSignal.abort() }), 'SADP_CANCELLED', [
        'abort.bin',
      ]);
    });

    test('a destroyed stream of a large object does not block later reads', async () => {
      const store = open();
      const body = randomBytes(3 * 1024 * 1024);
      await store.put('partial.bin', body);
      for (let i = 0; i < 5; i++) {
        const stream = await store.getStream('partial.bin');
        const first = (await stream[Symbol.asyncIterator]().next()).value as Buffer;
        assert.deepEqual(first, body.subarray(0, first.length));
        stream.destroy();
      }
      assert.deepEqual(
        Buffer.from(await store.get('partial.bin', { start: 5, end: 10 })),
        body.subarray(5, 10),
      );
    });
  });
}

test('local put is atomic: no temp files are left and readers never see partial content', async () => {
  const root = join(tmp.dir, 'atomic');
  const store = openStore(root);
  const failing = new Readable({
    read() {
      this.push(Buffer.alloc(1000, 1));
      this.destroy(new Error('source failed mid-way'));
    },
  });
  await store.put('obj', Buffer.from('old content'));
  await assert.rejects(store.put('obj', failing));
  assert.equal(Buffer.from(await store.get('obj')).toString(), 'old content');
  assert.deepEqual(await readdir(root), ['obj']);
});

test('local list uses S3 byte order: `a.txt` sorts before `a/z.txt`', async () => {
  // s3rver walks directories and lists `a/z.txt` first; AWS S3 and this store use byte order.
  const store = openStore(join(tmp.dir, 'order'));
  for (const k of ['a/z.txt', 'a.txt', 'a0']) await store.put(k, Buffer.from(k));
  assert.deepEqual(await listAll(store, ''), ['a.txt', 'a/z.txt', 'a0']);
});

test('openStore accepts file:// URLs and plain paths and rejects other schemes', () => {
  assert.equal(openStore(`file://${tmp.dir}/x`).url, `file://${tmp.dir}/x`);
  assert.equal(openStore(join(tmp.dir, 'y')).url, `file://${tmp.dir}/y`);
  assert.equal(openStore('s3://bucket/a/b/', { client: tmp.client }).url, 's3://bucket/a/b');
  assert.throws(
    () => openStore('gs://bucket/x'),
    (err: unknown) => isSadpError(err, 'SADP_INVALID_URL'),
  );
  assert.throws(
    () => openStore('s3://Bad_Bucket/x'),
    (err: unknown) => isSadpError(err, 'SADP_INVALID_URL'),
  );
});
