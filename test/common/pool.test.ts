// The bounded pools of common/pool: the priority pool (the range reader's
// GET limiter) and the bounded loops over a list.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createPool as createLimiter, forEachLimited, forEachOrdered } from '../../common/pool.js';
import { sleep } from '../../common/signals.js';

test('the limiter never runs more than `concurrency` tasks and serves waiters in order', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.nat(3), { minLength: 1, maxLength: 30 }),
      async (limit, delays) => {
        const limiter = createLimiter(limit);
        let running = 0;
        let peak = 0;
        const started: number[] = [];
        await Promise.all(
          delays.map((d, i) =>
            limiter.run(async () => {
              started.push(i);
              running++;
              peak = Math.max(peak, running);
              for (let k = 0; k < d; k++) await Promise.resolve();
              running--;
            }),
          ),
        );
        assert.ok(peak <= limit);
        assert.deepEqual(
          started,
          delays.map((_, i) => i),
        );
        assert.equal(limiter.active, 0);
        assert.equal(limiter.waiting, 0);
      },
    ),
  );
});

test('a waiter whose signal aborts leaves the queue with SADP_CANCELLED and does not run', async () => {
  const limiter = createLimiter(1);
  let release!: () => void;
  const first = limiter.run(() => new Promise<void>((resolve) => (release = resolve)));
  const controller = new AbortController();
  let ran = false;
  const second = limiter.run(() => {
    ran = true;
    return Promise.resolve();
  }, controller.signal);
  assert.equal(limiter.waiting, 1);
  controller.abort();
  await assert.rejects(second, { code: 'SADP_CANCELLED' });
  assert.equal(limiter.waiting, 0);
  release();
  await first;
  assert.equal(ran, false);
  assert.equal(limiter.active, 0);
});

test('waiters run by priority, FIFO within a priority', async () => {
  const limiter = createLimiter(1);
  const order: string[] = [];
  let unblock!: () => void;
  const blocker = limiter.run(() => new Promise<void>((resolve) => (unblock = resolve)));
  const queued = [
    limiter.run(() => Promise.resolve(void order.push('prefetch-a')), undefined, 1),
    limiter.run(() => Promise.resolve(void order.push('prefetch-b')), undefined, 1),
    limiter.run(() => Promise.resolve(void order.push('needed-a')), undefined, 0),
    limiter.run(() => Promise.resolve(void order.push('warm')), undefined, 2),
    limiter.run(() => Promise.resolve(void order.push('needed-b'))),
  ];
  assert.equal(limiter.waiting, 5);
  await sleep(0); // the blocker's task starts after its (already granted) acquire settles
  unblock();
  await Promise.all([blocker, ...queued]);
  assert.deepEqual(order, ['needed-a', 'needed-b', 'prefetch-a', 'prefetch-b', 'warm']);
  assert.equal(limiter.active, 0);
});

test('forEachLimited visits every item once with at most `concurrency` in flight', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.nat(3), { maxLength: 30 }),
      async (limit, delays) => {
        let running = 0;
        let peak = 0;
        const seen: number[] = [];
        await forEachLimited(delays, { concurrency: limit }, async (d, i) => {
          running++;
          peak = Math.max(peak, running);
          for (let k = 0; k < d; k++) await Promise.resolve();
          seen.push(i);
          running--;
        });
        assert.ok(peak <= limit);
        assert.deepEqual(
          [...seen].sort((a, b) => a - b),
          delays.map((_, i) => i),
        );
      },
    ),
  );
});

test('forEachLimited starts nothing after a failure, lets calls in flight finish, then throws the first failure', async () => {
  const started: number[] = [];
  let finished = 0;
  let releaseSlow!: () => void;
  const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
  const run = forEachLimited([0, 1, 2, 3, 4], { concurrency: 2 }, async (item) => {
    started.push(item);
    if (item === 0) {
      await slow;
      finished++;
      return;
    }
    throw new Error(`item ${item} failed`);
  });
  await sleep(0);
  releaseSlow();
  await assert.rejects(run, /item 1 failed/);
  assert.deepEqual(started, [0, 1]);
  assert.equal(finished, 1, 'the call in flight finished before the loop rejected');
});

