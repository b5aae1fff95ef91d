// The StreamEpoch protocol's edges over real sockets: every malformed or
// out-of-range request gets its own status and a message naming the field,
// per-job bearer tokens, DescribeEpoch, and a storage outage that ends the
// stream with UNAVAILABLE naming the object (and a resume once it is back).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { pb, type LoaderClient, type sadp } from '../../../proto/index.js';
import { s3OptionsForEmbedded } from '../../../storage/index.js';
import { startFaultProxy } from '../../helpers/s3-fault-proxy.js';
import {
  SAMPLES,
  connectLoader,
  getPlan,
  newToken,
  runRank,
  unary,
  type RankOptions,
  useStack,
} from './helpers.js';

const stack = useStack();

const S = grpc.status;

function describe(
  client: LoaderClient,
  req: sadp.v1.DescribeEpochRequest.$Properties,
  token?: string,
): Promise<sadp.v1.EpochInfo> {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return unary<sadp.v1.EpochInfo>((cb) => client.describeEpoch(pb.DescribeEpochRequest.create(req), md, cb));
}

async function rejects(p: Promise<unknown>, code: grpc.status, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `expected ${S[code]}, got ${S[err.code]}: ${err.details}`);
    assert.match(err.details, pattern);
    return true;
  });
}

test('bad requests get the right status and a message naming what is wrong', async () => {
  const jobId = await stack.createJob({ epochs: 2, pruneRatio: 0.5 });
  const loader = await stack.startLoader();
  const client = connectLoader(loader.address);
  try {
    const base: RankOptions = { jobId, epoch: 0, rank: 0, world: 2, batchSize: 8 };
    const info = await describe(client, { jobId, epoch: 0, worldSize: 2, batchSize: 8 });
    const selected = new Set((await getPlan(stack.scorerClient, jobId, 0)).ids);
    const unselected = [...Array(SAMPLES).keys()].find((id) => !selected.has(id)) as number;
    const openAgain = { open: { jobId, epoch: 0, rank: 0, worldSize: 2, batchSize: 8 } };
    const cases: Array<[string, RankOptions, grpc.status, RegExp]> = [
      ['rank >= world', { ...base, rank: 2 }, S.INVALID_ARGUMENT, /rank 2 is out of range for world_size 2/],
      ['world 0', { ...base, world: 0 }, S.INVALID_ARGUMENT, /world_size must be >= 1/],
      ['batch 0', { ...base, batchSize: 0 }, S.INVALID_ARGUMENT, /batch_size must be in \[1, 65536\], got 0/],
      ['batch too big', { ...base, batchSize: 65_537 }, S.INVALID_ARGUMENT, /got 65537/],
      ['no job id', { ...base, jobId: '' }, S.INVALID_ARGUMENT, /job_id is required/],
      ['unknown job', { ...base, jobId: 'no-such-job' }, S.NOT_FOUND, /no-such-job/],
      ['epoch >= K', { ...base, epoch: 2 }, S.OUT_OF_RANGE, /2 epochs .*epoch 2 does not exist/],
      [
        'cursor > steps',
        { ...base, cursor: 1000 },
        S.OUT_OF_RANGE,
        /cursor 1000 is beyond the \d+ batches of rank 0/,
      ],
      [
        'ack first',
        { ...base, rawFirst: { ack: { index: 0 } } },
        S.FAILED_PRECONDITION,
        /first message of a stream must be OpenEpoch, got ack/,
      ],
      [
        'open twice',
        { ...base, after: [openAgain] },
        S.FAILED_PRECONDITION,
        /OpenEpoch may only be the first/,
      ],
      [
        'ack before send',
        { ...base, noAck: true, after: [{ ack: { index: 7 } }] },
        S.FAILED_PRECONDITION,
        /ack for batch 7 of rank 0 .*not sent yet/,
      ],
      [
        'ack past the end',
        { ...base, noAck: true, after: [{ ack: { index: 5000 } }] },
        S.OUT_OF_RANGE,
        new RegExp(`ack for batch 5000 .*the rank has ${info.steps} batches`),
      ],
      [
        'pruned id',
        { ...base, ackOverride: (b) => ({ index: b.index, ids: [unselected], scores: [1] }) },
        S.INVALID_ARGUMENT,
        new RegExp(`ids\\[0\\] = ${unselected} is not selected in this epoch's plan`),
      ],
      [
        "another rank's id",
        {
          ...base,
          // The last id of the shuffled order is deep in rank 1's stream.
          ackOverride: (b) => ({
            index: b.index,
            ids: [b.ids[0] as number, lastOfRank1(selected, b.ids)],
            scores: [1, 1],
          }),
        },
        S.INVALID_ARGUMENT,
        /ids\[1\] = \d+ was not delivered to rank 0 in batches 0\.\.0/,
      ],
      [
        'NaN score',
        { ...base, ackOverride: (b) => ({ index: b.index, ids: b.ids.slice(0, 2), scores: [1, NaN] }) },
        S.INVALID_ARGUMENT,
        /scores\[1\] = NaN \(id \d+\) must be a finite number >= 0/,
      ],
      [
        'negative loss',
        { ...base, ackOverride: (b) => ({ index: b.index, ids: b.ids.slice(0, 2), losses: [-1, 2] }) },
        S.INVALID_ARGUMENT,
        /losses\[0\] = -1/,
      ],
      [
        'length mismatch',
        { ...base, ackOverride: (b) => ({ index: b.index, ids: b.ids.slice(0, 3), scores: [1, 2] }) },
        S.INVALID_ARGUMENT,
        /2 scores for 3 ids/,
      ],
      [
        'ids without values',
        { ...base, ackOverride: (b) => ({ index: b.index, ids: b.ids.slice(0, 3) }) },
        S.INVALID_ARGUMENT,
        /3 ids but neither scores nor losses/,
      ],
    ];
    for (const [name, options, code, pattern] of cases) {
      const r = await runRank(client, stack.dataset, options);
      assert.equal(r.code, code, `${name}: expected ${S[code]}, got ${S[r.code]}: ${r.details}`);
      assert.match(r.details, pattern, name);
    }

    // DescribeEpoch: the same shape a stream announces, and the same checks.
    const streamed = await runRank(client, stack.dataset, { ...base, stopAfter: 1 });
    assert.deepEqual(pb.EpochInfo.toObject(info), pb.EpochInfo.toObject(streamed.info as sadp.v1.EpochInfo));
    await rejects(
      describe(client, { jobId, epoch: 0, worldSize: 0, batchSize: 8 }),
      S.INVALID_ARGUMENT,
      /world_size/,
    );
    await rejects(
      describe(client, { jobId: 'nope', epoch: 0, worldSize: 1, batchSize: 8 }),
      S.NOT_FOUND,
      /nope/,
    );
    await rejects(
      describe(client, { jobId, epoch: 9, worldSize: 1, batchSize: 8 }),
      S.OUT_OF_RANGE,
      /epoch 9/,
    );
  } finally {
    client.close();
  }
});

