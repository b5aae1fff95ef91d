// The signal helpers of common/signals: every wait ends on abort with
// SADP_CANCELLED (or false) and leaves no listener behind.
import assert from 'node:assert/strict';
import { EventEmitter, getEventListeners } from 'node:events';
import { test } from 'node:test';
import { SadpError, Status } from '../../common/errors.js';
import {
  abortWith,
  cancelledError,
  onAbort,
  raceSignal,
  settleWithin,
  sleep,
  waitForEvent,
} from '../../common/signals.js';

test('cancelledError keeps a SADP_CANCELLED reason and chains any other as its cause', () => {
  const reason = new SadpError('SADP_CANCELLED', 'training stopped by SIGTERM', { status: Status.CANCELLED });
  const a = new AbortController();
  a.abort(reason);
  assert.equal(cancelledError(a.signal, 'x'), reason);
  const b = new AbortController();
  const other = new Error('boom');
  b.abort(other);
  const err = cancelledError(b.signal, 'plan of job j');
  assert.equal(err.code, 'SADP_CANCELLED');
  assert.equal(err.message, 'plan of job j cancelled');
  assert.equal(err.cause, other);
});

test('sleep rejects at once on an aborted signal and leaves no listener on a live one', async () => {
  const controller = new AbortController();
  await sleep(0, controller.signal);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  controller.abort();
  await assert.rejects(sleep(0, controller.signal, 'nap'), {
    code: 'SADP_CANCELLED',
    message: 'nap cancelled',
  });
});

test('raceSignal resolves with the promise, or rejects on abort while the work goes on', async () => {
  const controller = new AbortController();
  assert.equal(await raceSignal(Promise.resolve(7), controller.signal, 'x'), 7);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'listener removed');
  let finish!: (v: number) => void;
  const work = new Promise<number>((resolve) => (finish = resolve));
  const raced = raceSignal(work, controller.signal, 'loading job j');
  controller.abort();
  await assert.rejects(raced, { code: 'SADP_CANCELLED', message: 'loading job j cancelled' });
  finish(1);
  assert.equal(await work, 1);
  await assert.rejects(raceSignal(Promise.resolve(1), controller.signal, 'late'), { code: 'SADP_CANCELLED' });
});

test('waitForEvent: true on the event, false on a stop event, an error or abort; no listener left', async () => {
  const emitter = new EventEmitter();
  const controller = new AbortController();
  const opts = { signal: controller.signal, stopEvents: ['cancelled', 'close'] };
  const drained = waitForEvent(emitter, 'drain', opts);
  emitter.emit('drain');
  assert.equal(await drained, true);
  const stopped = waitForEvent(emitter, 'drain', opts);
  emitter.emit('cancelled');
  assert.equal(await stopped, false);
  const failed = waitForEvent(emitter, 'drain', opts);
  emitter.emit('error', new Error('reset'));
  assert.equal(await failed, false);
  for (const name of ['drain', 'cancelled', 'close', 'error'])
    assert.equal(emitter.listenerCount(name), 0, name);
  const aborted = waitForEvent(emitter, 'drain', opts);
  controller.abort();
  assert.equal(await aborted, false);
  assert.equal(emitter.listenerCount('drain'), 0);
  assert.equal(await waitForEvent(emitter, 'drain', opts), false, 'already aborted');
});

test('onAbort calls its function once on abort and not after it was disposed', () => {
  const controller = new AbortController();
  let calls = 0;
  const stop = onAbort(controller.signal, () => calls++);
  const disposed = onAbort(controller.signal, () => calls++);
  disposed();
  controller.abort();
  controller.abort();
  stop();
  assert.equal(calls, 1);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  onAbort(undefined, () => calls++)();
});

test('onAbort is Disposable: a `using` scope removes its listener; an aborted signal calls it once, later', async () => {
  const controller = new AbortController();
  let calls = 0;
  {
    using _listening = onAbort(controller.signal, () => calls++);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
  }
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'removed at the end of the scope');
  controller.abort();
  assert.equal(calls, 0);
  onAbort(controller.signal, () => calls++);
  assert.equal(calls, 0, 'not synchronously');
  await Promise.resolve();
  assert.equal(calls, 1);
  {
    using _none = onAbort(undefined, () => calls++);
  }
  assert.equal(calls, 1);
});

test('abortWith aborts the child with the parent reason, at once when the parent already aborted', () => {
  const parent = new AbortController();
  const child = new AbortController();
  const forward = abortWith(child, parent.signal);
  const reason = new Error('stop');
  parent.abort(reason);
  assert.equal(child.signal.reason, reason);
  forward();
  assert.equal(getEventListeners(parent.signal, 'abort').length, 0);

  const late = new AbortController();
  {
    using _forward = abortWith(late, parent.signal);
  }
  assert.equal(late.signal.reason, reason, 'already aborted: forwarded synchronously');

  const live = new AbortController();
  const other = new AbortController();
  {
    using _forward = abortWith(other, live.signal);
    assert.equal(getEventListeners(live.signal, 'abort').length, 1);
  }
  assert.equal(getEventListeners(live.signal, 'abort').length, 0, 'disposed with its scope');
  live.abort();
  assert.equal(other.signal.aborted, false, 'not forwarded after disposal');
  abortWith(other, undefined)();
  assert.equal(other.signal.aborted, false);
});

test('settleWithin: true once the promise settles either way, false for one that never does', async () => {
  // A settled promise wins over a long timer, which is cleared (the test would hang otherwise).
  assert.equal(await settleWithin(Promise.resolve(1), 600_000), true);
  assert.equal(await settleWithin(Promise.reject(new Error('x')), 600_000), true);
  assert.equal(await settleWithin(new Promise(() => undefined), 0), false);
});
