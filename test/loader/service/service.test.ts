// The loader service end to end over real sockets: embedded S3 with real tar
// shards, the real scorer service, loader servers on loopback, and four
// trainer ranks speaking StreamEpoch through LoaderClient. The first two
// tests run again with GET + cut in a read thread (readerOptions.threads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { registry } from '../../../common/metrics.js';
import type { Dataset } from '../../../loader/shards/index.js';
import { LOADER_SERVICE_NAME, pb } from '../../../proto/index.js';
import { healthStatus } from '../../helpers/grpc.js';
import {
  SAMPLES,
  connectLoader,
  getPlan,
  getStats,
  idsTouched,
  runRank,
  startRank,
  waitFor,
  type RankResult,
  useStack,
} from './helpers.js';

const stack = useStack();

const WORLD = 4;
const BATCH = 16;

/** Asserts the epoch's four rank results partition the plan exactly (up to padding). */
function checkEpoch(results: RankResult[], plan: { ids: number[]; weights: number[] }): void {
  const planWeight = new Map(plan.ids.map((id, i) => [id, plan.weights[i] as number]));
  const info = results[0]?.info;
  assert.ok(info, 'no EpochInfo');
  const m = plan.ids.length;
  assert.equal(info.selectedCount, m);
  assert.equal(info.samplesPerRank, Math.ceil(m / WORLD));
  assert.equal(info.steps, Math.ceil(info.samplesPerRank / BATCH));
  assert.equal(info.padded, info.samplesPerRank * WORLD - m);
  const seen = new Map<number, number>();
  let padded = 0;
  for (const r of results) {
    assert.equal(r.code, 0, `rank ended with ${r.code}: ${r.details}`);
    assert.equal(r.info?.steps, info.steps, 'ranks disagree on steps');
    assert.equal(r.info?.planDigest, info.planDigest);
    assert.deepEqual(
      r.batches.map((b) => b.index),
      [...Array(info.steps).keys()],
      'each rank gets batches 0..steps-1 once, in order',
    );
    assert.equal(
      r.batches.reduce((n, b) => n + b.ids.length, 0),
      info.samplesPerRank,
    );
    for (const b of r.batches) {
      b.ids.forEach((id, k) => {
        assert.equal(b.weights[k], planWeight.get(id), `weight of ${id} differs from the plan's`);
        if (b.padded[k]) padded++;
        else seen.set(id, (seen.get(id) ?? 0) + 1);
      });
    }
    // The loader committed every ack's scores before ending the stream.
    assert.equal(Math.max(...r.commits), info.steps - 1, 'ScoresCommitted through the last batch');
  }
  assert.equal(padded, info.padded);
  assert.deepEqual(
    [...seen.keys()].sort((a, b) => a - b),
    plan.ids,
    'non-padded deliveries equal the plan',
  );
  assert.ok(
    [...seen.values()].every((c) => c === 1),
    'no id is delivered twice outside padding',
  );
}

async function runEpoch(
  jobId: string,
  epoch: number,
  address: string,
  dataset: Dataset,
): Promise<RankResult[]> {
  const client = connectLoader(address);
  try {
    return await Promise.all(
      [...Array(WORLD).keys()].map((rank) =>
        runRank(client, dataset, { jobId, epoch, rank, world: WORLD, batchSize: BATCH }),
      ),
    );
  } finally {
    client.close();
  }
}

const titled = (title: string, threads: number): string =>
  threads === 0 ? title : `${title} (${threads} read thread)`;

