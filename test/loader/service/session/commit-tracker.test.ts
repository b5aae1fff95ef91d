// ScoresCommitted bookkeeping: contiguous durable acks, never between the parts of a batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommitTracker } from '../../../../loader/service/session/commit-tracker.js';

test('through_index is the highest ack with every ack before it durable', () => {
  const sent: number[] = [];
  const commits = new CommitTracker((through) => sent.push(through));
  const d0 = commits.track(0);
  const d1 = commits.track(1);
  const d2 = commits.track(2);
  assert.equal(commits.pending, 3);
  d1();
  assert.deepEqual(sent, [], 'ack 0 is not durable yet');
  d0();
  assert.deepEqual(sent, [1]);
  commits.batchStarted();
  d2();
  assert.deepEqual(sent, [1], 'no commit between the parts of a batch');
  commits.batchEnded();
  assert.deepEqual(sent, [1, 2]);
  assert.equal(commits.committed, 2);
  assert.equal(commits.pending, 0);
});

test('a batch that fails mid-way sends nothing; the queued commit still goes out on flush', () => {
  const sent: number[] = [];
  const commits = new CommitTracker((through) => sent.push(through));
  const d0 = commits.track(0);
  commits.batchStarted();
  d0();
  commits.batchAborted();
  assert.equal(commits.writing, false);
  assert.deepEqual(sent, []);
  commits.flushQueued();
  assert.deepEqual(sent, [0]);
});
