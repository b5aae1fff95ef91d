// Scorer access control over real gRPC sockets: the admin role creates jobs,
// the job-scoped role (a job's own token for that job, the loader token for
// every job) describes, plans, reports and reads stats, and every refusal has
// its status. A loader presenting the loader token serves an epoch end to
// end; a loader without it is refused. Configurations that would leave a
// token unchecked are refused at start.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { bearerInterceptor } from '../../../common/bearer.js';
import { isSadpError } from '../../../common/errors.js';
import { ScorerClient, pb, type sadp } from '../../../proto/index.js';
import { createScorerServer, type ScorerServer } from '../../../scorer/index.js';
import {
  SAMPLES,
  connectLoader,
  newToken,
  runRank,
  startStack,
  unary,
  type Stack,
} from '../../loader/service/helpers.js';
import { rejectsWith } from './helpers.js';

const S = grpc.status;
const ADMIN = newToken();
const LOADER = newToken();
let stack: Stack;
let scorer: ScorerServer;
const clients: ScorerClient[] = [];

function client(token?: string): ScorerClient {
  const c = new ScorerClient(
    scorer.address,
    grpc.credentials.createInsecure(),
    token === undefined ? {} : { interceptors: [bearerInterceptor(token)] },
  );
  clients.push(c);
  return c;
}

/** A client sending raw `authorization` metadata (malformed values). */
function rawClient(value: string): ScorerClient {
  const c = new ScorerClient(scorer.address, grpc.credentials.createInsecure(), {
    interceptors: [
      (options, next) =>
        new grpc.InterceptingCall(next(options), {
          start(md, listener, go) {
            md.set('authorization', value);
            go(md, listener);
          },
        }),
    ],
  });
  clients.push(c);
  return c;
}

function createJob(c: ScorerClient, jobId: string, token = ''): Promise<sadp.v1.Job> {
  return unary<sadp.v1.Job>((cb) =>
    c.createJob(
      pb.CreateJobRequest.create({
        spec: pb.JobSpec.create({
          jobId,
          datasetSize: SAMPLES,
          policy: pb.Policy.POLICY_SADP,
          pruneRatio: 0.5,
          epochs: 2,
          seed: 5,
          datasetUrl: stack.manifestUrl,
          token,
        }),
      }),
      cb,
    ),
  );
}
const describeJob = (c: ScorerClient, jobId: string): Promise<sadp.v1.Job> =>
  unary<sadp.v1.Job>((cb) => c.describeJob({ jobId }, cb));
const stats = (c: ScorerClient, jobId: string): Promise<sadp.v1.JobStats> =>
  unary<sadp.v1.JobStats>((cb) => c.getStats({ jobId, epoch: 0 }, cb));
const report = (c: ScorerClient, jobId: string): Promise<sadp.v1.ReportScoresResponse> =>
  unary<sadp.v1.ReportScoresResponse>((cb) =>
    c.reportScores({ jobId, epoch: 0, ids: [1, 2], scores: [0.5, 0.25], losses: [1, 2] }, cb),
  );
async function plan(c: ScorerClient, jobId: string): Promise<number> {
  let n = 0;
  for await (const chunk of c.getPlan({ jobId, epoch: 0 })) n += (chunk as sadp.v1.PlanChunk).ids.length;
  return n;
}

const JOB_A = 'auth-a';
const JOB_B = 'auth-b';
const TOKEN_A = newToken();
const TOKEN_B = newToken();

before(async () => {
  stack = await startStack();
  scorer = await createScorerServer({
    stateUrl: join(stack.dir, 'scorer-auth'),
    auth: { mode: 'token', adminToken: ADMIN, loaderToken: LOADER },
  });
  await createJob(client(ADMIN), JOB_A, TOKEN_A);
  await createJob(client(ADMIN), JOB_B, TOKEN_B);
});
after(async () => {
  for (const c of clients) c.close();
  await scorer?.close(500);
  await stack?.close();
});

describe('admin role: CreateJob', () => {
  test('refused without a token, with a malformed one, with the loader token and with a job token', async () => {
    await rejectsWith(
      createJob(client(), 'auth-x'),
      S.UNAUTHENTICATED,
      /CreateJob requires 'authorization: Bearer/,
    );
    await rejectsWith(
      createJob(rawClient('Basic abc'), 'auth-x'),
      S.UNAUTHENTICATED,
      /malformed authorization/,
    );
    await rejectsWith(createJob(client(LOADER), 'auth-x'), S.PERMISSION_DENIED, /admin credential/);
    await rejectsWith(createJob(client(TOKEN_A), 'auth-x'), S.PERMISSION_DENIED, /admin credential/);
    await rejectsWith(createJob(client(newToken()), 'auth-x'), S.PERMISSION_DENIED, /admin credential/);
    assert.deepEqual(scorer.core.jobIds(), [JOB_A, JOB_B], 'no refused call created a job');
  });

  test('the admin token creates a job and reads every job', async () => {
    const job = await createJob(client(ADMIN), 'auth-c');
    assert.equal(job.spec?.jobId, 'auth-c');
    assert.equal((await describeJob(client(ADMIN), JOB_A)).spec?.jobId, JOB_A);
    await rejectsWith(describeJob(client(ADMIN), 'no-such-job'), S.NOT_FOUND);
  });
});

