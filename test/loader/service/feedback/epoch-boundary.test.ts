// Epoch boundary bookkeeping by typed rank keys: completion per epoch shape, the plan barrier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EpochBoundary } from '../../../../loader/service/feedback/epoch-boundary.js';
import type { EpochShape } from '../../../../loader/service/jobs/rank-key.js';
import { loaderMetrics } from '../../../../loader/service/metrics.js';

test('an epoch shape completes once, when each of its ranks acked its last batch', () => {
  const boundary = new EpochBoundary(loaderMetrics());
  const complete: EpochShape[] = [];
  boundary.onEpochComplete((shape) => complete.push(shape));
  const shape = { jobId: 'j', epoch: 2, world: 2, batchSize: 8 };
  const r0 = boundary.streamOpened({ ...shape, rank: 0 });
  const other = boundary.streamOpened({ ...shape, batchSize: 4, rank: 1 });
  const r1 = boundary.streamOpened({ ...shape, rank: 1 });
  assert.equal(boundary.rankOpened({ ...shape, rank: 1 }), true);
  assert.equal(boundary.rankOpened({ ...shape, epoch: 3, rank: 1 }), false);
  r0.finished();
  other.finished();
  assert.deepEqual(complete, [], 'a rank of another batch size is another shape');
  r1.finished();
  r1.finished();
  assert.deepEqual(complete, [shape]);
  boundary.close();
});

test('the barrier of an epoch waits for its open streams, and not at all without any', async () => {
  const boundary = new EpochBoundary(loaderMetrics());
  const never = new AbortController().signal;
  await boundary.barrier('j', 0, 600_000, never);
  const a = boundary.streamOpened({ jobId: 'j', epoch: 0, world: 2, batchSize: 1, rank: 0 });
  const b = boundary.streamOpened({ jobId: 'j', epoch: 0, world: 2, batchSize: 1, rank: 1 });
  let passed = false;
  const barrier = boundary.barrier('j', 0, 600_000, never).then(() => (passed = true));
  a.finished();
  await Promise.resolve();
  assert.equal(passed, false, 'rank 1 is still short of its last ack');
  b.closed();
  await barrier;
  boundary.close();
});