/** An id selected this epoch that rank 0 cannot have received in its first batch. */
function lastOfRank1(selected: Set<number>, firstBatch: number[]): number {
  const mine = new Set(firstBatch);
  // Any selected id outside rank 0's first batch is either rank 1's or in a
  // later batch of rank 0; both must be rejected for an ack of batch 0.
  return [...selected].find((id) => !mine.has(id)) as number;
}

test('token auth: a job only opens with its own bearer token', async () => {
  const tokenA = newToken();
  const tokenB = newToken();
  const jobA = await stack.createJob({ epochs: 1, token: tokenA });
  await stack.createJob({ epochs: 1, token: tokenB });
  const open = await stack.createJob({ epochs: 1 });
  const loader = await stack.startLoader({ auth: 'token' });
  const client = connectLoader(loader.address);
  try {
    const base: RankOptions = { jobId: jobA, epoch: 0, rank: 0, world: 1, batchSize: 32, stopAfter: 1 };
    const ok = await runRank(client, stack.dataset, { ...base, token: tokenA });
    assert.ok(ok.info, `the right token opens the stream: ${ok.details}`);
    assert.equal(ok.batches.length, 1);
    const cases: Array<[string, RankOptions, grpc.status, RegExp]> = [
      ['missing', { ...base }, S.UNAUTHENTICATED, /requires 'authorization: Bearer <token>'/],
      ['malformed', { ...base, token: 'two words' }, S.UNAUTHENTICATED, /malformed authorization/],
      ['wrong', { ...base, token: newToken() }, S.PERMISSION_DENIED, new RegExp(`not valid for job ${jobA}`)],
      [
        "another job's",
        { ...base, token: tokenB },
        S.PERMISSION_DENIED,
        new RegExp(`not valid for job ${jobA}`),
      ],
      ['job without a token', { ...base, jobId: open, token: tokenA }, S.PERMISSION_DENIED, /has no token/],
    ];
    for (const [name, options, code, pattern] of cases) {
      const r = await runRank(client, stack.dataset, options);
      assert.equal(r.code, code, `${name}: expected ${S[code]}, got ${S[r.code]}: ${r.details}`);
      assert.match(r.details, pattern, name);
      assert.equal(r.info, undefined, `${name}: nothing was sent`);
      assert.equal(r.details.includes(tokenA) || r.details.includes(tokenB), false, 'tokens never echoed');
    }
    const req = { jobId: jobA, epoch: 0, worldSize: 1, batchSize: 32 };
    await rejects(describe(client, req), S.UNAUTHENTICATED, /requires/);
    await rejects(describe(client, req, tokenB), S.PERMISSION_DENIED, /not valid/);
    assert.equal((await describe(client, req, tokenA)).jobId, jobA);
  } finally {
    client.close();
  }
});

test('a storage outage ends the stream with UNAVAILABLE naming the object; the rank resumes once it is back', async () => {
  const proxy = await startFaultProxy({ target: stack.s3.endpoint });
  const jobId = await stack.createJob({ epochs: 1, policy: pb.Policy.POLICY_RANDOM, pruneRatio: 0.5 });
  const loader = await stack.startLoader({
    s3: { ...s3OptionsForEmbedded(stack.s3), endpoint: proxy.endpoint, maxAttempts: 1 },
    readerOptions: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
  });
  const client = connectLoader(loader.address);
  try {
    const base: RankOptions = { jobId, epoch: 0, rank: 0, world: 1, batchSize: 64 };
    // The job and plan load while storage is healthy, then every GET fails.
    const info = await describe(client, { jobId, epoch: 0, worldSize: 1, batchSize: 64 });
    proxy.setRules([{ fault: 'internal-error' }]);
    const failed = await runRank(client, stack.dataset, base);
    assert.equal(failed.code, S.UNAVAILABLE, failed.details);
    assert.match(failed.details, /train-\d{6}\.tar/);
    assert.equal(failed.batches.length, 0);
    proxy.setRules([]);
    const resumed = await runRank(client, stack.dataset, base);
    assert.equal(resumed.code, 0, resumed.details);
    assert.equal(resumed.batches.length, info.steps);
    assert.equal(loader.stats().inflightBytes, 0);
  } finally {
    client.close();
    await proxy.close();
  }
});
