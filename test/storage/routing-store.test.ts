// The routing store: relative keys go to the root, absolute file:// and s3://
// keys to a store opened once per directory; a refused location fails the call.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRoutingStore, openStore, type ObjectStore } from '../../storage/index.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-routing-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('relative keys stay in the root; absolute keys are routed to their directory, opened once', async () => {
  const opened: string[] = [];
  const root = openStore(join(dir, 'root'));
  const store = createRoutingStore({
    root,
    open: (url) => {
      opened.push(url);
      return openStore(url);
    },
  });
  assert.equal(store.url, root.url);
  await store.put('a.txt', Buffer.from('root'));
  const elsewhere = `${pathToFileURL(join(dir, 'other')).href}/b.txt`;
  await store.put(elsewhere, Buffer.from('other'));
  assert.equal(await readFile(join(dir, 'root', 'a.txt'), 'utf8'), 'root');
  assert.equal(await readFile(join(dir, 'other', 'b.txt'), 'utf8'), 'other');
  assert.equal(Buffer.from(await store.get(elsewhere, { start: 1, end: 3 })).toString(), 'th');
  const info = await store.head(elsewhere);
  assert.equal(info?.key, elsewhere, 'head reports the key it was asked for');
  assert.equal(info?.size, 5);
  const dest = Buffer.alloc(4);
  assert.equal(await store.readInto?.(elsewhere, dest, 0, { start: 1, end: 5, idleTimeoutMs: 60_000 }), 4);
  assert.equal(dest.toString(), 'ther');
  const listed: string[] = [];
  for await (const o of store.list('')) listed.push(o.key);
  assert.deepEqual(listed, ['a.txt'], 'list covers the root only');
  await store.delete(elsewhere);
  assert.equal(await store.head(elsewhere), undefined);
  assert.deepEqual(opened, [pathToFileURL(join(dir, 'other')).href]);
});

test('a location the opener refuses fails the call, the root keeps working', async () => {
  const root: ObjectStore = openStore(join(dir, 'root2'));
  const store = createRoutingStore({
    root,
    open: (url) => {
      throw new Error(`refused ${url}`);
    },
  });
  await assert.rejects(store.get('s3://bucket/x/y.tar'), /refused s3:\/\/bucket\/x/);
  await store.put('ok.txt', Buffer.from('1'));
  assert.equal(Buffer.from(await store.get('ok.txt')).toString(), '1');
});
