// The embedded S3 server and the S3 store's failure mapping, with real
// sockets: s3rver on 127.0.0.1, the AWS CLI as an independent client, and the
// fault-injecting proxy for throttling, resets and short bodies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { inspect, promisify } from 'node:util';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { isSadpError, Status, type SadpError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import {
  createS3Client,
  isRetryableStorageError,
  openStore,
  s3OptionsForEmbedded,
  startEmbeddedS3,
  type ObjectStore,
  type S3Client,
} from '../../storage/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/s3-fault-proxy.js';
import { startTempS3, type TempS3 } from '../helpers/temp-s3.js';

const run = promisify(execFile);

let tmp: TempS3;
const BUCKET = 'embedded';

before(async () => {
  tmp = await startTempS3({ prefix: 'sadp-s3-', buckets: [BUCKET, 'second'] });
});

after(() => tmp?.close());

describe('startEmbeddedS3', () => {
  test('listens on 127.0.0.1 with an OS-chosen port and creates the buckets', async () => {
    assert.match(tmp.s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(tmp.s3.port > 0);
    assert.equal(tmp.s3.endpoint, `http://127.0.0.1:${tmp.s3.port}`);
    const store = openStore(`s3://second/p`, { client: tmp.client });
    await store.put('k', Buffer.from('v'));
    assert.equal(Buffer.from(await store.get('k')).toString(), 'v');
  });

  test('refuses a non-loopback host without allowNonLoopback (SADP_INSECURE_BIND)', async () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
      await assert.rejects(
        startEmbeddedS3({ dataDir: join(tmp.dir, 'refused'), host, port: 0 }),
        (err: unknown) => isSadpError(err, 'SADP_INSECURE_BIND') && err.message.includes(host),
      );
    }
  });

  test('binds a non-loopback address when explicitly allowed', async () => {
    const open = await startEmbeddedS3({
      dataDir: join(tmp.dir, 'open'),
      host: '0.0.0.0',
      port: 0,
      allowNonLoopback: true,
      buckets: ['wide'],
    });
    try {
      const c = createS3Client({ ...s3OptionsForEmbedded(open), endpoint: `http://127.0.0.1:${open.port}` });
      await openStore('s3://wide', { client: c }).put('x', Buffer.from('x'));
      c.destroy();
    } finally {
      await open.close();
    }
  });

  test('close() returns while a client still holds keep-alive connections, and frees the port', async () => {
    const other = await startEmbeddedS3({ dataDir: join(tmp.dir, 'closing'), buckets: ['bkt1'] });
    const c = createS3Client(s3OptionsForEmbedded(other));
    const store = openStore('s3://bkt1', { client: c });
    await store.put('a', Buffer.from('a'));
    const stream = await store.getStream('a'); // leave a response unconsumed
    await other.close();
    stream.destroy();
    c.destroy();
    const probe = createServer();
    await new Promise<void>((resolve, reject) =>
      probe.once('error', reject).listen(other.port, '127.0.0.1', resolve),
    );
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  test('serves ranged GETs as 206 with the ETag header, but ignores If-Match (why the store checks the ETag)', async () => {
    const store = openStore(`s3://${BUCKET}/raw`, { client: tmp.client });
    const info = await store.put('obj', randomBytes(4096));
    const out = await tmp.client.send(
      new GetObjectCommand({
        Bucket: BUCKET,
        Key: 'raw/obj',
        Range: 'bytes=10-19',
        IfMatch: '"0123456789abcdef"',
      }),
    );
    const body = await out.Body?.transformToByteArray();
    assert.equal(out.$metadata.httpStatusCode, 206, 's3rver should answer a Range GET with 206');
    assert.equal(out.ContentRange, 'bytes 10-19/4096');
    assert.equal(body?.length, 10);
    assert.equal(out.ETag?.replace(/"/g, ''), info.etag);
    // The store still refuses the stale pin:
    await assert.rejects(
      store.get('obj', { start: 10, end: 20, ifMatch: '0123456789abcdef' }),
      (err: unknown) => isSadpError(err, 'SADP_OBJECT_CHANGED'),
    );
  });
});

describe('AWS CLI against the embedded server', () => {
  test('uploads and downloads objects that the store reads back identically', async () => {
    // .ci/run installs awscli; without it this fails loudly rather than skip.
    await run('aws', ['--version']).catch((err: unknown) => {
      throw new Error('the `aws` CLI is not installed (apt-get install -y awscli)', { cause: err });
    });
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: tmp.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: tmp.s3.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      // Newer botocore adds CRC checksums by default; s3rver does not know them.
      AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
    };
    const aws = (...args: string[]): Promise<unknown> =>
      run('aws', ['--endpoint-url', tmp.s3.endpoint, '--only-show-errors', ...args], {
        env,
        timeout: 60_000,
      });
    const local = join(tmp.dir, 'cli');
    await mkdir(local, { recursive: true });
    // 9 MiB: above the CLI's 8 MiB multipart threshold.
    const body = randomBytes(9 * 1024 * 1024 + 17);
    await writeFile(join(local, 'up.bin'), body);
    await aws('s3', 'cp', join(local, 'up.bin'), `s3://${BUCKET}/cli/up.bin`);
    const store = openStore(`s3://${BUCKET}/cli`, { client: tmp.client });
    const info = await store.head('up.bin');
    assert.equal(info?.size, body.length);
    assert.deepEqual(
      Buffer.from(await store.get('up.bin', { start: 5, end: 1000, ifMatch: info?.etag })),
      body.subarray(5, 1000),
    );

    const mine = randomBytes(300_000);
    await store.put('down.bin', mine);
    await aws('s3', 'cp', `s3://${BUCKET}/cli/down.bin`, join(local, 'down.bin'));
    assert.deepEqual(await readFile(join(local, 'down.bin')), mine);
  });
});

describe('failure mapping', () => {
  let proxy: FaultProxy;
  let viaProxy: S3Client;
  let store: ObjectStore;
  const body = randomBytes(256 * 1024);

  before(async () => {
    proxy = await startFaultProxy({ target: tmp.s3.endpoint });
    viaProxy = createS3Client({ ...s3OptionsForEmbedded(tmp.s3), endpoint: proxy.endpoint, maxAttempts: 1 });
    store = openStore(`s3://${BUCKET}/faults`, { client: viaProxy });
    await openStore(`s3://${BUCKET}/faults`, { client: tmp.client }).put('obj.bin', body);
  });

  after(async () => {
    viaProxy.destroy();
    await proxy.close();
  });

  const unavailable = (err: unknown): err is SadpError =>
    isSadpError(err, 'SADP_STORAGE_UNAVAILABLE') &&
    err.status === Status.UNAVAILABLE &&
    isRetryableStorageError(err);

  test('503 SlowDown -> SADP_STORAGE_UNAVAILABLE (retryable) naming the object', async () => {
    proxy.setRules([{ fault: 'slowdown', times: 1 }]);
    await assert.rejects(store.get('obj.bin'), (err: unknown) => {
      assert.ok(unavailable(err), String(err));
      assert.match(err.message, /s3:\/\/embedded\/faults\/obj\.bin/);
      assert.match(err.message, /SlowDown|503/);
      return true;
    });
  });

  test('500 InternalError -> SADP_STORAGE_UNAVAILABLE', async () => {
    proxy.setRules([{ fault: 'internal-error', times: 1 }]);
    await assert.rejects(store.get('obj.bin', { start: 0, end: 100 }), unavailable);
  });

  test('connection reset mid-body -> SADP_STORAGE_UNAVAILABLE from the stream', async () => {
    proxy.setRules([{ fault: 'reset', times: 1, afterBytes: 1000 }]);
    await assert.rejects(store.get('obj.bin'), unavailable);
  });

  test('body shorter than Content-Length -> SADP_STORAGE_UNAVAILABLE, never a silent short read', async () => {
    proxy.setRules([{ fault: 'truncate', times: 1, afterBytes: 5000 }]);
    await assert.rejects(store.get('obj.bin'), unavailable);
  });

  test('nothing listening -> SADP_STORAGE_UNAVAILABLE', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const dead = createS3Client({
      ...s3OptionsForEmbedded(tmp.s3),
      endpoint: `http://127.0.0.1:${port}`,
      maxAttempts: 1,
    });
    try {
      await assert.rejects(openStore('s3://embedded/x', { client: dead }).get('k'), unavailable);
    } finally {
      dead.destroy();
    }
  });

  test('missing bucket -> SADP_OBJECT_NOT_FOUND naming the URL', async () => {
    await assert.rejects(
      openStore('s3://no-such-bucket/p', { client: tmp.client }).get('k'),
      (err: unknown) =>
        isSadpError(err, 'SADP_OBJECT_NOT_FOUND') && err.message.includes('s3://no-such-bucket/p/k'),
    );
  });

  test('after a fault the client keeps working (bodies were released)', async () => {
    proxy.setRules([]);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(
        Buffer.from(await store.get('obj.bin', { start: i, end: i + 10 })),
        body.subarray(i, i + 10),
      );
    }
  });
});

