// The fault proxy itself: each fault shows up at an S3 client the way the
// real failure would, schedules and seeds are reproducible, and non-object
// requests pass untouched by default.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { createS3Client, openStore, type ObjectStore, type S3Client } from '../../../storage/index.js';
import {
  parseRangeHeader,
  startFaultProxy,
  withFaultRules,
  type FaultProxy,
} from '../../helpers/s3-fault-proxy.js';
import { startTempS3, type TempS3 } from '../../helpers/temp-s3.js';

let tmp: TempS3;
let proxy: FaultProxy;
let client: S3Client;
let store: ObjectStore;
const body = randomBytes(256 * 1024);

before(async () => {
  tmp = await startTempS3({ prefix: 'sadp-fault-proxy-', buckets: ['proxy'] });
  proxy = await startFaultProxy({ target: tmp.s3.endpoint, seed: 7 });
  client = createS3Client({ ...tmp.s3Options, endpoint: proxy.endpoint, maxAttempts: 1 });
  store = openStore('s3://proxy/data', { client });
  await store.put('blob.bin', body);
});

after(async () => {
  client.destroy();
  await proxy.close();
  await tmp.close();
});

/** Reads [start, end) and reports the bytes that arrived before any error. */
async function readRange(start: number, end: number): Promise<{ got: Buffer; err?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    const stream = await store.getStream('blob.bin', { start, end });
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    return { got: Buffer.concat(chunks) };
  } catch (err) {
    return { got: Buffer.concat(chunks), err };
  }
}

test('without rules the proxy passes ranged GETs through byte for byte and logs them', async () => {
  const before = proxy.requestLog.length;
  const { got, err } = await readRange(1000, 70_000);
  assert.equal(err, undefined);
  assert.ok(got.equals(body.subarray(1000, 70_000)));
  const entry = proxy.requestLog.slice(before).find((r) => r.method === 'GET');
  assert.deepEqual(parseRangeHeader(entry?.range), { start: 1000, end: 70_000 });
  assert.equal(entry?.path, '/proxy/data/blob.bin');
});

for (const [fault, status] of [
  ['slowdown', 503],
  ['internal-error', 500],
] as const) {
  test(`${fault} answers HTTP ${status}, which the store maps to a retryable SADP_STORAGE_UNAVAILABLE`, async () => {
    const count = proxy.stats[fault];
    const { err } = await withFaultRules(proxy, [{ fault }], () => readRange(0, 100));
    assert.ok(err instanceof Error);
    assert.equal((err as { code?: string }).code, 'SADP_STORAGE_UNAVAILABLE');
    assert.match(err.message, new RegExp(String(status)));
    assert.equal(proxy.stats[fault], count + 1);
  });
}

for (const fault of ['reset', 'truncate'] as const) {
  test(`${fault} delivers exactly afterBytes correct bytes, then the body fails`, async () => {
    const { got, err } = await withFaultRules(proxy, [{ fault, afterBytes: 10_000 }], () =>
      readRange(5000, 200_000),
    );
    assert.equal((err as { code?: string }).code, 'SADP_STORAGE_UNAVAILABLE');
    assert.equal(got.length, 10_000);
    assert.ok(got.equals(body.subarray(5000, 15_000)));
  });
}

test('stall, latency and a shared bandwidth cap delay the body without changing a byte', async () => {
  const before = { ...proxy.stats };
  const { got, err } = await withFaultRules(
    proxy,
    [
      { fault: 'stall', afterBytes: 3000, stallMs: 100, nth: [1] },
      { fault: 'latency', latencyMs: 20 },
      { fault: 'bandwidth', bytesPerSecond: 4e6 },
    ],
    async () => {
      const [whole, part] = await Promise.all([readRange(0, body.length), readRange(100, 50_000)]);
      assert.equal(part.err, undefined);
      assert.ok(part.got.equals(body.subarray(100, 50_000)));
      return whole;
    },
  );
  assert.equal(err, undefined);
  assert.ok(got.equals(body));
  assert.equal(proxy.stats.stall, before.stall + 1);
  assert.equal(proxy.stats.latency, before.latency + 2);
  assert.equal(proxy.stats.bandwidth, before.bandwidth + 2);
  // A body that arrives from upstream in one chunk still ends only after the stalled rest is sent.
  const small = await withFaultRules(proxy, [{ fault: 'stall', afterBytes: 500, stallMs: 50 }], () =>
    readRange(0, 10_000),
  );
  assert.equal(small.err, undefined);
  assert.ok(small.got.equals(body.subarray(0, 10_000)));
});

test('nth schedules count matching GETs per rule; HEAD and LIST are not object GETs', async () => {
  const outcomes = await withFaultRules(proxy, [{ fault: 'internal-error', nth: [2, 4] }], async () => {
    const out: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      assert.ok(await store.head('blob.bin'));
      for await (const _ of store.list('')) void _;
      out.push((await readRange(0, 10)).err === undefined);
    }
    return out;
  });
  assert.deepEqual(outcomes, [true, false, true, false, true]);
});

test('probabilistic faults follow the seed: the same seed gives the same pattern', async () => {
  const pattern = async (seed: number): Promise<string> => {
    const p = await startFaultProxy({
      target: tmp.s3.endpoint,
      seed,
      rules: [{ fault: 'slowdown', probability: 0.5 }],
    });
    const c = createS3Client({ ...tmp.s3Options, endpoint: p.endpoint, maxAttempts: 1 });
    try {
      const st = openStore('s3://proxy/data', { client: c });
      let out = '';
      for (let i = 0; i < 24; i++)
        out += await st.get('blob.bin', { start: 0, end: 1 }).then(
          () => '.',
          () => 'x',
        );
      return out;
    } finally {
      c.destroy();
      await p.close();
    }
  };
  const a = await pattern(42);
  assert.equal(await pattern(42), a);
  assert.match(a, /x/);
  assert.match(a, /\./);
});
