// The Scorer gRPC service on a real loopback socket over a local-directory
// state store: job lifecycle, report validation (a rejected report changes
// nothing), plans (chunked, computed once, equal to the math library's),
// stats, health and reflection.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createLogger } from '../../../common/logger.js';
import { packageRoot } from '../../../common/paths.js';
import { pb, SCORER_SERVICE_NAME, type ScorerClient, type sadp } from '../../../proto/index.js';
import { createScorerServer, planEpoch, type ScorerServerOptions } from '../../../scorer/index.js';
import { healthStatus } from '../../helpers/grpc.js';
import {
  ExpectedScores,
  call,
  connect,
  digestOf,
  fetchPlan,
  makeReport,
  rejectsWith,
  tempDir,
} from './helpers.js';
import { mulberry32 } from '../../helpers/random.js';

type Spec = sadp.v1.JobSpec.$Properties;

async function startScorer(t: TestContext, options: Partial<ScorerServerOptions> = {}) {
  const dir = await tempDir(t);
  const server = await createScorerServer({ stateUrl: join(dir, 'state'), ...options });
  t.after(() => server.close(1_000));
  const client = connect(t, server.address);
  return { server, client, dir };
}

function spec(jobId: string, overrides: Partial<Spec> = {}): Spec {
  return {
    jobId,
    datasetSize: 10_000,
    policy: pb.Policy.POLICY_SADP,
    pruneRatio: 0.5,
    epochs: 4,
    seed: 42,
    datasetUrl: 's3://data/cifar/manifest.json',
    ...overrides,
  };
}

const create = (client: ScorerClient, s: Spec): Promise<sadp.v1.Job> =>
  call(client, 'createJob', { spec: pb.JobSpec.create(s) });
const describe = (client: ScorerClient, jobId: string): Promise<sadp.v1.Job> =>
  call(client, 'describeJob', { jobId });
const report = (client: ScorerClient, r: sadp.v1.ReportScoresRequest.$Properties) =>
  call(client, 'reportScores', r);
const stats = (client: ScorerClient, jobId: string, epoch: number) =>
  call(client, 'getStats', { jobId, epoch });

test('CreateJob applies defaults, is idempotent, rejects conflicts and bad fields; DescribeJob', async (t) => {
  const { server, client } = await startScorer(t);
  const job = await create(client, spec('cifar-1', { token: 's3cret' }));
  assert.equal(job.spec?.jobId, 'cifar-1');
  // Table II for r = 0.5: beta 0.3, r_max 0.7; unset fields stay unset in the spec.
  assert.equal(job.maxPruneRatio, 0.7);
  assert.equal(job.smoothing, 0.3);
  assert.equal(job.spec?.maxPruneRatio, null);
  assert.equal(job.spec?.token, '', 'the token is never returned');
  assert.equal(job.tokenSha256, createHash('sha256').update('s3cret').digest('hex'));
  assert.equal(job.plannedEpochs, 0);
  assert.equal(server.core.verifyToken('cifar-1', 's3cret'), true);
  assert.equal(server.core.verifyToken('cifar-1', 's3creT'), false);

  // Same spec again, and with the defaults spelled out: the same job.
  const again = await create(
    client,
    spec('cifar-1', { token: 's3cret', maxPruneRatio: 0.7, smoothing: 0.3 }),
  );
  assert.equal(again.tokenSha256, job.tokenSha256);
  await rejectsWith(
    create(client, spec('cifar-1', { token: 's3cret', pruneRatio: 0.3 })),
    grpc.status.ALREADY_EXISTS,
    'prune_ratio',
  );
  await rejectsWith(create(client, spec('cifar-1', { token: 'other' })), grpc.status.ALREADY_EXISTS, 'token');
  await rejectsWith(
    create(client, spec('cifar-1', { token: 's3cret', seed: 43 })),
    grpc.status.ALREADY_EXISTS,
    'seed',
  );

  // A u64 seed beyond 2^53 survives exactly.
  const big = await create(
    client,
    spec('big-seed', { seed: { low: 5, high: 0x80000000, unsigned: true } as unknown as number }),
  );
  const seed = big.spec!.seed as unknown as { low: number; high: number };
  assert.equal((BigInt(seed.high >>> 0) << 32n) | BigInt(seed.low >>> 0), (1n << 63n) + 5n);

  const described = await describe(client, 'cifar-1');
  assert.equal(described.spec?.datasetSize, 10_000);
  assert.equal(described.spec?.policy, pb.Policy.POLICY_SADP);
  assert.equal(described.spec?.datasetUrl, 's3://data/cifar/manifest.json');
  await rejectsWith(describe(client, 'nope'), grpc.status.NOT_FOUND, 'nope');

  const bad: [Partial<Spec>, string][] = [
    [{ jobId: 'a/b' }, 'job_id'],
    [{ jobId: '..' }, 'job_id'],
    [{ jobId: 'x'.repeat(129) }, 'job_id'],
    [{ datasetSize: 0 }, 'dataset_size'],
    [{ policy: pb.Policy.POLICY_UNSPECIFIED }, 'policy'],
    [{ pruneRatio: 1 }, 'prune_ratio'],
    [{ pruneRatio: -0.1 }, 'prune_ratio'],
    [{ pruneRatio: 0.5, maxPruneRatio: 0.4 }, 'max_prune_ratio'],
    [{ maxPruneRatio: 1.01 }, 'max_prune_ratio'],
    [{ smoothing: 1.5 }, 'smoothing'],
    [{ smoothing: -0.5 }, 'smoothing'],
    [{ epochs: 0 }, 'epochs'],
  ];
  for (const [override, field] of bad) {
    await rejectsWith(create(client, spec('fresh', override)), grpc.status.INVALID_ARGUMENT, field);
  }
  await rejectsWith(describe(client, 'fresh'), grpc.status.NOT_FOUND);
});