for (const threads of [0, 1])
  test(
    titled(
      'four ranks over two SADP epochs get exactly the plan, and pruned samples are never read',
      threads,
    ),
    async () => {
      const jobId = await stack.createJob({ epochs: 2, pruneRatio: 0.5 });
      const loader = await stack.startLoader(
        threads === 0 ? {} : { readerOptions: { planner: 'ranges', gapBytes: 0, threads } },
      );
      stack.requests.length = 0;
      const plans = [];
      const scored = new Set<number>();
      for (let epoch = 0; epoch < 2; epoch++) {
        const results = await runEpoch(jobId, epoch, loader.address, stack.dataset);
        const plan = await getPlan(stack.scorerClient, jobId, epoch);
        plans.push(plan);
        checkEpoch(results, plan);
        assert.ok(plan.ids.length < SAMPLES, 'the plan prunes something');
        // Every selected example was scored by its rank and the scores reached the scorer.
        for (const id of plan.ids) scored.add(id);
        const stats = await getStats(stack.scorerClient, jobId, epoch);
        assert.equal(stats.scoredFraction, scored.size / SAMPLES);
        if (epoch === 1) {
          const distinct = new Set(plan.weights);
          assert.ok(distinct.size > 1, 'epoch 1 weights follow the reported scores (not uniform)');
          assert.ok(
            plan.weights.every((w) => w > 0 && Number.isFinite(w)),
            'weights are positive and finite',
          );
        }
      }
      // Storage: every GET covers samples selected in one epoch only, and every
      // selected sample was read.
      const sets = plans.map((p) => new Set(p.ids));
      for (const r of stack.requests) {
        const covered = idsTouched(stack.dataset, [r]);
        assert.ok(covered.size > 0);
        assert.ok(
          sets.some((s) => [...covered].every((id) => s.has(id))),
          `GET ${r.key} [${r.start}, ${r.end}) reads a sample that no epoch selected alongside the others`,
        );
      }
      const touched = idsTouched(stack.dataset, stack.requests);
      const selected = new Set([...(sets[0] ?? []), ...(sets[1] ?? [])]);
      assert.deepEqual(
        [...touched].sort((a, b) => a - b),
        [...selected].sort((a, b) => a - b),
      );
      const s = loader.stats();
      assert.equal(s.inflightBytes, 0, 'every reserved byte was given back');
      assert.ok(s.warmBatchesStarted > 0, 'epoch 1 was prefetched at the boundary');
      const text = await registry.metrics();
      const count = Number(/sadp_loader_boundary_stall_seconds_count (\d+)/.exec(text)?.[1] ?? 0);
      assert.ok(count >= 1, 'boundary stall recorded');
    },
  );

/** Joins the batches a rank acknowledged over several calls into one result, as the trainer saw them. */
function joined(parts: Array<{ result: RankResult; acked: number }>): RankResult {
  const last = parts[parts.length - 1] as { result: RankResult };
  return {
    ...last.result,
    batches: parts.flatMap((p) => p.result.batches.slice(0, p.acked)),
  };
}

for (const threads of [0, 1])
  test(
    titled('a rank that disconnects mid-epoch resumes at its cursor: nothing lost, nothing twice', threads),
    async () => {
      const jobId = await stack.createJob({ epochs: 1, pruneRatio: 0.4 });
      const loader = await stack.startLoader({ shuffle: 'shard-block', readerOptions: { threads } });
      const client = connectLoader(loader.address);
      try {
        const base = { jobId, epoch: 0, world: WORLD, batchSize: BATCH };
        const others = [0, 2, 3].map((rank) => runRank(client, stack.dataset, { ...base, rank }));
        const first = await runRank(client, stack.dataset, { ...base, rank: 1, stopAfter: 2 });
        assert.equal(first.code, 1, `the first call was cancelled by the client: ${first.details}`);
        assert.equal(first.batches.length, 2);
        const second = await runRank(client, stack.dataset, { ...base, rank: 1, cursor: 2 });
        assert.equal(second.batches[0]?.index, 2, 'the reconnect starts at the cursor');
        const [r0, r2, r3] = await Promise.all(others);
        const plan = await getPlan(stack.scorerClient, jobId, 0);
        const r1 = joined([
          { result: first, acked: 2 },
          { result: second, acked: second.batches.length },
        ]);
        checkEpoch([r0 as RankResult, r1, r2 as RankResult, r3 as RankResult], plan);
      } finally {
        client.close();
      }
    },
  );

