// The loader's in-flight byte budget (supply stage).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createByteBudget } from '../../../../loader/service/supply/byte-budget.js';

test('the byte budget admits in FIFO order, lets an oversized request through alone, and forgets aborted waiters', async () => {
  let contended = 0;
  const budget = createByteBudget(100, undefined, () => contended++);
  await budget.acquire(60);
  const order: string[] = [];
  const big = budget.acquire(50).then(() => order.push('big'));
  const small = budget.acquire(10).then(() => order.push('small'));
  assert.equal(budget.tryAcquire(10), false, 'no jumping the queue');
  assert.equal(contended, 2);
  budget.release(60);
  await Promise.all([big, small]);
  assert.deepEqual(order, ['big', 'small']);
  assert.equal(budget.used, 60);

  const controller = new AbortController();
  const aborted = budget.acquire(90, controller.signal);
  const after = budget.acquire(30);
  controller.abort();
  await assert.rejects(aborted, { code: 'SADP_CANCELLED' });
  await after;
  assert.equal(budget.used, 90);
  budget.release(90);

  await budget.acquire(500);
  assert.equal(budget.used, 500, 'a request larger than the budget goes when nothing else is held');
  assert.equal(budget.highWater, 500);
  budget.release(500);
  assert.equal(budget.tryAcquire(100), true);
});
