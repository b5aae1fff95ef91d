// Recycled range memory: arenas hand out exact, disjoint views of 1 MiB
// slabs, recycled slabs serve later reads exactly once each, the free list is
// bounded, and a range reader whose samples are recycled reuses their memory
// and still delivers the right bytes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRangeReader, resolveRangeReaderOptions } from '../../../loader/fetch/index.js';
import {
  createSlabPool,
  DEFAULT_SLAB_POOL_BYTES,
  footprintBytes,
  SLAB_BYTES,
} from '../../../loader/fetch/slab-pool.js';
import type { FetchedSample } from '../../../loader/fetch/index.js';
import { diffSamples, startFixture, type Fixture } from './fixtures.js';

const sampleOf = (id: number, bytes: Uint8Array): FetchedSample => ({
  id,
  key: `s${id}`,
  fields: { bin: bytes },
  bytes: bytes.byteLength,
});

test('an arena hands out disjoint views of exactly the asked size; larger ranges get a buffer of their own', () => {
  const pool = createSlabPool({ maxFreeBytes: 4 * SLAB_BYTES });
  const arena = pool.arena();
  const a = arena.alloc(300_000);
  const b = arena.alloc(500_000);
  const c = arena.alloc(400_000); // does not fit the first slab's rest
  const big = arena.alloc(SLAB_BYTES + 1);
  assert.deepEqual(
    [a, b, c, big].map((x) => x.byteLength),
    [300_000, 500_000, 400_000, SLAB_BYTES + 1],
  );
  assert.equal(a.buffer, b.buffer);
  assert.equal(b.byteOffset, a.byteOffset + a.byteLength);
  assert.notEqual(c.buffer, a.buffer);
  a.fill(1);
  b.fill(2);
  assert.ok(a.every((x) => x === 1) && b.every((x) => x === 2));
  assert.notEqual(big.buffer, a.buffer);
  assert.notEqual(big.buffer, c.buffer);
  pool.recycle([sampleOf(1, big)]);
  assert.equal(pool.free, 0, 'a buffer of its own is not held among the slabs');
  assert.equal(
    pool.freeLargeBytes,
    2 * SLAB_BYTES,
    'it is held (rounded up to whole slabs) for larger ranges',
  );
});

test('recycled large buffers serve later large ranges of their own size class, once each, within a byte bound', () => {
  const pool = createSlabPool({ maxFreeBytes: 5 * SLAB_BYTES });
  const three = pool.arena().alloc(3 * SLAB_BYTES - 5);
  const two = pool.arena().alloc(SLAB_BYTES + 7);
  assert.equal(three.buffer.byteLength, 3 * SLAB_BYTES);
  assert.equal(two.buffer.byteLength, 2 * SLAB_BYTES);
  const samples = [sampleOf(1, three.subarray(0, 10)), sampleOf(2, three.subarray(20, 30)), sampleOf(3, two)];
  pool.recycle(samples);
  pool.recycle(samples);
  assert.equal(pool.freeLargeBytes, 5 * SLAB_BYTES, 'each buffer held once');
  // 1.5 slabs: the 2-slab buffer (its size class); 2.5 slabs: the 3-slab one.
  const a = pool.arena().alloc(SLAB_BYTES + SLAB_BYTES / 2);
  assert.equal(a.buffer, two.buffer);
  assert.equal(a.byteLength, SLAB_BYTES + SLAB_BYTES / 2);
  const b = pool.arena().alloc(2 * SLAB_BYTES + SLAB_BYTES / 2);
  assert.equal(b.buffer, three.buffer);
  assert.equal(pool.freeLargeBytes, 0);
  // Nothing free: a fresh buffer, never one handed out already.
  const c = pool.arena().alloc(SLAB_BYTES + 1);
  assert.ok(c.buffer !== a.buffer && c.buffer !== b.buffer);
  // A buffer of another size class than the one asked for is left free.
  pool.recycle([sampleOf(4, b)]);
  const d = pool.arena().alloc(SLAB_BYTES + 1);
  assert.notEqual(d.buffer, b.buffer);
  assert.equal(pool.freeLargeBytes, 3 * SLAB_BYTES);
  // The bound: at most maxFreeBytes of free memory (5 slabs here).
  pool.recycle([sampleOf(5, a), sampleOf(6, c)]);
  assert.equal(
    pool.freeLargeBytes,
    5 * SLAB_BYTES,
    'the second 2-slab buffer, over the 5-slab bound, is dropped',
  );
  // Buffers the pool did not make are never taken in.
  pool.recycle([sampleOf(7, Buffer.alloc(SLAB_BYTES + 1))]);
  assert.equal(pool.freeLargeBytes, 5 * SLAB_BYTES);
});