test('forEachLimited keeps `concurrency` calls going while one call is slow (no head-of-line wait)', async () => {
  let releaseSlow!: () => void;
  const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
  const done: number[] = [];
  let allOthersDone!: () => void;
  const othersDone = new Promise<void>((resolve) => (allOthersDone = resolve));
  const items = Array.from({ length: 12 }, (_, i) => i);
  const run = forEachLimited(items, { concurrency: 2 }, async (item) => {
    if (item === 0) await slow;
    done.push(item);
    if (done.length === items.length - 1) allOthersDone();
  });
  // Every other item finishes while item 0 still holds its slot.
  await othersDone;
  assert.deepEqual(done, items.slice(1));
  releaseSlow();
  await run;
  assert.deepEqual(done, [...items.slice(1), 0]);
});

test('forEachLimited takes any array-like (a typed array of ranges) and stops on its signal', async () => {
  const seen: number[] = [];
  await forEachLimited(new Float64Array([5, 6, 7]), { concurrency: 2 }, async (item, i) => {
    await Promise.resolve();
    seen[i] = item;
  });
  assert.deepEqual(seen, [5, 6, 7]);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    forEachLimited([1], { concurrency: 1, signal: controller.signal, what: 'read of x' }, () =>
      Promise.resolve(),
    ),
    { code: 'SADP_CANCELLED', message: 'read of x cancelled' },
  );
});

test('forEachOrdered consumes results in item order, one at a time, within the window', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.nat(4), { maxLength: 25 }),
      async (concurrency, window, delays) => {
        const consumed: number[] = [];
        let consuming = 0;
        let started = 0;
        let maxAhead = 0;
        await forEachOrdered(
          delays,
          { concurrency, window },
          async (d, i) => {
            started++;
            maxAhead = Math.max(maxAhead, started - consumed.length);
            for (let k = 0; k < d; k++) await Promise.resolve();
            return i * 10;
          },
          async (result, i) => {
            assert.equal(consuming, 0, 'one consume at a time');
            consuming++;
            await Promise.resolve();
            assert.equal(result, i * 10);
            consumed.push(i);
            consuming--;
          },
        );
        assert.deepEqual(
          consumed,
          delays.map((_, i) => i),
        );
        assert.ok(maxAhead <= window + concurrency, `${maxAhead} started ahead of consumption`);
      },
    ),
  );
});

test('forEachOrdered stops with SADP_CANCELLED when its signal aborts', async () => {
  const controller = new AbortController();
  const consumed: number[] = [];
  const run = forEachOrdered(
    [0, 1, 2, 3],
    { concurrency: 1, signal: controller.signal, what: 'indexing' },
    (item) => {
      if (item === 1) controller.abort();
      return Promise.resolve(item);
    },
    (item) => Promise.resolve(void consumed.push(item)),
  );
  await assert.rejects(run, { code: 'SADP_CANCELLED', message: 'indexing cancelled' });
  assert.deepEqual(consumed, [0, 1], 'what finished before the abort is consumed; nothing starts after');
});

test('a pool rejects a concurrency below 1 with SADP_INVALID_OPTION', () => {
  assert.throws(() => createLimiter(0), { code: 'SADP_INVALID_OPTION' });
});

test('raising the limit starts waiters at once; lowering it lets running tasks finish and starts none until under it', async () => {
  const limiter = createLimiter(1);
  const gates: Array<() => void> = [];
  const started: number[] = [];
  const runs = [0, 1, 2, 3].map((i) =>
    limiter.run(
      () =>
        new Promise<void>((resolve) => {
          started.push(i);
          gates[i] = resolve;
        }),
    ),
  );
  await Promise.resolve();
  assert.deepEqual(started, [0]);
  limiter.concurrency = 3;
  await Promise.resolve();
  assert.deepEqual(started, [0, 1, 2]);
  assert.equal(limiter.active, 3);
  limiter.concurrency = 1;
  gates[0]!();
  await runs[0];
  await Promise.resolve();
  assert.deepEqual(started, [0, 1, 2], 'two still run: over the lowered limit, no waiter starts');
  gates[1]!();
  await runs[1];
  await Promise.resolve();
  assert.deepEqual(started, [0, 1, 2]);
  gates[2]!();
  await runs[2];
  for (let k = 0; k < 3 && started.length < 4; k++) await Promise.resolve();
  assert.deepEqual(started, [0, 1, 2, 3], 'under the limit again: the waiter starts');
  gates[3]!();
  await Promise.all(runs);
  assert.equal(limiter.active, 0);
  assert.throws(() => {
    limiter.concurrency = 0;
  }, /concurrency must be a positive integer/);
});