test('a loader drained and replaced mid-epoch: ranks resume on the new loader with their cursor', async () => {
  const jobId = await stack.createJob({ epochs: 1, policy: pb.Policy.POLICY_FULL, pruneRatio: 0 });
  const a = await stack.startLoader();
  const clientA = connectLoader(a.address);
  const base = { jobId, epoch: 0, world: WORLD, batchSize: BATCH, maxUnacked: 2 };
  // Each rank acks two batches, then holds its acks: loader A has sent 4 batches and waits.
  const ranks = [...Array(WORLD).keys()].map((rank) =>
    startRank(clientA, stack.dataset, { ...base, rank, holdAcksFrom: 2 }),
  );
  await waitFor('four batches per rank', () => ranks.every((r) => r.batches.length === 4));
  const closing = a.close(10_000);
  await waitFor('A to drain', () => a.stats().activeStreams === WORLD);
  assert.equal(await healthStatus(a.address, LOADER_SERVICE_NAME), 'NOT_SERVING');
  const refused = await runRank(clientA, stack.dataset, { ...base, rank: 0 });
  assert.equal(refused.code, grpc.status.UNAVAILABLE);
  assert.match(refused.details, /shutting down/);
  // The trainers ack what they got; A commits those scores and ends each stream.
  for (const r of ranks) r.release();
  const drained = await Promise.all(ranks.map((r) => r.done));
  await closing;
  for (const r of drained) {
    assert.equal(
      r.code,
      grpc.status.UNAVAILABLE,
      `${r.code} ${r.details} ${r.batches.length} ${r.commits.join()}`,
    );
    assert.match(r.details, /reconnect with cursor 4/);
    assert.equal(Math.max(...r.commits), 3, 'the drain committed every ack');
  }
  clientA.close();

  const b = await stack.startLoader();
  const clientB = connectLoader(b.address);
  try {
    const resumed = await Promise.all(
      [...Array(WORLD).keys()].map((rank) => runRank(clientB, stack.dataset, { ...base, rank, cursor: 4 })),
    );
    const plan = await getPlan(stack.scorerClient, jobId, 0);
    checkEpoch(
      resumed.map((r, rank) =>
        joined([
          { result: drained[rank] as RankResult, acked: 4 },
          { result: r, acked: r.batches.length },
        ]),
      ),
      plan,
    );
    // Every score of the epoch reached the scorer across the two loaders.
    const stats = await getStats(stack.scorerClient, jobId, 0);
    assert.equal(stats.scoredFraction, plan.ids.length / SAMPLES);
  } finally {
    clientB.close();
  }
});

test('a stalled trainer holds its share of the in-flight budget while the other ranks finish', async () => {
  const jobId = await stack.createJob({ epochs: 1, pruneRatio: 0.2, policy: pb.Policy.POLICY_RANDOM });
  const budget = 200_000; // about three batches of 16 samples
  const loader = await stack.startLoader({ inflightBytes: budget, prefetchBatches: 4 });
  const client = connectLoader(loader.address);
  let maxSeen = 0;
  const sampler = setInterval(() => {
    maxSeen = Math.max(maxSeen, loader.stats().inflightBytes);
  }, 1);
  try {
    const base = { jobId, epoch: 0, world: WORLD, batchSize: BATCH };
    const stalled = startRank(client, stack.dataset, { ...base, rank: 0, stallAfterParts: 1 });
    const others = await Promise.all(
      [1, 2, 3].map((rank) => runRank(client, stack.dataset, { ...base, rank })),
    );
    for (const r of others) {
      assert.equal(r.code, 0, r.details);
      assert.equal(r.batches.length, r.info?.steps);
    }
    assert.ok(stalled.batches.length < (others[0]?.info?.steps ?? 0), 'rank 0 really stalled');
    const s = loader.stats();
    assert.ok(maxSeen <= budget, `in-flight bytes reached ${maxSeen} > ${budget}`);
    assert.ok(s.inflightHighWater <= budget, `high water ${s.inflightHighWater} > ${budget}`);
    assert.ok(s.inflightHighWater > 0);
    stalled.call.cancel();
    await stalled.done;
    await waitFor('the stalled stream to release its bytes', () => loader.stats().inflightBytes === 0);
  } finally {
    clearInterval(sampler);
    client.close();
  }
});
