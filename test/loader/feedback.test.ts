// Scores on their way back: acks are forwarded to the scorer in batches, a
// scorer outage is ridden out with retries (nothing dropped), and each
// stream learns which of its acks are durable through ScoresCommitted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createScorerClient, createScorerServer } from '../../scorer/index.js';
import { SAMPLES, connectLoader, getPlan, getStats, startRank, startStack, waitFor } from './helpers.js';

test('scores survive a scorer outage: the loader retries, then commits every ack', async (t) => {
  const stack = await startStack();
  t.after(() => stack.close());
  // A scorer of this test's own, so it can be stopped and restarted on its port.
  const stateUrl = join(stack.dir, 'scorer-outage');
  let scorer = await createScorerServer({ host: '127.0.0.1', port: 0, stateUrl });
  const port = scorer.port;
  t.after(() => scorer.close(200));
  const scorerClient = createScorerClient({ address: scorer.address });
  t.after(() => scorerClient.close());
  const jobId = await stack.createJob({ jobId: 'outage', epochs: 2, seed: 5 }, scorerClient);
  const loader = await stack.startLoader({ scorerAddress: scorer.address, scoreFlushMs: 20 });
  const client = connectLoader(loader.address);
  t.after(() => client.close());

  const base = { jobId, epoch: 0, world: 2, batchSize: 32 };
  const ranks = [0, 1].map((rank) => startRank(client, stack.dataset, { ...base, rank, holdAcksFrom: 1 }));
  await waitFor('batch 0 committed on both ranks', () => ranks.every((r) => r.commits.includes(0)));

  await scorer.close(200);
  for (const r of ranks) r.release();
  await waitFor('the loader to retry its reports', () => loader.stats().scoreRetries > 0);
  const committedDuringOutage = ranks.map((r) => Math.max(...r.commits));
  assert.deepEqual(committedDuringOutage, [0, 0], 'nothing is reported committed while the scorer is down');

  scorer = await createScorerServer({ host: '127.0.0.1', port, stateUrl });
  const results = await Promise.all(ranks.map((r) => r.done));
  const plan = await getPlan(scorerClient, jobId, 0);
  for (const r of results) {
    assert.equal(r.code, 0, r.details);
    assert.equal(
      Math.max(...r.commits),
      (r.info?.steps ?? 0) - 1,
      'every ack committed once the scorer was back',
    );
  }
  const s = loader.stats();
  assert.equal(s.scoresBuffered, 0);
  assert.equal(s.scoresRejected, 0);
  // Each selected example was acked once with a score (padding excluded), and all of them arrived.
  assert.equal(s.scoresForwarded, plan.ids.length);
  const stats = await getStats(scorerClient, jobId, 0);
  assert.equal(stats.scoredFraction, plan.ids.length / SAMPLES);
});
