// The range reader against real shards on a local directory and on the
// embedded S3: byte-identical to a full sequential read, merges as
// configured, never asks for a pruned sample's bytes unless told to, pins
// the shard's ETag, and checks every member against the index.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { isSadpError } from '../../../common/errors.js';
import { metricValue } from '../../helpers/metrics.js';
import { createRangeReader, type RangeRequestEvent } from '../../../loader/fetch/index.js';
import { openDataset, type Dataset, type ShardIndex } from '../../../loader/shards/index.js';
import { parseRangeHeader, startFaultProxy, type FaultProxy } from '../../helpers/s3-fault-proxy.js';
import { countRuns, diffSamples, openRemoteVia, startFixture, type Fixture } from './fixtures.js';
import type { S3Client } from '../../../storage/index.js';
import { mulberry32 } from '../../helpers/random.js';

let fx: Fixture;
let proxy: FaultProxy;
let viaProxy: { dataset: Dataset; client: S3Client };

before(async () => {
  fx = await startFixture({ samples: 140, shardBytes: 96 * 1024 });
  proxy = await startFaultProxy({ target: fx.s3.endpoint });
  viaProxy = await openRemoteVia(fx, proxy.endpoint);
});

after(async () => {
  viaProxy.client.destroy();
  await proxy.close();
  await fx.close();
});

function selection(n: number): fc.Arbitrary<number[]> {
  const all = Array.from({ length: n }, (_, i) => i);
  return fc.oneof(
    fc.constant<number[]>([]),
    fc.nat(n - 1).map((i) => [i]),
    fc.constant(all),
    // a run of adjacent samples, possibly across a shard boundary
    fc.tuple(fc.nat(n - 1), fc.integer({ min: 2, max: 40 })).map(([a, len]) => all.slice(a, a + len)),
    // far apart
    fc
      .tuple(fc.nat(9), fc.integer({ min: 13, max: 50 }))
      .map(([o, stride]) => all.filter((i) => i % stride === o)),
    // a random subset in id order
    fc.array(fc.boolean(), { minLength: n, maxLength: n }).map((mask) => all.filter((i) => mask[i])),
    // any order, with repeats
    fc.array(fc.nat(n - 1), { maxLength: 60 }),
  );
}

const readerOptions = fc.record({
  planner: fc.constantFrom('auto', 'min-bytes', 'whole-shard', 'ranges' as const),
  gapBytes: fc.constantFrom(0, 512, 4096, 1 << 20),
  maxRequestBytes: fc.constantFrom(4096, 64 * 1024, 8 << 20),
  concurrency: fc.constantFrom(1, 3, 16),
});

for (const where of ['local', 's3'] as const) {
  test(`any subset read by ranges from ${where} equals the same samples of a full sequential read`, async () => {
    const dataset = where === 'local' ? fx.local : fx.remote;
    assert.ok(dataset.shardCount >= 4, `fixture has ${dataset.shardCount} shards`);
    await fc.assert(
      fc.asyncProperty(selection(dataset.size), readerOptions, async (ids, options) => {
        const reader = createRangeReader(options);
        const got = await reader.read(dataset, ids);
        assert.equal(diffSamples(ids, got, fx.reference), undefined);
        const unique = new Set(ids);
        let selectedBytes = 0;
        for (const id of unique) selectedBytes += dataset.ends[id]! - dataset.offsets[id]!;
        assert.equal(reader.stats.samplesDelivered, unique.size);
        assert.equal(reader.stats.bytesDelivered, selectedBytes);
        assert.equal(reader.stats.bytesReceived, reader.stats.bytesRequested);
        assert.equal(reader.stats.retries, 0);
      }),
      { numRuns: where === 'local' ? 60 : 30 },
    );
  });
}

/** The shard byte ranges of the samples not in `ids`. */
function prunedRanges(dataset: Dataset, ids: Set<number>): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (let id = 0; id < dataset.size; id++) {
    if (ids.has(id)) continue;
    const key = dataset.shardKey(dataset.shardIds[id]!);
    const list = out.get(key) ?? [];
    list.push([dataset.offsets[id]!, dataset.ends[id]!]);
    out.set(key, list);
  }
  return out;
}

