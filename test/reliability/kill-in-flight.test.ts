// Faults the single-service kill runs do not reach: a score report proven in
// flight when the scorer dies (its write-ahead-log PUT held at a fault proxy
// in front of the S3 state store at the moment of the kill), and kill -9 of
// a trainer process mid-epoch (at a seeded batch count, between two of its
// checkpoints) restarted from its checkpoint: across the restart no sample
// is lost or trained on twice, and every acknowledged score is durable and
// shapes the next plan.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLoaderClient } from '../../trainer/client/index.js';
import { cleanEnv } from '../helpers/processes.js';
import { mulberry32 } from '../helpers/random.js';
import {
  assertExactlyThePlan,
  readDurableScoresRetrying,
  runKillScenario,
  startKillEnv,
  type KillEnv,
} from './kill-scenario.js';
import {
  ScoreLedger,
  checkEpoch,
  compareScores,
  createJob,
  epochClean,
  expectedPlanDigest,
  runEpoch,
  servedPlan,
  type JobParams,
  type RankOutcome,
} from './stack.js';

let env: KillEnv;
before(async () => {
  env = await startKillEnv({ scorerState: 's3', stateProxy: true });
});
after(async () => {
  await env?.stop();
  await env?.remove();
});

test('kill -9 of the scorer with a score report in flight: exactly the plan, no score lost', async () => {
  const { result } = await runKillScenario(env, {
    target: 'scorer',
    seed: 3,
    reportInFlight: true,
    epochs: 2,
  });
  assert.ok(result.heldReport, 'a write-ahead-log PUT of the job was held when the scorer died');
  assert.match(result.heldReport, new RegExp(`/scorer-state/jobs/${result.jobId}/log/`));
  assert.equal(result.kills.length, 1);
  assert.ok(result.kills[0]?.restartMs !== undefined, 'the scorer was restarted');
  assertExactlyThePlan(result);
});

interface ChildEvent {
  event: 'start' | 'batch' | 'checkpoint' | 'done';
  index?: number;
  ids?: number[];
  cursor?: number;
}

/** Runs the trainer child; with `killAtBatch` it SIGKILLs itself right after printing that many batches. */
async function runTrainer(
  args: string[],
  killAtBatch?: number,
): Promise<{ events: ChildEvent[]; exit: string }> {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith('.ts');
  const script = join(dirname(here), fromSource ? 'trainer-child.ts' : 'trainer-child.js');
  const argv = fromSource ? ['--import', import.meta.resolve('tsx'), script] : [script];
  const kill = killAtBatch === undefined ? [] : ['--kill-at', String(killAtBatch)];
  const proc = spawn(process.execPath, [...argv, ...args, ...kill], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const events: ChildEvent[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    events.push(JSON.parse(line) as ChildEvent);
  });
  const exit = await new Promise<string>((resolve) =>
    proc.once('close', (code, signal) => resolve(String(signal ?? code))),
  );
  if (killAtBatch === undefined) assert.equal(exit, '0', stderr);
  return { events, exit };
}

test('kill -9 of a trainer process mid-epoch, restarted from its checkpoint: no sample lost or repeated', async () => {
  const seed = 5;
  const rand = mulberry32(seed);
  const batchSize = 8;
  const every = 4;
  const params: JobParams = {
    jobId: `kill-trainer-${seed}-${process.pid}`,
    datasetSize: env.samples,
    policy: 'sadp',
    pruneRatio: 0.4,
    epochs: 2,
    seed,
    datasetUrl: env.manifestUrl,
  };
  const job = await createJob(env.scorerClient, params);
  const plan0 = await servedPlan(env.scorerClient, params.jobId, 0);
  const steps = Math.ceil(plan0.ids.length / batchSize);
  // A seeded batch count strictly between two checkpoints, so the restart
  // must replay the batches after the last checkpoint.
  let killAt = every + 1 + Math.floor(rand() * (steps - every - 2));
  if (killAt % every === 0) killAt++;
  const checkpoint = join(env.dir, `trainer-${seed}.json`);
  const args = [
    '--loader',
    env.loaderAddress,
    '--job',
    params.jobId,
    '--epoch',
    '0',
    '--world',
    '1',
    '--rank',
    '0',
    '--batch',
    String(batchSize),
    '--checkpoint',
    checkpoint,
    '--every',
    String(every),
  ];
  const first = await runTrainer(args, killAt);
  assert.equal(first.exit, 'SIGKILL');
  const saved = first.events.filter((e) => e.event === 'checkpoint').at(-1)?.cursor ?? 0;
  const firstBatches = first.events.filter((e) => e.event === 'batch');
  assert.equal(firstBatches.length, killAt, 'killed at the seeded batch');
  assert.ok(
    saved > 0 && saved < killAt,
    `checkpoint at ${saved}, killed after batch ${killAt}: mid-interval`,
  );

  const second = await runTrainer(args);
  assert.equal(second.events[0]?.cursor, saved, 'the restart resumed at the checkpoint cursor');
  const secondBatches = second.events.filter((e) => e.event === 'batch');
  assert.equal(secondBatches[0]?.index, saved, 'the first batch after the restart is the checkpoint cursor');

  // What the model trained on: batches before the checkpoint from the first
  // process (the checkpoint holds them), everything after from the second.
  const effective = [...firstBatches.filter((b) => (b.index ?? 0) < saved), ...secondBatches];
  assert.deepEqual(
    effective.map((b) => b.index),
    [...Array(steps).keys()],
    'every batch index once, in order',
  );
  const ids = effective.flatMap((b) => b.ids ?? []);
  assert.equal(new Set(ids).size, ids.length, 'no sample trained on twice');
  assert.deepEqual(
    [...ids].sort((a, b) => a - b),
    plan0.ids,
    'exactly the plan: no sample lost',
  );

  // Every score acked by either process is durable, and epoch 1's plan is
  // the one exactly those scores determine.
  const ledger = new ScoreLedger(env.samples);
  ledger.recordEpoch(0, [[{ ids } as RankOutcome]]);
  const epoch1Digest = expectedPlanDigest(job, params, 1, ledger);
  const client = createLoaderClient({ address: env.loaderAddress });
  try {
    const ranks = await runEpoch(
      { job: params.jobId, epoch: 1, worldSize: 1, batchSize, oracle: env.oracle },
      [client],
    );
    const plan1 = await servedPlan(env.scorerClient, params.jobId, 1);
    assert.equal(plan1.digest, epoch1Digest, "epoch 1's plan reflects every score of the killed epoch");
    assert.ok(epochClean(checkEpoch([ranks], plan1)));
    ledger.recordEpoch(1, [ranks]);
  } finally {
    client.close();
  }
  const scores = compareScores(ledger, await readDurableScoresRetrying(env, params.jobId));
  assert.equal(scores.lost, 0, scores.examples.join('; '));
  assert.equal(scores.unexpected, 0);
});
