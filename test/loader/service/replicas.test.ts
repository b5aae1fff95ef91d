// Two loader replicas behind one trainer target: every rank's client dials
// `ipv4:<replica 1>,<replica 2>` with the SDK's default round_robin balancing
// (what a headless Service's addresses give), streams go to whichever replica
// the channel picks, and per id each epoch is exactly the scorer's plan: every
// selected id delivered once over all ranks with its plan weight, no other id.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LoaderServer } from '../../../loader/index.js';
import { createLoaderClient, type LoaderClient } from '../../../trainer/client/index.js';
import { getPlan, startStack, streamEpoch, type Stack } from './helpers.js';

const WORLD = 4;
const EPOCHS = 3;
const BATCH = 16;

let stack: Stack;
let replicas: LoaderServer[];

before(async () => {
  stack = await startStack();
  replicas = [await stack.startLoader(), await stack.startLoader()];
});

after(async () => {
  await stack?.close();
});

test('the SDK accepts a replica list and a balancing policy, and rejects what grpc-js would misread', () => {
  assert.doesNotThrow(() => createLoaderClient({ address: 'ipv4:127.0.0.1:1,127.0.0.2:1' }).close());
  assert.doesNotThrow(() =>
    createLoaderClient({ address: 'loader:50052', loadBalancing: 'pick_first' }).close(),
  );
  assert.throws(() => createLoaderClient({ address: 'ipv4:127.0.0.1' }), /neither host:port/);
  assert.throws(
    () => createLoaderClient({ address: 'a:1', loadBalancing: 'random' as 'pick_first' }),
    /loadBalancing must be round_robin or pick_first/,
  );
});

test('with 2 loader replicas and round_robin, each epoch delivers exactly the plan, per id', async () => {
  const jobId = await stack.createJob({ epochs: EPOCHS });
  const target = `ipv4:${replicas.map((r) => r.address).join(',')}`;
  // One client per rank: ranks are separate processes, each with its own channel.
  let totalSent = 0;
  const clients: LoaderClient[] = Array.from({ length: WORLD }, () =>
    createLoaderClient({ address: target }),
  );
  try {
    for (let epoch = 0; epoch < EPOCHS; epoch++) {
      const delivered = new Map<number, number[]>(); // id -> weights received (non-padded)
      await streamEpoch(clients, { job: jobId, epoch, batchSize: BATCH }, (batch) => {
        totalSent += batch.ids.length;
        batch.ids.forEach((id, i) => {
          if (batch.padded[i]) return;
          const got = delivered.get(id) ?? [];
          got.push(batch.weights[i]!);
          delivered.set(id, got);
        });
      });
      const plan = await getPlan(stack.scorerClient, jobId, epoch);
      assert.equal(delivered.size, plan.ids.length, `epoch ${epoch}: distinct ids delivered vs plan size`);
      plan.ids.forEach((id, i) => {
        const got = delivered.get(id);
        assert.ok(got, `epoch ${epoch}: planned id ${id} never delivered`);
        assert.equal(got.length, 1, `epoch ${epoch}: id ${id} delivered ${got.length} times`);
        assert.equal(got[0], Math.fround(plan.weights[i]!), `epoch ${epoch}: weight of id ${id}`);
      });
    }
  } finally {
    for (const c of clients) c.close();
  }
  // Which replica served which stream is the channel's choice (a random
  // start per channel, then alternating): only the total is fixed.
  const sent = replicas.map((r) => r.stats().samplesSent);
  assert.equal(
    sent.reduce((a, b) => a + b, 0),
    totalSent,
    `samples sent by the replicas (${sent.join(' + ')}) = samples the ranks received`,
  );
  process.stdout.write(`# samples per replica: ${sent.join(', ')}\n`);
});