test('recycled slabs serve later arenas once each, and the free list is bounded', () => {
  const pool = createSlabPool({ maxFreeBytes: 2 * SLAB_BYTES });
  const first = [1, 2, 3].map((id) => pool.arena().alloc(1000 * id));
  const samples = first.map((b, i) => sampleOf(i, b.subarray(10, 20)));
  // Twice, and with a repeated sample: each slab is freed once.
  pool.recycle([...samples, samples[0] as FetchedSample]);
  pool.recycle(samples);
  assert.equal(pool.free, 2);
  const reused = [pool.arena().alloc(10), pool.arena().alloc(10)];
  assert.equal(pool.free, 0);
  assert.notEqual(reused[0]?.buffer, reused[1]?.buffer);
  for (const r of reused)
    assert.ok(
      first.some((b) => b.buffer === r.buffer),
      'a recycled slab',
    );
  assert.ok(!first.some((b) => b.buffer === pool.arena().alloc(10).buffer), 'then fresh slabs');
});

test('a recycled large buffer serves only ranges a fresh buffer of its size would: the slack stays under one slab', () => {
  const pool = createSlabPool({ maxFreeBytes: 16 * SLAB_BYTES });
  const three = pool.arena().alloc(3 * SLAB_BYTES);
  pool.recycle([sampleOf(1, three)]);
  // 1.5 slabs fit in 3 (and are at most twice 1.5) but would hold 2x the range: a fresh 2-slab buffer.
  const a = pool.arena().alloc(SLAB_BYTES + SLAB_BYTES / 2);
  assert.notEqual(a.buffer, three.buffer);
  assert.equal(a.buffer.byteLength, footprintBytes(a.byteLength));
  assert.equal(a.buffer.byteLength, 2 * SLAB_BYTES);
  // A range of the 3-slab size class takes it.
  const b = pool.arena().alloc(2 * SLAB_BYTES + 1);
  assert.equal(b.buffer, three.buffer);
  for (const n of [1, SLAB_BYTES, SLAB_BYTES + 1, 5 * SLAB_BYTES - 3]) {
    const buf = pool.arena().alloc(n);
    assert.ok(n <= SLAB_BYTES || buf.buffer.byteLength === footprintBytes(n), `range of ${n}`);
    assert.ok(footprintBytes(n) - n < SLAB_BYTES);
  }
});

test('the free list is bounded by bytes, slabs and large buffers together, whatever the count of GETs', () => {
  const pool = createSlabPool({ maxFreeBytes: 3 * SLAB_BYTES });
  const slabs = [1, 2, 3, 4].map(() => pool.arena().alloc(SLAB_BYTES));
  const big = pool.arena().alloc(2 * SLAB_BYTES);
  pool.recycle([sampleOf(1, big)]);
  pool.recycle(slabs.map((b, i) => sampleOf(10 + i, b)));
  assert.equal(pool.freeLargeBytes, 2 * SLAB_BYTES);
  assert.equal(pool.free, 1, 'one slab fits beside the 2-slab buffer');
  assert.equal(pool.freeBytes, 3 * SLAB_BYTES);
  const none = createSlabPool({ maxFreeBytes: 0 });
  const x = none.arena().alloc(10);
  none.recycle([sampleOf(1, x)]);
  assert.equal(none.freeBytes, 0, 'maxFreeBytes 0 keeps nothing');
  assert.equal(createSlabPool().freeBytes, 0);
  assert.equal(DEFAULT_SLAB_POOL_BYTES, 64 * SLAB_BYTES);
});

test('the reader allows up to 256 GETs in flight and keeps 64 MiB of free range memory by default; a bad slabPoolBytes is refused by name', () => {
  const o = resolveRangeReaderOptions({});
  assert.equal(o.concurrency, 256);
  assert.equal(o.slabPoolBytes, DEFAULT_SLAB_POOL_BYTES);
  assert.equal(resolveRangeReaderOptions({ slabPoolBytes: 0 }).slabPoolBytes, 0);
  for (const bad of [-1, 1.5, Number.NaN])
    assert.throws(
      () => resolveRangeReaderOptions({ slabPoolBytes: bad }),
      (err: Error & { code?: string }) =>
        err.code === 'SADP_INVALID_OPTION' && /slabPoolBytes/.test(err.message),
    );
});

let fx: Fixture;
before(async () => {
  fx = await startFixture({ samples: 80, shardBytes: 96 * 1024, seed: 8 });
});
after(async () => {
  await fx.close();
});

test('a range reader reuses the memory of recycled samples and delivers the right bytes from it', async () => {
  const reader = createRangeReader({ planner: 'ranges', gapBytes: 0 });
  const ids = Array.from({ length: 30 }, (_, i) => i * 2);
  const first = await reader.read(fx.remote, ids);
  assert.equal(diffSamples(ids, first, fx.reference), undefined);
  const slabs = new Set(first.map((s) => Object.values(s.fields)[0]?.buffer));
  reader.recycle(first);
  const next = ids.map((id) => id + 1);
  const second = await reader.read(fx.remote, next);
  assert.equal(diffSamples(next, second, fx.reference), undefined);
  assert.ok(
    second.some((s) => slabs.has(Object.values(s.fields)[0]?.buffer)),
    'the second read lives in recycled slabs',
  );
});