describe('job-scoped role: DescribeJob, GetPlan, ReportScores, GetStats', () => {
  test("a job's token works on its own job only, and an unknown job looks forbidden", async () => {
    const a = client(TOKEN_A);
    assert.equal((await describeJob(a, JOB_A)).spec?.jobId, JOB_A);
    assert.ok((await plan(a, JOB_A)) > 0);
    assert.equal((await report(a, JOB_A)).accepted, 2);
    assert.equal((await stats(a, JOB_A)).jobId, JOB_A);

    const before = scorer.core.describeJob(JOB_B).scoresReceived;
    await rejectsWith(describeJob(a, JOB_B), S.PERMISSION_DENIED, `not valid for job ${JOB_B}`);
    await rejectsWith(plan(a, JOB_B), S.PERMISSION_DENIED, `not valid for job ${JOB_B}`);
    await rejectsWith(report(a, JOB_B), S.PERMISSION_DENIED, `not valid for job ${JOB_B}`);
    await rejectsWith(stats(a, JOB_B), S.PERMISSION_DENIED, `not valid for job ${JOB_B}`);
    assert.equal(scorer.core.describeJob(JOB_B).scoresReceived, before, 'no score of the refused report');
    await rejectsWith(describeJob(a, 'no-such-job'), S.PERMISSION_DENIED, 'not valid for job no-such-job');
  });

  test('no token or a malformed one is UNAUTHENTICATED on every per-job call', async () => {
    for (const c of [client(), rawClient('Bearer two words')]) {
      await rejectsWith(describeJob(c, JOB_A), S.UNAUTHENTICATED);
      await rejectsWith(plan(c, JOB_A), S.UNAUTHENTICATED);
      await rejectsWith(report(c, JOB_A), S.UNAUTHENTICATED);
      await rejectsWith(stats(c, JOB_A), S.UNAUTHENTICATED);
    }
  });

  test('the loader token reads and reports for every job, and tokens are never echoed', async () => {
    const l = client(LOADER);
    for (const jobId of [JOB_A, JOB_B]) {
      const job = await describeJob(l, jobId);
      assert.equal(job.spec?.token, '', 'the token is never returned');
      assert.ok((await plan(l, jobId)) > 0);
      assert.equal((await report(l, jobId)).accepted, 2);
    }
    const err = await rejectsWith(describeJob(client(TOKEN_A), JOB_B), S.PERMISSION_DENIED);
    for (const t of [ADMIN, LOADER, TOKEN_A, TOKEN_B]) assert.equal(err.details.includes(t), false);
  });
});

describe('the loader at an access-controlled scorer', () => {
  test('with the loader token it serves an epoch; without it the trainer gets UNAUTHENTICATED', async () => {
    const good = await stack.startLoader({
      scorerAddress: scorer.address,
      scorerToken: LOADER,
      auth: 'token',
    });
    const bad = await stack.startLoader({ scorerAddress: scorer.address, auth: 'token' });
    const base = { jobId: JOB_A, epoch: 0, rank: 0, world: 1, batchSize: 32, token: TOKEN_A };
    const ok = await runRank(connectLoader(good.address), stack.dataset, base);
    assert.equal(ok.code, S.OK, ok.details);
    assert.ok(ok.batches.length > 0);
    const refused = await runRank(connectLoader(bad.address), stack.dataset, base);
    assert.equal(refused.code, S.UNAUTHENTICATED, refused.details);
    assert.equal(refused.batches.length, 0);
  });

  test("a loader with auth 'none' refuses a job created with a token instead of skipping the check", async () => {
    const loader = await stack.startLoader({ scorerAddress: scorer.address, scorerToken: LOADER });
    const r = await runRank(connectLoader(loader.address), stack.dataset, {
      jobId: JOB_B,
      epoch: 0,
      rank: 0,
      world: 1,
      batchSize: 32,
    });
    assert.equal(r.code, S.FAILED_PRECONDITION, r.details);
    assert.match(r.details, /SADP_AUTH_DISABLED: job auth-b was created with a token/);
    assert.equal(r.batches.length, 0);
  });
});

describe('configurations that would leave a token unchecked', () => {
  test("tokens with auth 'none', and auth 'token' without an admin token, refuse to start", async () => {
    await assert.rejects(
      createScorerServer({ stateUrl: join(stack.dir, 'x1'), auth: { mode: 'none', adminToken: ADMIN } }),
      (err: unknown) => isSadpError(err, 'SADP_AUTH_DISABLED'),
    );
    await assert.rejects(
      createScorerServer({ stateUrl: join(stack.dir, 'x2'), auth: { mode: 'none', loaderToken: LOADER } }),
      (err: unknown) => isSadpError(err, 'SADP_AUTH_DISABLED'),
    );
    await assert.rejects(
      createScorerServer({ stateUrl: join(stack.dir, 'x3'), auth: { mode: 'token' } }),
      (err: unknown) => isSadpError(err, 'SADP_AUTH_CONFIG'),
    );
  });
});
