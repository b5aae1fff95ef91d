// Kill -9 and restart: the scorer runs as a separate process (`sadp scorer`);
// after SIGKILL a new process on the same state serves the identical plan of
// an epoch drawn before the crash and holds every acknowledged score. Once
// on a local directory, once on an S3 prefix of the embedded S3 server.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pb } from '../../../proto/index.js';
import { planEpoch } from '../../../scorer/index.js';
import { startEmbeddedS3 } from '../../../storage/index.js';
import {
  ExpectedScores,
  call,
  connect,
  fetchPlan,
  makeReport,
  spawnScorer,
  tempDir,
  type SpawnedScorer,
} from './helpers.js';
import { mulberry32 } from '../../helpers/random.js';

const N = 50_000;
const JOB = 'restart';

function reference(expected: ExpectedScores, epoch: number): string {
  return planEpoch({
    policy: 'sadp',
    datasetSize: N,
    pruneRatio: 0.5,
    maxPruneRatio: 0.7,
    smoothing: 0.3,
    epochs: 3,
    epoch,
    seed: 77n,
    scores: expected.scores,
    losses: expected.losses,
    scored: expected.scoredByScore,
  }).digest;
}

/** Concurrent reports over disjoint id ranges [from, to), 5,000 ids each. */
async function reportRange(
  t: TestContext,
  scorer: SpawnedScorer,
  expected: ExpectedScores,
  from: number,
  to: number,
  seed: number,
) {
  const client = connect(t, scorer.address);
  const next = mulberry32(seed);
  const reports = [];
  for (let at = from; at < to; at += 5_000) reports.push(makeReport(JOB, at, Math.min(to, at + 5_000), next));
  await Promise.all(reports.map((r) => call(client, 'reportScores', r)));
  for (const r of reports) expected.apply(r);
}

async function crashAndRecover(t: TestContext, stateArgs: string[]): Promise<void> {
  const expected = new ExpectedScores(N);
  const first = await spawnScorer(t, stateArgs);
  const c1 = connect(t, first.address);
  await call(c1, 'createJob', {
    spec: pb.JobSpec.create({
      jobId: JOB,
      datasetSize: N,
      policy: pb.Policy.POLICY_SADP,
      pruneRatio: 0.5,
      epochs: 3,
      seed: 77,
    }),
  });
  await reportRange(t, first, expected, 0, 30_000, 1);
  const plan0 = await fetchPlan(c1, JOB, 0);
  assert.equal(plan0.digest, reference(expected, 0));
  // Overlaps the first batch: the later value must win after recovery too.
  await reportRange(t, first, expected, 20_000, 50_000, 2);
  first.proc.kill('SIGKILL');
  assert.equal(await first.exited, 'SIGKILL');

  const second = await spawnScorer(t, stateArgs);
  const c2 = connect(t, second.address);
  const job = await call(c2, 'describeJob', { jobId: JOB });
  assert.equal(Number(job.scoresReceived), expected.received);
  assert.equal(job.scoredExamples, N);
  assert.equal(job.plannedEpochs, 1);
  const again = await fetchPlan(c2, JOB, 0);
  assert.equal(again.digest, plan0.digest);
  assert.deepEqual(again.ids, plan0.ids);
  assert.equal(
    (await call(c2, 'getStats', { jobId: JOB, epoch: 0 })).computeMs,
    0,
    'read back, not recomputed',
  );
  assert.equal((await fetchPlan(c2, JOB, 1)).digest, reference(expected, 1));

  // SIGTERM is a clean shutdown.
  second.proc.kill('SIGTERM');
  assert.equal(await second.exited, 0);
}

test('kill -9 and restart on a local state directory', async (t) => {
  const dir = await tempDir(t);
  await crashAndRecover(t, ['--state', join(dir, 'state'), '--log-level', 'warn']);
});

test('kill -9 and restart on an S3 state prefix (embedded S3 server)', async (t) => {
  const dir = await tempDir(t);
  const s3 = await startEmbeddedS3({ dataDir: join(dir, 's3'), buckets: ['scorer-state'] });
  t.after(() => s3.close());
  await crashAndRecover(t, [
    '--state',
    's3://scorer-state/prod/scorer',
    '--endpoint',
    s3.endpoint,
    '--region',
    'us-east-1',
    '--access-key-id',
    s3.accessKeyId,
    '--secret-access-key',
    s3.secretAccessKey,
    '--path-style',
    '--log-level',
    'warn',
  ]);
});
