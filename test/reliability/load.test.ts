// Load, CI variant: eight concurrent trainer streams (one data-parallel job
// of world size 8, one SDK client each) on one loader whose in-flight budget
// holds only a few batches, so the streams compete for it. Every stream gets
// all of its batches, the epoch is exactly the plan and byte-identical, and
// the budget is never exceeded. `npm run reliability:load` runs 32 streams
// against services in separate processes and measures throughput, RSS, p99
// batch latency and fairness.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pb } from '../../proto/index.js';
import { createLoaderClient } from '../../trainer/client/index.js';
import { startStack, type Stack } from '../loader/service/helpers.js';
import { buildOracle, checkEpoch, epochClean, runEpoch, servedPlan, type Oracle } from './stack.js';

let stack: Stack;
let oracle: Oracle;
before(async () => {
  stack = await startStack();
  oracle = await buildOracle(stack.dataset);
});
after(async () => {
  await stack?.close();
});

test('eight concurrent streams share a tight in-flight budget: all complete, exactly the plan, budget held', async () => {
  const world = 8;
  const budget = 64 * 1024; // about three batches of 8 samples of ~2.5 KB
  const loader = await stack.startLoader({ inflightBytes: budget, prefetchBatches: 4 });
  const jobId = await stack.createJob({ epochs: 1, policy: pb.Policy.POLICY_FULL, pruneRatio: 0 });
  const clients = [...Array(world).keys()].map(() => createLoaderClient({ address: loader.address }));
  let sampled = 0;
  const sampler = setInterval(() => {
    sampled = Math.max(sampled, loader.stats().inflightBytes);
  }, 2);
  try {
    const ranks = await runEpoch({ job: jobId, epoch: 0, worldSize: world, batchSize: 8, oracle }, clients);
    const check = checkEpoch(
      ranks.map((r) => [r]),
      await servedPlan(stack.scorerClient, jobId, 0),
    );
    assert.ok(epochClean(check), JSON.stringify(check));
    const steps = ranks[0]?.info?.steps ?? 0;
    assert.ok(steps > 5);
    for (const r of ranks) assert.equal(r.indices.length, steps, `rank ${r.rank} got every batch`);
    const stats = loader.stats();
    assert.ok(stats.inflightHighWater <= budget, `high water ${stats.inflightHighWater} > budget ${budget}`);
    assert.ok(sampled <= budget);
    assert.ok(stats.inflightHighWater > budget / 4, 'the budget was actually contended');
    assert.equal(stats.inflightBytes, 0, 'every reserved byte was released');
  } finally {
    clearInterval(sampler);
    for (const c of clients) c.close();
  }
});