// The fixed merge rule (planner `ranges`): gapBytes, maxWasteRatio, maxRequestBytes.
describe('merging', () => {
  // About half the samples, pseudo-random but fixed, so runs and gaps vary.
  const coin = mulberry32(11);
  const ids = Array.from({ length: 140 }, (_, i) => i).filter(() => coin() < 0.55);

  test('gapBytes 0: one GET per run of adjacent samples, and no byte of a pruned sample is requested', async () => {
    const dataset = viaProxy.dataset;
    const reader = createRangeReader({ planner: 'ranges', gapBytes: 0 });
    const requests: RangeRequestEvent[] = [];
    reader.onRequest = (r) => requests.push(r);
    const logStart = proxy.requestLog.length;
    const got = await reader.read(dataset, ids);
    assert.equal(diffSamples(ids, got, fx.reference), undefined);
    assert.equal(requests.length, countRuns(dataset, ids));
    assert.equal(reader.stats.bytesRequested, reader.stats.bytesDelivered);

    const pruned = prunedRanges(dataset, new Set(ids));
    const overlaps = (key: string, start: number, end: number): boolean =>
      (pruned.get(key) ?? []).some(([a, b]) => a < end && start < b);
    for (const r of requests)
      assert.ok(!overlaps(r.key, r.start, r.end), `request ${r.key} [${r.start}, ${r.end})`);

    // The same, as the server saw it.
    const gets = proxy.requestLog.slice(logStart).filter((r) => r.method === 'GET');
    assert.equal(gets.length, requests.length);
    for (const g of gets) {
      const range = parseRangeHeader(g.range);
      assert.ok(range, `GET ${g.path} without a Range header`);
      const key = g.path.slice(`/${fx.bucket}/ds/`.length);
      assert.ok(!overlaps(key, range.start, range.end), `server saw ${g.path} ${g.range}`);
    }
  });

  test('a pruned sample is fetched only inside a gap smaller than gapBytes; a huge gap means one GET per shard', async (t) => {
    const dataset = fx.remote;
    const selected = new Set(ids);
    const shardsTouched = new Set(ids.map((id) => dataset.shardIds[id]));
    let previousRequests = Infinity;
    for (const gapBytes of [0, 2048, 8192, 1 << 30]) {
      // Gap semantics alone: no waste bound.
      const reader = createRangeReader({
        planner: 'ranges',
        gapBytes,
        maxRequestBytes: 1 << 30,
        maxWasteRatio: Infinity,
      });
      const requests: RangeRequestEvent[] = [];
      reader.onRequest = (r) => requests.push(r);
      assert.equal(diffSamples(ids, await reader.read(dataset, ids), fx.reference), undefined);
      for (const r of requests) {
        // Walk the samples inside the request: every pruned stretch sits between selected samples and is < gapBytes.
        let gap = 0;
        for (let id = 0; id < dataset.size; id++) {
          if (dataset.shardKey(dataset.shardIds[id]!) !== r.key) continue;
          const [a, b] = [dataset.offsets[id]!, dataset.ends[id]!];
          if (b <= r.start || a >= r.end) continue;
          assert.ok(a >= r.start && b <= r.end, `request cuts sample ${id}`);
          if (selected.has(id)) {
            assert.ok(gap < gapBytes || gap === 0, `gap of ${gap} bytes merged at gapBytes ${gapBytes}`);
            gap = 0;
          } else {
            assert.ok(a > r.start, 'a request starts with a pruned sample');
            gap += b - a;
          }
        }
        assert.equal(gap, 0, 'a request ends with a pruned sample');
      }
      assert.ok(requests.length <= previousRequests);
      previousRequests = requests.length;
      if (gapBytes === 1 << 30) assert.equal(requests.length, shardsTouched.size);
      t.diagnostic(
        `gapBytes ${gapBytes}: ${requests.length} GETs, bytesRequested/bytesDelivered = ` +
          `${(reader.stats.bytesRequested / reader.stats.bytesDelivered).toFixed(3)}`,
      );
    }
  });

  test('maxRequestBytes splits long runs; every GET stays within it unless one sample is larger', async () => {
    const dataset = fx.local;
    const cap = 16 * 1024;
    const reader = createRangeReader({ planner: 'ranges', gapBytes: 1 << 20, maxRequestBytes: cap });
    const requests: RangeRequestEvent[] = [];
    reader.onRequest = (r) => requests.push(r);
    const all = Array.from({ length: dataset.size }, (_, i) => i);
    assert.equal(diffSamples(all, await reader.read(dataset, all), fx.reference), undefined);
    for (const r of requests) {
      const inside = all.filter(
        (id) =>
          dataset.shardKey(dataset.shardIds[id]!) === r.key &&
          dataset.offsets[id]! >= r.start &&
          dataset.ends[id]! <= r.end,
      );
      assert.ok(
        r.end - r.start <= cap || inside.length === 1,
        `[${r.start}, ${r.end}) holds ${inside.length} samples`,
      );
    }
    assert.ok(requests.length > dataset.shardCount);
  });
});