describe('credentials never appear in errors or logs', () => {
  const ACCESS = 'AKIASENTINELACCESS01';
  const SECRET = 'sentinel/Secret+Key=do-not-leak-0123456789';
  const TOKEN = 'sentinel-session-token-abcdef';

  async function failures(): Promise<unknown[]> {
    const errs: unknown[] = [];
    const capture = async (p: Promise<unknown>): Promise<void> => {
      try {
        await p;
        errs.push(new Error('expected a failure'));
      } catch (err) {
        errs.push(err);
      }
    };
    const options = {
      region: 'us-east-1',
      accessKeyId: ACCESS,
      secretAccessKey: SECRET,
      sessionToken: TOKEN,
    };
    // Unknown key id: s3rver answers InvalidAccessKeyId and echoes the key id in its XML body.
    const wrongKey = createS3Client({ ...options, endpoint: tmp.s3.endpoint, maxAttempts: 1 });
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const dead = createS3Client({ ...options, endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
    try {
      // An endpoint with user info is refused up front, without echoing it.
      for (const endpoint of [
        `http://user:${SECRET}@127.0.0.1:${port}`,
        `http://user:${encodeURIComponent(SECRET)}@h`,
      ]) {
        try {
          createS3Client({ ...options, endpoint });
          errs.push(new Error('expected createS3Client to refuse user info'));
        } catch (err) {
          errs.push(err);
        }
      }
      await capture(openStore(`s3://${BUCKET}/c`, { client: wrongKey }).get('k'));
      await capture(openStore(`s3://${BUCKET}/c`, { client: wrongKey }).put('k', Buffer.from('x')));
      await capture(openStore('s3://no-such-bucket/c', { client: wrongKey }).head('k'));
      await capture(openStore(`s3://${BUCKET}/c`, { client: dead }).get('k'));
    } finally {
      wrongKey.destroy();
      dead.destroy();
    }
    return errs;
  }

  test('messages, causes and logged errors contain no secret, token or access key', async () => {
    const errs = await failures();
    assert.equal(errs.length, 6);
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger({ destination: sink, level: 'info' });
    const codes: string[] = [];
    for (const err of errs) {
      assert.ok(isSadpError(err), `expected a SadpError, got ${String(err)}`);
      codes.push(err.code);
      logger.error(
        { err, s3: { accessKeyId: ACCESS, secretAccessKey: SECRET, sessionToken: TOKEN } },
        'storage failed',
      );
      const texts = [
        err.message,
        String(err),
        inspect(err, { depth: 20, showHidden: true }),
        JSON.stringify(err),
      ];
      for (const text of texts) {
        for (const secret of [SECRET, TOKEN, ACCESS]) {
          assert.ok(!text.includes(secret), `"${secret}" leaked into: ${text.slice(0, 400)}`);
        }
      }
    }
    assert.deepEqual(codes, [
      'SADP_INVALID_URL',
      'SADP_INVALID_URL',
      'SADP_STORAGE_DENIED',
      'SADP_STORAGE_DENIED',
      'SADP_STORAGE_DENIED',
      'SADP_STORAGE_UNAVAILABLE',
    ]);
    logger.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const log = lines.join('');
    assert.ok(log.includes('storage failed'), 'the log lines were written');
    for (const secret of [SECRET, TOKEN, ACCESS])
      assert.ok(!log.includes(secret), `"${secret}" leaked into the log`);
  });
});
