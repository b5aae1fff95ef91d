// The reader's concurrency limiter and its backoff.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { sleep } from '../../common/abort.js';
import { backoffDelayMs } from '../../loader/fetch/backoff.js';
import { createLimiter } from '../../loader/fetch/limiter.js';

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

test('backoff is full jitter below min(max, base * 2^(attempt - 1)); sleep is cancellable', async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (attempt, u) => {
        const d = backoffDelayMs(attempt, 100, 5000, () => u);
        const ceiling = Math.min(5000, 100 * 2 ** (attempt - 1));
        assert.ok(d >= 0 && d < ceiling, `${d} vs ${ceiling}`);
      },
    ),
  );
  assert.equal(
    backoffDelayMs(3, 100, 5000, () => 0),
    0,
  );
  const controller = new AbortController();
  const sleeping = sleep(60_000, controller.signal);
  controller.abort();
  await assert.rejects(sleeping, { code: 'SADP_CANCELLED' });
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
