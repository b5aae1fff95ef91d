// ETag pinning against a strict server: Debian's nginx answers 412 to an
// unquoted If-Match, as RFC 7232 allows. Both the lean GET path and the SDK
// path send the quoted entity-tag, so pinned reads of an unchanged object
// succeed, and a pin that no longer matches is SADP_OBJECT_CHANGED.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSadpError } from '../../common/errors.js';
import { createS3Client, openStore, type ObjectStore, type S3Client } from '../../storage/index.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';

let dir: string;
let nginx: Nginx;
let client: S3Client;
let store: ObjectStore;
const data = randomBytes(300_000);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-nginx-'));
  const started = await startNginx(dir);
  // .ci/run installs nginx-light; without it this fails loudly rather than skip.
  if (!started) throw new Error('nginx is not installed (apt-get install -y nginx-light)');
  nginx = started;
  await mkdir(join(dir, 'www', 'bkt', 'ds'), { recursive: true });
  await writeFile(join(dir, 'www', 'bkt', 'ds', 'object.bin'), data);
  // nginx ignores the signature; any key works.
  client = createS3Client({
    endpoint: nginx.endpoint,
    accessKeyId: 'k',
    secretAccessKey: 's',
    maxAttempts: 1,
  });
  store = openStore('s3://bkt/ds', { client });
});

after(async () => {
  client?.destroy();
  await nginx?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('nginx refuses an unquoted If-Match with 412 and accepts the quoted one', async () => {
  const info = await store.head('object.bin');
  assert.ok(info && info.etag !== '');
  const url = `${nginx.endpoint}/bkt/ds/object.bin`;
  const unquoted = await fetch(url, { headers: { 'If-Match': info.etag, Range: 'bytes=0-9' } });
  await unquoted.arrayBuffer();
  assert.equal(unquoted.status, 412);
  const quoted = await fetch(url, { headers: { 'If-Match': `"${info.etag}"`, Range: 'bytes=0-9' } });
  await quoted.arrayBuffer();
  assert.equal(quoted.status, 206);
});

test('pinned reads through the lean path and the SDK succeed; a stale pin is SADP_OBJECT_CHANGED', async () => {
  const info = await store.head('object.bin');
  assert.ok(info);
  const dest = Buffer.alloc(100_000);
  const n = await store.readInto!('object.bin', dest, 0, {
    start: 50_000,
    end: 150_000,
    ifMatch: info.etag,
    idleTimeoutMs: 10_000,
  });
  assert.equal(n, 100_000);
  assert.ok(dest.equals(data.subarray(50_000, 150_000)));
  const viaSdk = await store.get('object.bin', { start: 10, end: 20, ifMatch: info.etag });
  assert.ok(Buffer.from(viaSdk).equals(data.subarray(10, 20)));

  const stale = `${info.etag}0`;
  await assert.rejects(
    store.readInto!('object.bin', dest, 0, { start: 0, end: 10, ifMatch: stale, idleTimeoutMs: 10_000 }),
    (err: unknown) =>
      isSadpError(err, 'SADP_OBJECT_CHANGED') && err.message.includes('s3://bkt/ds/object.bin'),
  );
  await assert.rejects(store.get('object.bin', { start: 0, end: 10, ifMatch: stale }), (err: unknown) =>
    isSadpError(err, 'SADP_OBJECT_CHANGED'),
  );
});
