// Where plans are computed: small jobs on the event loop, large ones in one
// kept plan thread. The plan is the same wherever it runs (ids, weights,
// digest, persisted plan and snapshot), the thread is started once for
// many plans, and a failing plan fails with the same error on both paths
// (the computation's code and status, named after the job and epoch) while
// the thread serves the next one.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SadpError, Status } from '../../../common/errors.js';
import { metricValue } from '../../helpers/metrics.js';
import { openStore } from '../../../storage/index.js';
import { decodePlan, openScorerCore } from '../../../scorer/index.js';
import { decodePlanEnvelope } from '../../../scorer/state/codec.js';
import { Job } from '../../../scorer/service/job.js';
import { createPlanRunner, PLAN_ON_LOOP_MAX_EXAMPLES } from '../../../scorer/service/plan-thread.js';
import { resolveJobSpec } from '../../../scorer/service/spec.js';
import type { PlanTask } from '../../../scorer/service/plan-task.js';

const N = 5_000;

/** A job of N examples with every third one scored (deterministic scores and losses). */
function scoredJob(policy: 'sadp' | 'random' = 'sadp'): Job {
  const job = new Job(
    resolveJobSpec(
      { jobId: 'pt', datasetSize: N, policy, pruneRatio: 0.5, epochs: 6, seed: 11n },
      { maxDatasetSize: 1 << 20 },
    ),
  );
  const ids = Uint32Array.from({ length: Math.floor(N / 3) }, (_, k) => 3 * k);
  const scores = Float32Array.from(ids, (id) => ((id * 2654435761) % 1000) / 1000 + 0.01);
  job.applyReport(job.validateReport({ epoch: 0, ids, scores, losses: scores }));
  job.appliedSeq = 1;
  return job;
}

test('a plan is the same on the loop and in the plan thread, snapshot included', async () => {
  const job = scoredJob();
  const loop = createPlanRunner({ onLoopMaxExamples: N });
  const thread = createPlanRunner({ onLoopMaxExamples: 0 });
  try {
    for (const epoch of [0, 3]) {
      const task: PlanTask = job.planTask(epoch, true);
      const a = await loop.run(task, 'loop');
      const b = await thread.run(task, 'thread');
      assert.equal(a.plan.digest, b.plan.digest, `epoch ${epoch}`);
      assert.deepEqual(a.plan.ids, b.plan.ids);
      assert.deepEqual(a.plan.weights, b.plan.weights);
      // The persisted plans differ only in the measured compute time.
      const stored = (r: typeof a): unknown => {
        const plan = decodePlan(decodePlanEnvelope(r.envelope, epoch, 'plan'));
        return { ...plan, stats: { ...plan.stats, computeMs: 0 } };
      };
      assert.deepEqual(stored(a), stored(b));
      assert.ok(a.snapshot && b.snapshot);
      assert.deepEqual(a.snapshot, b.snapshot);
      assert.ok(a.plan.ids.length > 0 && a.plan.ids.length < N);
    }
    assert.equal(loop.threadsStarted, 0, 'small plans never start a thread');
    assert.equal(thread.threadsStarted, 1);
  } finally {
    await loop.close();
    await thread.close();
  }
});

test('one plan thread serves every plan, also concurrent ones, and survives a failing task', async () => {
  const job = scoredJob();
  const runner = createPlanRunner({ onLoopMaxExamples: 0 });
  try {
    const expected = [0, 1, 2, 3].map((e) => createPlanRunner().run(job.planTask(e, false), 'loop'));
    const got = await Promise.all([0, 1, 2, 3].map((e) => runner.run(job.planTask(e, false), `epoch ${e}`)));
    const want = await Promise.all(expected);
    got.forEach((g, e) => assert.equal(g.plan.digest, want[e]!.plan.digest, `epoch ${e}`));
    // planEpoch rejects an epoch outside the schedule: the task fails with its own code, the thread stays.
    await assert.rejects(runner.run(job.planTask(99, false), 'job pt epoch 99'), {
      code: 'SADP_MATH_BAD_EPOCH',
      message: /^job pt epoch 99: epoch must be an integer in \[0, 6\), got 99$/,
    });
    const after = await runner.run(job.planTask(4, false), 'epoch 4');
    assert.equal(after.plan.epoch, 4);
    assert.equal(runner.threadsStarted, 1);
  } finally {
    await runner.close();
  }
});

test('a failing plan fails with the same code, status and message on the loop and in the thread', async () => {
  const job = scoredJob();
  const loop = createPlanRunner({ onLoopMaxExamples: N });
  const thread = createPlanRunner({ onLoopMaxExamples: 0 });
  try {
    const failure = async (
      runner: typeof loop,
    ): Promise<{ code: string; status: number; message: string }> => {
      const err = await runner.run(job.planTask(99, false), 'job pt epoch 99').then(
        () => assert.fail('a plan of epoch 99 of a 6-epoch job must fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SadpError, String(err));
      return { code: err.code, status: err.status, message: err.message };
    };
    const onLoop = await failure(loop);
    const inThread = await failure(thread);
    assert.deepEqual(inThread, onLoop);
    assert.deepEqual(onLoop, {
      code: 'SADP_MATH_BAD_EPOCH',
      status: Status.INVALID_ARGUMENT,
      message: 'job pt epoch 99: epoch must be an integer in [0, 6), got 99',
    });
    assert.equal(loop.threadsStarted, 0, 'the loop path ran on the loop');
    assert.equal(thread.threadsStarted, 1, 'the thread path ran in the thread');
  } finally {
    await loop.close();
    await thread.close();
  }
});

test('the scorer plans small jobs on the loop and large ones in one kept thread (metrics)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-plan-thread-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const threads0 = await metricValue('sadp_scorer_plan_threads_started_total');
  const onLoop0 = await metricValue('sadp_scorer_plan_tasks_total', { where: 'loop' });
  const inThread0 = await metricValue('sadp_scorer_plan_tasks_total', { where: 'thread' });
  // Below the default bound: every plan on the loop.
  const small = await openScorerCore({ store: openStore(join(dir, 'small')) });
  await small.createJob({
    jobId: 's',
    datasetSize: N,
    policy: 'random',
    pruneRatio: 0.5,
    epochs: 3,
    seed: 1n,
  });
  const smallPlans = [];
  for (let e = 0; e < 3; e++) smallPlans.push(await small.getPlan('s', e));
  await small.close();
  assert.ok(N <= PLAN_ON_LOOP_MAX_EXAMPLES);
  assert.equal((await metricValue('sadp_scorer_plan_tasks_total', { where: 'loop' })) - onLoop0, 3);
  assert.equal(await metricValue('sadp_scorer_plan_threads_started_total'), threads0);
  // Forced to the thread: three plans, one thread; the same plans.
  const big = await openScorerCore({ store: openStore(join(dir, 'big')), planOnLoopMaxExamples: 0 });
  await big.createJob({ jobId: 's', datasetSize: N, policy: 'random', pruneRatio: 0.5, epochs: 3, seed: 1n });
  for (let e = 0; e < 3; e++) assert.equal((await big.getPlan('s', e)).digest, smallPlans[e]!.digest);
  await big.close();
  assert.equal((await metricValue('sadp_scorer_plan_tasks_total', { where: 'thread' })) - inThread0, 3);
  assert.equal((await metricValue('sadp_scorer_plan_threads_started_total')) - threads0, 1);
});
