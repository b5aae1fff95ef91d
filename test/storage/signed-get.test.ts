// The lean GET path (undici + SigV4) against the embedded S3 through the
// fault proxy: object reads bypass the SDK and pin the ETag with a quoted
// If-Match, the signature verifies with s3rver, expiring session credentials
// are fetched again and the GETs re-signed with them, a 412 and a truncated
// replacement of a shard both surface as SADP_OBJECT_CHANGED naming the
// object, the byte range and the samples.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isSadpError } from '../../common/errors.js';
import { createRangeReader } from '../../loader/fetch/index.js';
import { openDataset } from '../../loader/shards/index.js';
import { createS3Client, openStore, s3OptionsForEmbedded, type S3Credentials } from '../../storage/index.js';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { encodeKeyPath, signGet } from '../../storage/signed-get.js';
import { startFaultProxy, withFaultRules, type FaultProxy } from '../helpers/s3-fault-proxy.js';
import { diffSamples, openRemoteVia, startFixture, type Fixture } from '../loader/fetch/fixtures.js';

let fx: Fixture;
let proxy: FaultProxy;

const SHARDS = /\.tar(\?|$)/;

before(async () => {
  fx = await startFixture({ samples: 60, shardBytes: 48 * 1024, seed: 11 });
  proxy = await startFaultProxy({ target: fx.s3.endpoint, seed: 1 });
});

after(async () => {
  await proxy.close();
  await fx.close();
});

function shardGets(from: number): FaultProxy['requestLog'] {
  return proxy.requestLog.slice(from).filter((r) => r.method === 'GET' && SHARDS.test(r.path));
}

test('range reads skip the SDK, send If-Match quoted (RFC 7232) and arrive byte-identical', async () => {
  const { dataset, client } = await openRemoteVia(fx, proxy.endpoint);
  try {
    const from = proxy.requestLog.length;
    const ids = [0, 1, 5, 17, 30, 44, 59];
    const got = await createRangeReader({ gapBytes: 0 }).read(dataset, ids);
    assert.equal(diffSamples(ids, got, fx.reference), undefined);
    const gets = shardGets(from);
    assert.ok(gets.length >= 3, `${gets.length} shard GETs`);
    for (const r of gets) {
      // The SDK's GetObject adds `x-id=GetObject`; the lean path sends the bare object path.
      assert.equal(r.query, '', `query of ${r.path}`);
      const shard = dataset.manifest.shards.find((s) => r.path.endsWith(s.url.split('/').pop() as string));
      assert.ok(shard, r.path);
      assert.equal(r.ifMatch, `"${shard.etag}"`);
    }
    // The SDK path (store.get) quotes it as well.
    const before = proxy.requestLog.length;
    const key = dataset.shardKey(0);
    await dataset.store.get(key, { start: 0, end: 512, ifMatch: dataset.manifest.shards[0]!.etag });
    const sdk = shardGets(before);
    assert.equal(sdk.length, 1);
    assert.equal(sdk[0]!.query, 'x-id=GetObject');
    assert.equal(sdk[0]!.ifMatch, `"${dataset.manifest.shards[0]!.etag}"`);
  } finally {
    client.destroy();
  }
});

test('expiring session credentials are fetched again and every GET is signed with the current ones', async () => {
  const embedded = s3OptionsForEmbedded(fx.s3);
  const issued: string[] = [];
  let refuse = true;
  // While `refuse` is set the provider names a key id the server does not
  // know (s3rver checks key ids, not SigV4 signatures: the signature test
  // below covers those).
  const credentialProvider = (): Promise<S3Credentials> => {
    const sessionToken = `session-${issued.length + 1}`;
    issued.push(sessionToken);
    return Promise.resolve({
      accessKeyId: refuse ? 'UNKNOWNKEY' : (embedded.accessKeyId as string),
      secretAccessKey: embedded.secretAccessKey as string,
      sessionToken,
      // Inside the SDK's 5-minute refresh window: every use asks the provider again.
      expiration: new Date(Date.now() + 60_000),
    });
  };
  const client = createS3Client({
    endpoint: proxy.endpoint,
    region: embedded.region,
    maxAttempts: 1,
    credentialProvider,
  });
  try {
    const url = `s3://${fx.bucket}/ds/manifest.json`;
    // The first credentials are refused by the server.
    const store = openStore(`s3://${fx.bucket}/ds`, { client });
    await assert.rejects(store.head('manifest.json'), (err: unknown) =>
      isSadpError(err, 'SADP_STORAGE_DENIED'),
    );
    const refused = [...issued];
    assert.ok(refused.length >= 1);
    refuse = false;
    // The provider is asked again and its next credentials work.
    const dataset = await openDataset(url, { client });
    const from = proxy.requestLog.length;
    const reader = createRangeReader({ maxAttempts: 1 });
    const askedBefore = issued.length;
    assert.equal(diffSamples([3], await reader.read(dataset, [3]), fx.reference), undefined);
    assert.equal(diffSamples([40], await reader.read(dataset, [40]), fx.reference), undefined);
    const tokens = shardGets(from).map((r) => r.securityToken);
    assert.equal(tokens.length, 2);
    // Each GET carried the session token the provider had just issued (signed, so s3rver checked it).
    assert.equal(new Set(tokens).size, 2, `tokens ${tokens.join()}`);
    assert.ok(issued.length >= askedBefore + 2, `provider asked ${issued.length - askedBefore} times`);
    for (const t of tokens)
      assert.ok(t !== undefined && issued.includes(t) && !refused.includes(t), String(t));
  } finally {
    client.destroy();
  }
});

