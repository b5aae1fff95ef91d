// A stream's credit window: which batches may be sent, and when credit grew.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { CreditWindow } from '../../../../loader/service/session/credit-window.js';

test('credit reaches max_unacked batches past the last ack; only a higher ack grows it', async () => {
  const credit = new CreditWindow(3, 2);
  assert.equal(credit.lastAck, 2);
  const controller = new AbortController();
  await credit.wait(4, controller.signal, () => false);
  let resolved = false;
  const waiting = credit.wait(5, controller.signal, () => false).then(() => (resolved = true));
  await tick();
  assert.equal(resolved, false, 'batch 5 has no credit before an ack of 3');
  credit.ack(1);
  await tick();
  assert.equal(resolved, false, 'an ack below the last one grants nothing');
  credit.ack(3);
  await waiting;
  assert.equal(credit.lastAck, 3);
  assert.ok(credit.grantTime(5) >= credit.grantTime(4), 'a later grant is no earlier');
});

test('a stopping stream passes at once, a woken writer re-checks, an abort rejects SADP_CANCELLED', async () => {
  const credit = new CreditWindow(0, 1);
  const controller = new AbortController();
  await credit.wait(9, controller.signal, () => true);
  let stopping = false;
  const woken = credit.wait(9, controller.signal, () => stopping);
  stopping = true;
  credit.wake();
  await woken;
  const aborted = credit.wait(9, controller.signal, () => false);
  controller.abort();
  await assert.rejects(aborted, { code: 'SADP_CANCELLED' });
});
