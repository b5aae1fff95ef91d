// The scorer client (createScorerClient) against a real scorer on port 0, and
// against a stand-in server for the faults a real scorer cannot be made to
// produce (a corrupt plan stream, transient UNAVAILABLE answers).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pb, ScorerService, type sadp } from '../../../proto/index.js';
import { createScorerClient, createScorerServer, planDigest } from '../../../scorer/index.js';
import { connect, fetchPlan, tempDir } from '../service/helpers.js';
import { makeCerts, read } from '../../helpers/certs.js';

test('createJob, describeJob, getPlan, reportScores and getStats round-trip through a real scorer', async (t) => {
  const dir = await tempDir(t);
  const server = await createScorerServer({ stateUrl: dir });
  t.after(() => server.close(500));
  const client = createScorerClient({ address: server.address });
  t.after(() => client.close());

  const job = await client.createJob({
    jobId: 'client-job',
    datasetSize: 3_000,
    policy: 'random',
    pruneRatio: 0.5,
    epochs: 2,
    seed: 2n ** 64n - 1n,
  });
  assert.equal(job.spec?.policy, pb.Policy.POLICY_RANDOM);
  assert.equal((await client.describeJob('client-job')).spec?.datasetSize, 3_000);

  const plan = await client.getPlan('client-job', 0, { chunkSize: 500 });
  const raw = await fetchPlan(connect(t, server.address), 'client-job', 0, 500);
  assert.deepEqual(plan.ids, raw.ids);
  assert.deepEqual(plan.weights, raw.weights);
  assert.equal(plan.digest, raw.digest);
  assert.equal(plan.chunks, raw.chunks.length);
  assert.equal(planDigest(plan.ids, plan.weights), plan.digest);

  const accepted = await client.reportScores({
    jobId: 'client-job',
    epoch: 0,
    ids: [1, 2],
    scores: [0.5, 1],
    losses: [],
  });
  assert.equal(accepted, 2);
  assert.equal((await client.getStats('client-job', 0)).selectedCount, plan.ids.length);

  await assert.rejects(
    client.describeJob('nope'),
    (err: { code?: string; status?: number; message?: string }) => {
      assert.equal(err.code, 'SADP_JOB_NOT_FOUND');
      assert.equal(err.status, grpc.status.NOT_FOUND);
      assert.match(err.message ?? '', /describe job nope/);
      return true;
    },
  );
});

/** A stand-in scorer whose handlers the test writes. */
async function fakeScorer(
  t: { after(fn: () => unknown): void },
  impl: Partial<grpc.UntypedServiceImplementation>,
): Promise<string> {
  const server = new grpc.Server();
  const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<unknown>): void =>
    cb({ code: grpc.status.UNIMPLEMENTED, details: 'not here' });
  server.addService(ScorerService, {
    createJob: unimplemented,
    describeJob: unimplemented,
    reportScores: unimplemented,
    getStats: unimplemented,
    getPlan: (call: grpc.ServerWritableStream<unknown, unknown>) =>
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'not here' }),
    ...impl,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  t.after(() => server.forceShutdown());
  return `127.0.0.1:${port}`;
}

test('a plan whose chunks do not hash to the announced digest is SADP_PLAN_CORRUPT and not retried', async (t) => {
  let calls = 0;
  const address = await fakeScorer(t, {
    getPlan: (call: grpc.ServerWritableStream<sadp.v1.GetPlanRequest, sadp.v1.PlanChunk>) => {
      calls++;
      call.write(
        pb.PlanChunk.create({
          epoch: 0,
          datasetSize: 10,
          selectedCount: 2,
          digest: 'f'.repeat(64),
          offset: 0,
          ids: [1, 4],
          weights: [1, 1],
          last: true,
        }),
      );
      call.end();
    },
  });
  const client = createScorerClient({ address, retry: { baseDelayMs: 1, maxDelayMs: 1 } });
  t.after(() => client.close());
  await assert.rejects(
    client.getPlan('j', 0),
    (err: { code?: string; status?: number; message?: string }) => {
      assert.equal(err.code, 'SADP_PLAN_CORRUPT');
      assert.equal(err.status, grpc.status.DATA_LOSS);
      assert.match(
        err.message ?? '',
        /plan of job j epoch 0: digest [0-9a-f]+ of the reassembled plan != announced f+/,
      );
      return true;
    },
  );
  assert.equal(calls, 1);
});

test('transient statuses are retried under the policy; exhausted retries are SADP_SCORER_UNAVAILABLE', async (t) => {
  let calls = 0;
  const address = await fakeScorer(t, {
    describeJob: (
      call: grpc.ServerUnaryCall<sadp.v1.DescribeJobRequest, sadp.v1.Job>,
      cb: grpc.sendUnaryData<sadp.v1.Job>,
    ) => {
      calls++;
      if (call.request.jobId === 'flaky' && calls >= 3) cb(null, pb.Job.create({ plannedEpochs: 1 }));
      else cb({ code: grpc.status.UNAVAILABLE, details: 'overloaded' });
    },
  });
  const client = createScorerClient({ address, retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 1 } });
  t.after(() => client.close());
  assert.equal((await client.describeJob('flaky')).plannedEpochs, 1);
  assert.equal(calls, 3);
  calls = 0;
  await assert.rejects(client.describeJob('down'), {
    code: 'SADP_SCORER_UNAVAILABLE',
    status: grpc.status.UNAVAILABLE,
  });
  assert.equal(calls, 4);
});

test('an aborted call rejects with SADP_CANCELLED naming the request', async (t) => {
  const address = await fakeScorer(t, {
    describeJob: () => undefined, // never answers
  });
  const client = createScorerClient({ address });
  t.after(() => client.close());
  const controller = new AbortController();
  const pending = client.describeJob('slow', { signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, { code: 'SADP_CANCELLED', message: 'describe job slow cancelled' });
});

test('tls: a client with the CA and its certificate reaches a mutual-TLS scorer; one without a certificate cannot', async (t) => {
  const dir = await tempDir(t);
  const certs = makeCerts(dir);
  const server = await createScorerServer({
    host: '127.0.0.1',
    stateUrl: join(dir, 'state'),
    tls: {
      cert: read(certs.serverCert),
      key: read(certs.serverKey),
      ca: read(certs.caCert),
      requireClientCert: true,
    },
  });
  t.after(() => server.close(500));
  const retry = { attempts: 1 };
  const noCert = createScorerClient({ address: server.address, tls: { ca: read(certs.caCert) }, retry });
  t.after(() => noCert.close());
  await assert.rejects(noCert.describeJob('x'), { code: 'SADP_SCORER_UNAVAILABLE' });
  const plain = createScorerClient({ address: server.address, retry });
  t.after(() => plain.close());
  await assert.rejects(plain.describeJob('x'), { code: 'SADP_SCORER_UNAVAILABLE' });
  const mtls = createScorerClient({
    address: server.address,
    tls: { ca: read(certs.caCert), cert: read(certs.clientCert), key: read(certs.clientKey) },
  });
  t.after(() => mtls.close());
  await mtls.createJob({
    jobId: 'tls-job',
    datasetSize: 10,
    policy: 'full',
    pruneRatio: 0,
    epochs: 1,
    seed: 1n,
  });
  assert.equal((await mtls.describeJob('tls-job')).spec?.datasetSize, 10);
});