test('credentials that do not expire are resolved once, not per GET', async () => {
  const embedded = s3OptionsForEmbedded(fx.s3);
  let calls = 0;
  const client = createS3Client({
    endpoint: proxy.endpoint,
    region: embedded.region,
    maxAttempts: 1,
    credentialProvider: () => {
      calls++;
      return Promise.resolve({
        accessKeyId: embedded.accessKeyId as string,
        secretAccessKey: embedded.secretAccessKey as string,
        sessionToken: 'long-lived',
      });
    },
  });
  try {
    const dataset = await openDataset(`s3://${fx.bucket}/ds/manifest.json`, { client });
    const ids = [0, 9, 21, 33, 50];
    const got = await createRangeReader({ gapBytes: 0 }).read(dataset, ids);
    assert.equal(diffSamples(ids, got, fx.reference), undefined);
    assert.equal(calls, 1);
  } finally {
    client.destroy();
  }
});

test('a 412 from the server is SADP_OBJECT_CHANGED naming the shard, range and samples, and is not retried', async () => {
  const { dataset, client } = await openRemoteVia(fx, proxy.endpoint);
  try {
    const reader = createRangeReader({ maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 });
    const id = dataset.manifest.shards[1]!.firstId;
    const key = dataset.shardKey(1);
    const fired = proxy.stats['precondition-failed'];
    await withFaultRules(proxy, [{ fault: 'precondition-failed', path: SHARDS, times: 1 }], async () => {
      await assert.rejects(reader.read(dataset, [id]), (err: unknown) => {
        assert.ok(isSadpError(err, 'SADP_OBJECT_CHANGED'), String(err));
        assert.ok(err.message.includes(key), err.message);
        assert.match(err.message, /bytes \[\d+, \d+\)/);
        assert.ok(err.message.includes(`samples ${id}..${id}`), err.message);
        return true;
      });
    });
    assert.equal(proxy.stats['precondition-failed'] - fired, 1);
    assert.equal(reader.stats.requests, 1);
    assert.equal(reader.stats.retries, 0);
  } finally {
    client.destroy();
  }
});

test('a truncated replacement of an indexed shard gives SADP_OBJECT_CHANGED, never a bare 416', async () => {
  for (const dataset of [fx.local, fx.remote]) {
    const shard = 2;
    const key = dataset.shardKey(shard);
    const original = await dataset.store.get(key);
    await dataset.store.put(key, original.subarray(0, 1024));
    try {
      // The last sample of the shard starts beyond the new end (S3 answers 416).
      const entry = dataset.manifest.shards[shard]!;
      const last = entry.firstId + entry.samples - 1;
      const first = entry.firstId;
      for (const id of [last, first]) {
        await assert.rejects(createRangeReader({ gapBytes: 0 }).read(dataset, [id]), (err: unknown) => {
          assert.ok(isSadpError(err, 'SADP_OBJECT_CHANGED'), `${dataset.url} sample ${id}: ${String(err)}`);
          assert.ok(err.message.includes(key), err.message);
          assert.match(err.message, /bytes \[\d+, \d+\)/);
          assert.ok(err.message.includes(`samples ${id}..${id}`), err.message);
          return true;
        });
      }
    } finally {
      await dataset.store.put(key, original);
    }
  }
});

test('signGet produces the signature of the AWS SDK signer (keys with special characters, session token, If-Match)', async () => {
  const now = new Date('2026-12-07T12:34:56Z');
  const cases = [
    { key: 'ds/train-000001.tar', creds: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalr/K7+MDENG=' } },
    {
      key: "deep dir/naïve+ (1)*'!~.tar",
      creds: { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'se/cr+et', sessionToken: 'tok/en+==' },
    },
  ];
  for (const { key, creds } of cases) {
    const path = `/my-bucket/${encodeKeyPath(key)}`;
    const host = '127.0.0.1:9000';
    const headers = signGet(
      host,
      path,
      'eu-west-1',
      creds,
      { Range: 'bytes=0-99', 'If-Match': '"abc"' },
      now,
    );
    const signer = new SignatureV4({
      service: 's3',
      region: 'eu-west-1',
      credentials: creds,
      sha256: Sha256,
      uriEscapePath: false,
    });
    const want = await signer.sign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: '127.0.0.1',
        port: 9000,
        path,
        headers: {
          host,
          'if-match': '"abc"',
          'x-amz-content-sha256': headers['X-Amz-Content-Sha256'] as string,
        },
        query: {},
      },
      { signingDate: now, unsignableHeaders: new Set(['range']) },
    );
    const sig = (h: string | undefined): string | undefined => /Signature=([0-9a-f]{64})/.exec(h ?? '')?.[1];
    assert.ok(sig(headers.Authorization), headers.Authorization);
    assert.equal(sig(headers.Authorization), sig(want.headers.authorization), key);
    assert.equal(headers['X-Amz-Security-Token'], creds.sessionToken);
  }
});