test('reports, plan and stats: the plan equals the math library’s on the same scores', async (t) => {
  const { client } = await startScorer(t);
  await create(client, spec('j', { datasetSize: 10_000 }));
  const expected = new ExpectedScores(10_000);
  const next = mulberry32(1);
  // Three quarters of the examples scored, in reports of 2,500.
  for (let from = 0; from < 7_500; from += 2_500) {
    const r = makeReport('j', from, from + 2_500, next);
    const res = await report(client, r);
    assert.equal(res.accepted, 2_500);
    expected.apply(r);
  }
  // A report with scores only, repeating an id: the last entry wins.
  const dup = { jobId: 'j', epoch: 0, ids: [7, 7, 8_000], scores: [1, 2, 3] };
  await report(client, dup);
  expected.apply(dup);

  await rejectsWith(stats(client, 'j', 0), grpc.status.FAILED_PRECONDITION, 'epoch 0');
  const plan = await fetchPlan(client, 'j', 0);
  const reference = planEpoch({
    policy: 'sadp',
    datasetSize: 10_000,
    pruneRatio: 0.5,
    maxPruneRatio: 0.7,
    smoothing: 0.3,
    epochs: 4,
    epoch: 0,
    seed: 42n,
    scores: expected.scores,
    losses: expected.losses,
    scored: expected.scoredByScore,
  });
  assert.equal(plan.digest, reference.digest);
  assert.deepEqual(plan.ids, reference.ids);
  assert.equal(digestOf(plan.ids, plan.weights), plan.digest);
  const first = plan.chunks[0]!;
  assert.equal(first.selectedCount, reference.ids.length);
  assert.equal(first.datasetSize, 10_000);
  assert.equal(first.expectedSize, reference.expectedSize);

  const s = await stats(client, 'j', 0);
  assert.equal(s.selectedCount, reference.ids.length);
  assert.equal(s.pruneRatio, reference.pruneRatio);
  assert.equal(s.scoredFraction, 7_501 / 10_000);
  assert.equal(Number(s.scoresReceived), expected.received);
  assert.equal(s.minProbability, reference.stats.minProbability);
  assert.equal(s.maxWeight, reference.stats.maxWeight);
  assert.deepEqual(s.probabilityHistogram, Array.from(reference.stats.histogram));
  assert.ok(s.computeMs > 0);

  // Later reports do not change a plan once drawn.
  await report(client, makeReport('j', 7_500, 10_000, next));
  assert.equal((await fetchPlan(client, 'j', 0)).digest, plan.digest);
  const job = await describe(client, 'j');
  assert.equal(job.plannedEpochs, 1);
  assert.equal(job.scoredExamples, 10_000);

  await rejectsWith(fetchPlan(client, 'j', 4), grpc.status.OUT_OF_RANGE, 'epoch 4');
  await rejectsWith(stats(client, 'j', 4), grpc.status.OUT_OF_RANGE);
  await rejectsWith(fetchPlan(client, 'j', 0, 262_145), grpc.status.INVALID_ARGUMENT, 'chunk_size');
});

