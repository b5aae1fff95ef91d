// The shared backoff and retry loop of common/retry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffDelayMs, retry } from '../../common/retry.js';
import { sleep } from '../../common/signals.js';

test('backoff is full jitter below min(max, base * 2^(attempt - 1)); sleep is cancellable', async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (attempt, u) => {
        const d = backoffDelayMs(attempt, { baseDelayMs: 100, maxDelayMs: 5000, random: () => u });
        const ceiling = Math.min(5000, 100 * 2 ** (attempt - 1));
        assert.ok(d >= 0 && d < ceiling, `${d} vs ${ceiling}`);
      },
    ),
  );
  assert.equal(backoffDelayMs(3, { baseDelayMs: 100, maxDelayMs: 5000, random: () => 0 }), 0);
  const controller = new AbortController();
  const sleeping = sleep(60_000, controller.signal);
  controller.abort();
  await assert.rejects(sleeping, { code: 'SADP_CANCELLED' });
});

test('equal jitter keeps half of the ceiling fixed', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (attempt, u) => {
        const d = backoffDelayMs(attempt, {
          baseDelayMs: 250,
          maxDelayMs: 10_000,
          jitter: 'equal',
          random: () => u,
        });
        const ceiling = Math.min(10_000, 250 * 2 ** (attempt - 1));
        assert.ok(d >= ceiling / 2 - 0.5 && d <= ceiling + 0.5, `${d} vs ${ceiling}`);
      },
    ),
  );
});

const transient = Object.assign(new Error('try again'), { transient: true });
const fatal = new Error('never');
const classify = (err: unknown): boolean => (err as { transient?: boolean }).transient === true;

test('retry retries what the classifier calls transient, up to `attempts` calls, then rethrows the last failure', async () => {
  const retried: Array<[number, number]> = [];
  let calls = 0;
  await assert.rejects(
    retry(
      () => {
        calls++;
        return Promise.reject(transient);
      },
      {
        attempts: 3,
        baseDelayMs: 1,
        maxDelayMs: 1,
        classify,
        what: 'test',
        random: () => 0,
        onRetry: (_err, attempt, delayMs) => retried.push([attempt, delayMs]),
      },
    ),
    (err) => err === transient,
  );
  assert.equal(calls, 3);
  assert.deepEqual(retried, [
    [1, 0],
    [2, 0],
  ]);
});

test('retry stops at the first failure the classifier calls permanent, and returns the first success', async () => {
  let calls = 0;
  await assert.rejects(
    retry(() => (++calls === 1 ? Promise.reject(transient) : Promise.reject(fatal)), {
      attempts: 10,
      baseDelayMs: 1,
      maxDelayMs: 1,
      random: () => 0,
      classify,
      what: 'test',
    }),
    (err) => err === fatal,
  );
  assert.equal(calls, 2);
  const seen: number[] = [];
  const value = await retry(
    (attempt) => {
      seen.push(attempt);
      return attempt < 3 ? Promise.reject(transient) : Promise.resolve('ok');
    },
    { attempts: Infinity, baseDelayMs: 1, maxDelayMs: 1, random: () => 0, classify, what: 'test' },
  );
  assert.equal(value, 'ok');
  assert.deepEqual(seen, [1, 2, 3]);
});

test('retry rejects with SADP_CANCELLED naming the work when its signal aborts during the backoff', async () => {
  const controller = new AbortController();
  const run = retry(() => Promise.reject(transient), {
    attempts: Infinity,
    baseDelayMs: 60_000,
    maxDelayMs: 60_000,
    random: () => 0.5,
    classify,
    signal: controller.signal,
    what: 'describe job j',
    onRetry: () => controller.abort(),
  });
  await assert.rejects(run, { code: 'SADP_CANCELLED', message: 'describe job j cancelled' });
  await sleep(0);
});
