// The real trainer SDK against the real loader: two ranks iterate two SADP
// epochs with token auth and report scores, while the loader is drained and
// replaced on the same port mid-epoch; the SDK reconnects with its cursor and
// resends uncommitted scores. Each epoch still delivers exactly its plan and
// every score reaches the scorer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLoaderServer, type LoaderServer } from '../../../loader/index.js';
import { createLoaderClient } from '../../../trainer/client/index.js';
import { SAMPLES, getPlan, getStats, newToken, scoreOf, useStack } from './helpers.js';
import { freePort } from '../../helpers/ports.js';

const stack = useStack();

test('the trainer SDK rides through a loader restart without losing or repeating a sample or a score', async () => {
  const token = newToken();
  const jobId = await stack.createJob({ epochs: 2, pruneRatio: 0.5, token });
  const options = {
    scorerAddress: stack.scorer.address,
    s3: stack.s3Options,
    auth: 'token' as const,
    shuffle: 'shard-block' as const,
  };
  // Outside the ephemeral range, so no outgoing connection takes the port while it is free.
  let loader: LoaderServer = await createLoaderServer({ ...options, port: await freePort() });
  const port = loader.port;
  const world = 2;
  const clients = [...Array(world).keys()].map(() =>
    createLoaderClient({ address: loader.address, token, reconnect: { baseDelayMs: 50, maxDelayMs: 500 } }),
  );
  let restart: Promise<void> | undefined;
  try {
    for (let epoch = 0; epoch < 2; epoch++) {
      const delivered = await Promise.all(
        clients.map(async (client, rank) => {
          const ids: number[] = [];
          const stream = client.epoch({ job: jobId, epoch, rank, worldSize: world, batchSize: 24 });
          for await (const batch of stream) {
            batch.ids.forEach((id, j) => {
              if (!batch.padded[j]) ids.push(id);
            });
            await batch.ack({ scores: Array.from(batch.ids, scoreOf) });
            if (epoch === 0 && rank === 0 && batch.index === 2) {
              const old = loader;
              restart = (async () => {
                await old.close(5_000);
                loader = await createLoaderServer({ ...options, port });
              })();
            }
          }
          return { ids, reopens: stream.stats.reopens, pending: stream.pendingAcks().length };
        }),
      );
      if (epoch === 0) {
        assert.ok(restart, 'the loader was restarted mid-epoch');
        await restart;
        assert.ok((delivered[0]?.reopens ?? 0) >= 1, 'rank 0 reconnected to the new loader');
      }
      const plan = await getPlan(stack.scorerClient, jobId, epoch);
      const all = delivered.flatMap((d) => d.ids);
      assert.equal(all.length, plan.ids.length, `epoch ${epoch}: no sample twice`);
      assert.deepEqual(
        [...all].sort((a, b) => a - b),
        plan.ids,
        `epoch ${epoch}: exactly the plan`,
      );
      assert.ok(
        delivered.every((d) => d.pending === 0),
        'every score committed',
      );
    }
    const union = new Set([
      ...(await getPlan(stack.scorerClient, jobId, 0)).ids,
      ...(await getPlan(stack.scorerClient, jobId, 1)).ids,
    ]);
    const stats = await getStats(stack.scorerClient, jobId, 1);
    assert.equal(stats.scoredFraction, union.size / SAMPLES);
  } finally {
    for (const c of clients) c.close();
    await loader.close(500);
  }
});