test('a bad report is rejected naming its first bad entry and changes nothing', async (t) => {
  const { client } = await startScorer(t);
  const n = 5_000;
  await create(client, spec('control', { datasetSize: n, policy: pb.Policy.POLICY_SADP_LOSS }));
  await create(client, spec('probe', { datasetSize: n, policy: pb.Policy.POLICY_SADP_LOSS }));
  const next = mulberry32(2);
  const good = makeReport('', 0, 2_000, next);
  await report(client, { ...good, jobId: 'control' });
  await report(client, { ...good, jobId: 'probe' });

  // Each bad report starts with valid entries for ids nobody scored yet, so
  // applying any part of it would change the plan.
  const ids = [3_000, 3_001, 3_002, 3_003];
  const ok = [9, 9, 9, 9];
  const cases: [string, sadp.v1.ReportScoresRequest.$Properties, RegExp[]][] = [
    ['no ids', { ids: [], scores: [], losses: [] }, [/no ids/]],
    [
      'too many ids',
      { ids: new Array<number>(1_048_577).fill(1), losses: [], scores: new Array<number>(1_048_577).fill(1) },
      [/1048577/, /1048576/],
    ],
    [
      'id out of range',
      { ids: [...ids, n, 4], scores: [...ok, 1, 1], losses: [...ok, 1, 1] },
      [/entry 4\b/, new RegExp(`id ${n}\\b`)],
    ],
    ['scores length', { ids, scores: [1, 2, 3], losses: ok }, [/4 ids but 3 scores/]],
    ['losses length', { ids, scores: ok, losses: [1, 2, 3, 4, 5] }, [/4 ids but 5 losses/]],
    ['neither', { ids, scores: [], losses: [] }, [/neither scores nor losses/]],
    ['NaN score', { ids, scores: [1, 2, NaN, -1], losses: ok }, [/entry 2 \(id 3002\)/, /score NaN/]],
    [
      'infinite score',
      { ids, scores: [1, Infinity, 1, 1], losses: ok },
      [/entry 1 \(id 3001\)/, /score Infinity/],
    ],
    ['negative score', { ids, scores: [1, 1, 1, -0.5] }, [/entry 3 \(id 3003\)/, /score -0\.5/]],
    ['NaN loss', { ids, losses: [NaN, 1, 1, 1] }, [/entry 0 \(id 3000\)/, /loss NaN/]],
    ['negative loss', { ids, scores: ok, losses: [1, 1, -2, 1] }, [/entry 2 \(id 3002\)/, /loss -2/]],
    ['infinite loss', { ids, losses: [1, 1, 1, -Infinity] }, [/entry 3 \(id 3003\)/, /loss -Infinity/]],
  ];
  for (const [name, body, patterns] of cases) {
    await t.test(name, async () => {
      await rejectsWith(
        report(client, { jobId: 'probe', epoch: 0, ...body }),
        grpc.status.INVALID_ARGUMENT,
        ...patterns,
      );
    });
  }
  await rejectsWith(
    report(client, { jobId: 'ghost', ids: [1], scores: [1] }),
    grpc.status.NOT_FOUND,
    'ghost',
  );

  const [c, p] = await Promise.all([describe(client, 'control'), describe(client, 'probe')]);
  assert.equal(p.scoredExamples, c.scoredExamples);
  assert.equal(Number(p.scoresReceived), Number(c.scoresReceived));
  const [planC, planP] = await Promise.all([fetchPlan(client, 'control', 0), fetchPlan(client, 'probe', 0)]);
  assert.equal(planP.digest, planC.digest);
  // The control is not trivially equal to an untouched job: it has scores.
  assert.equal(c.scoredExamples, 2_000);
});

test('unknown jobs are NOT_FOUND on every method', async (t) => {
  const { client } = await startScorer(t);
  await rejectsWith(describe(client, 'missing'), grpc.status.NOT_FOUND);
  await rejectsWith(report(client, { jobId: 'missing', ids: [0], scores: [1] }), grpc.status.NOT_FOUND);
  await rejectsWith(fetchPlan(client, 'missing', 0), grpc.status.NOT_FOUND);
  await rejectsWith(stats(client, 'missing', 0), grpc.status.NOT_FOUND);
  await rejectsWith(describe(client, 'bad/id'), grpc.status.INVALID_ARGUMENT, 'job_id');
});