test('a shard overwritten after indexing fails with SADP_OBJECT_CHANGED naming the shard and the expected ETag', async () => {
  for (const dataset of [fx.local, fx.remote]) {
    const shard = 1;
    const key = dataset.shardKey(shard);
    const etag = dataset.manifest.shards[shard]!.etag;
    const original = await dataset.store.get(key);
    const altered = Buffer.from(original);
    altered[altered.length - 1] = 0xff; // inside the end-of-archive zero blocks: same size, new bytes
    await dataset.store.put(key, altered);
    try {
      const id = dataset.manifest.shards[shard]!.firstId;
      await assert.rejects(createRangeReader().read(dataset, [id]), (err: unknown) => {
        assert.ok(isSadpError(err, 'SADP_OBJECT_CHANGED'), String(err));
        assert.ok(err.message.includes(key) && err.message.includes(etag), err.message);
        return true;
      });
    } finally {
      await dataset.store.put(key, original);
    }
  }
});

test('a member that disagrees with the index fails with SADP_TAR_CORRUPT naming the shard and absolute offset', async () => {
  // A wrong index over an unchanged shard: sample 2's first member is renamed
  // in the index only (sizes, offsets and the ETag still match, so only the
  // header check can notice).
  const opened = await openDataset(`${fx.dir}/local/manifest.json`);
  const shard = 0;
  const indexKey = opened.manifest.shards[shard]!.index;
  const originalIndex = await opened.store.get(indexKey);
  const index = JSON.parse(Buffer.from(originalIndex).toString('utf8')) as ShardIndex;
  const victim = index.samples[2]!;
  const member = victim.members[0]!;
  member.name = member.name.replace(/\.cls$/, '.txt');
  member.ext = 'txt';
  await opened.store.put(indexKey, Buffer.from(JSON.stringify(index)));
  try {
    const tampered = await openDataset(`${fx.dir}/local/manifest.json`);
    const reader = createRangeReader({ gapBytes: 0 });
    const ok = await reader.read(tampered, [0, 1]);
    assert.equal(diffSamples([0, 1], ok, fx.reference), undefined);
    await assert.rejects(reader.read(tampered, [2]), (err: unknown) => {
      assert.ok(isSadpError(err, 'SADP_TAR_CORRUPT'), String(err));
      assert.ok(err.message.includes(tampered.shardKey(shard)), err.message);
      assert.ok(err.message.includes(`byte ${member.headerOffset}`), err.message);
      return true;
    });
  } finally {
    await opened.store.put(indexKey, originalIndex);
  }
});

test('ids outside the dataset are rejected before any GET', async () => {
  const reader = createRangeReader();
  let requests = 0;
  reader.onRequest = () => requests++;
  await assert.rejects(reader.read(fx.local, [0, fx.local.size]), { code: 'SADP_SAMPLE_OUT_OF_RANGE' });
  assert.equal(requests, 0);
});

test('with metrics on, the Prometheus counters follow the reader stats', async () => {
  const before = {
    requests: await metricValue('sadp_fetch_requests_total'),
    delivered: await metricValue('sadp_fetch_bytes_total', { kind: 'delivered' }),
  };
  const reader = createRangeReader({ metrics: true, gapBytes: 0 });
  await reader.read(fx.local, [0, 2, 3, 9]);
  assert.equal((await metricValue('sadp_fetch_requests_total')) - before.requests, reader.stats.requests);
  assert.equal(
    (await metricValue('sadp_fetch_bytes_total', { kind: 'delivered' })) - before.delivered,
    reader.stats.bytesDelivered,
  );
});