test('a 300,000-example plan streams in chunks that reassemble to its digest', async (t) => {
  const { client } = await startScorer(t);
  const n = 300_000;
  await create(client, spec('big', { datasetSize: n, pruneRatio: 0.3, epochs: 2 }));
  const next = mulberry32(3);
  const sends = [];
  for (let from = 0; from < n; from += 65_536)
    sends.push(report(client, makeReport('big', from, Math.min(n, from + 65_536), next, false)));
  await Promise.all(sends);

  const plan = await fetchPlan(client, 'big', 0);
  const count = plan.ids.length;
  assert.ok(count > 65_536 * 2, `selected ${count}`);
  assert.equal(plan.chunks.length, Math.ceil(count / 65_536));
  plan.chunks.forEach((c, i) => {
    assert.equal(c.digest, plan.digest);
    assert.equal(c.selectedCount, count);
    assert.equal(c.last, i === plan.chunks.length - 1);
    assert.equal(c.ids.length, c.weights.length);
  });
  assert.equal(digestOf(plan.ids, plan.weights), plan.digest);
  for (let i = 1; i < count; i++) assert.ok(plan.ids[i - 1]! < plan.ids[i]!, 'ids ascend');

  const small = await fetchPlan(client, 'big', 0, 10_000);
  assert.equal(small.chunks.length, Math.ceil(count / 10_000));
  assert.equal(digestOf(small.ids, small.weights), plan.digest);
});

function captureLogs() {
  const stream = new PassThrough();
  const lines: { msg: string; epoch?: number; jobId?: string }[] = [];
  stream.on('data', (buf: Buffer) => {
    for (const line of buf.toString().split('\n'))
      if (line) lines.push(JSON.parse(line) as (typeof lines)[number]);
  });
  return { logger: createLogger({ level: 'info', destination: stream }), lines };
}

test('concurrent GetPlan calls for one epoch share one computation', async (t) => {
  const { logger, lines: logged } = captureLogs();
  const { client } = await startScorer(t, { logger });
  await create(client, spec('c', { datasetSize: 200_000 }));
  await report(client, makeReport('c', 0, 65_536, mulberry32(4)));

  const plans = await Promise.all(Array.from({ length: 6 }, () => fetchPlan(client, 'c', 1)));
  for (const p of plans) assert.equal(p.digest, plans[0]!.digest);
  await new Promise((resolve) => setImmediate(resolve));
  const computed = logged.filter((l) => l.msg === 'plan computed' && l.jobId === 'c' && l.epoch === 1);
  assert.equal(computed.length, 1);
});

test(
  'a client cancelling a plan stream mid-way ends the stream loop; close needs no force',
  { timeout: 30_000 },
  async (t) => {
    const { logger, lines } = captureLogs();
    const { server, client } = await startScorer(t, { logger });
    await create(client, spec('cancel', { datasetSize: 300_000, policy: pb.Policy.POLICY_FULL }));
    // 1,000-entry chunks: the server fills grpc-js's buffer and waits for 'drain'.
    const stream = client.getPlan(pb.GetPlanRequest.create({ jobId: 'cancel', epoch: 0, chunkSize: 1_000 }));
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', () => {
        if (++received === 2) {
          stream.cancel();
          resolve();
        }
      });
      stream.on('error', (err: grpc.ServiceError) =>
        err.code === grpc.status.CANCELLED ? resolve() : reject(err),
      );
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await server.close(5_000);
    assert.equal(received < 300, true);
    assert.ok(!lines.some((l) => /grace period/.test(l.msg)), 'close did not have to force-cancel streams');
  },
);

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
}

test('health is SERVING and reflection lists sadp.v1.Scorer', async (t) => {
  const { server } = await startScorer(t);
  assert.equal(await healthStatus(server.address, SCORER_SERVICE_NAME), 'SERVING');
  assert.equal(await healthStatus(server.address, ''), 'SERVING');

  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [join(packageRoot, 'node_modules/@grpc/reflection/build/proto')],
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access
  const Reflection = (grpc.loadPackageDefinition(def) as any).grpc.reflection.v1
    .ServerReflection as typeof grpc.Client;
  const rc = new Reflection(server.address, grpc.credentials.createInsecure()) as grpc.Client & {
    serverReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
  };
  t.after(() => rc.close());
  const stream = rc.serverReflectionInfo();
  stream.write({ listServices: '*' });
  stream.end();
  const names: string[] = [];
  for await (const msg of stream as AsyncIterable<ReflectionResponse>)
    names.push(...(msg.listServicesResponse?.service.map((svc) => svc.name) ?? []));
  assert.ok(names.includes('sadp.v1.Scorer'), names.join(','));
});
