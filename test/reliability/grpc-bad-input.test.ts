// Bad input over gRPC and in configuration: oversized messages, fields out of
// range, unknown jobs, NaN / negative / infinite scores, ids out of range,
// cursors past the end, raw garbage bytes and malformed YAML. Each gets its
// status code, and nothing of a rejected request is applied: the scorer's
// durable state is compared with a model of the accepted requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { LoaderServer } from '../../loader/index.js';
import { pb, type LoaderClient, type sadp } from '../../proto/index.js';
import { StateStore } from '../../scorer/state/index.js';
import { openStore } from '../../storage/index.js';
import { runSadp } from '../helpers/processes.js';
import { SAMPLES, connectLoader, runRank, startStack, type Stack } from '../loader/service/helpers.js';
import { call, rejectsWith } from '../scorer/service/helpers.js';
import {
  ReportModel,
  fuzzBadAcks,
  fuzzGarbageRequests,
  fuzzOpenEpoch,
  fuzzReportScores,
} from './grpc-fuzz.js';
import { readDurableScores, sleep } from './stack.js';

const S = grpc.status;
let stack: Stack;
let loader: LoaderServer;
let loaderClient: LoaderClient;

before(async () => {
  stack = await startStack();
  loader = await stack.startLoader({ scoreFlushMs: 20 });
  loaderClient = connectLoader(loader.address);
});
after(async () => {
  loaderClient?.close();
  await stack?.close();
});

const stateStore = () => openStore(join(stack.dir, 'scorer'));

describe('scorer', () => {
  test('ReportScores fuzz: accepted exactly when valid, rejected with INVALID_ARGUMENT otherwise; the state equals the model', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    const stats = await fuzzReportScores(stack.scorerRpc, stateStore(), jobId, SAMPLES, {
      numRuns: 300,
      seed: 201,
    });
    assert.ok(
      (stats.statuses.OK ?? 0) > 20 && (stats.statuses.INVALID_ARGUMENT ?? 0) > 20,
      JSON.stringify(stats),
    );
  });

  test('raw garbage bytes as requests: no crash, no change, a status from the closed set', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    const before = await call(stack.scorerRpc, 'describeJob', { jobId });
    const stats = await fuzzGarbageRequests(stack.scorer.address, { numRuns: 150, seed: 202 });
    assert.equal(stats.inputs, 150);
    const after = await call(stack.scorerRpc, 'describeJob', { jobId });
    assert.equal(Number(after.scoresReceived), Number(before.scoresReceived));
    assert.equal(after.scoredExamples, 0);
  });

  test('a report over the 16 MiB receive limit is RESOURCE_EXHAUSTED and applies nothing', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    const n = 1_100_000; // ids + scores + losses: ~19 MB on the wire
    const ids = new Array<number>(n);
    const values = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      ids[i] = i % SAMPLES;
      values[i] = 1;
    }
    await rejectsWith(
      call(stack.scorerRpc, 'reportScores', { jobId, epoch: 0, ids, scores: values, losses: values }),
      S.RESOURCE_EXHAUSTED,
    );
    const job = await call(stack.scorerRpc, 'describeJob', { jobId });
    assert.equal(Number(job.scoresReceived), 0);
    const durable = await readDurableScores(stateStore(), jobId);
    assert.equal(
      durable.flags.reduce((a, b) => a + b, 0),
      0,
      'nothing durable',
    );
  });

  test('CreateJob with a bad field is INVALID_ARGUMENT naming it, and creates nothing', async () => {
    const good = {
      datasetSize: SAMPLES,
      policy: pb.Policy.POLICY_SADP,
      pruneRatio: 0.5,
      epochs: 2,
      datasetUrl: stack.manifestUrl,
    };
    const cases: Array<[string, sadp.v1.JobSpec.$Properties, RegExp]> = [
      ['prune ratio 1', { ...good, jobId: 'bad-r', pruneRatio: 1 }, /prune/i],
      ['prune ratio NaN', { ...good, jobId: 'bad-nan', pruneRatio: NaN }, /prune/i],
      ['negative prune ratio', { ...good, jobId: 'bad-neg', pruneRatio: -0.1 }, /prune/i],
      ['zero epochs', { ...good, jobId: 'bad-k', epochs: 0 }, /epochs/i],
      ['empty dataset', { ...good, jobId: 'bad-n', datasetSize: 0 }, /dataset/i],
      ['unknown policy', { ...good, jobId: 'bad-p', policy: 99 as sadp.v1.Policy }, /polic/i],
      ['smoothing > 1', { ...good, jobId: 'bad-beta', smoothing: 1.5 }, /smoothing|beta/i],
      ['job id with a slash', { ...good, jobId: '../escape' }, /job/i],
      ['job id too long', { ...good, jobId: 'x'.repeat(129) }, /job/i],
    ];
    for (const [name, spec, pattern] of cases) {
      const err = await rejectsWith(call(stack.scorerRpc, 'createJob', { spec }), S.INVALID_ARGUMENT);
      assert.match(err.details, pattern, name);
      // No such job: NOT_FOUND, or INVALID_ARGUMENT for an id no job can have.
      await assert.rejects(
        call(stack.scorerRpc, 'describeJob', { jobId: spec.jobId ?? '' }),
        (e: grpc.ServiceError) => [S.NOT_FOUND, S.INVALID_ARGUMENT].includes(e.code),
      );
    }
    const listed = (await new StateStore(stateStore()).listJobs()).map((l) => l.jobId);
    for (const [, spec] of cases)
      assert.ok(!listed.includes(spec.jobId ?? ''), `state written for ${spec.jobId}`);
  });

  test('unknown jobs are NOT_FOUND and epochs past the run OUT_OF_RANGE', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    await rejectsWith(
      call(stack.scorerRpc, 'reportScores', { jobId: 'nope', ids: [1], scores: [1] }),
      S.NOT_FOUND,
      'nope',
    );
    await rejectsWith(call(stack.scorerRpc, 'getStats', { jobId: 'nope', epoch: 0 }), S.NOT_FOUND);
    await rejectsWith(call(stack.scorerRpc, 'getStats', { jobId, epoch: 1 }), S.OUT_OF_RANGE);
  });
});

describe('loader', () => {
  test('random OpenEpoch fields (huge, zero, unknown jobs, cursors past the end): a status from the closed set', async () => {
    const jobId = await stack.createJob({ epochs: 2 });
    const stats = await fuzzOpenEpoch(loaderClient, jobId, { numRuns: 80, seed: 203 });
    assert.ok((stats.statuses.INVALID_ARGUMENT ?? 0) > 0, JSON.stringify(stats));
    const cursor = await runRank(loaderClient, stack.dataset, {
      jobId,
      epoch: 0,
      rank: 0,
      world: 1,
      batchSize: 8,
      cursor: 10_000,
    });
    assert.equal(cursor.code, S.OUT_OF_RANGE, cursor.details);
    assert.match(cursor.details, /cursor 10000/);
    assert.equal(cursor.batches.length, 0);
  });

  test('invalid acks end the stream and none of their scores reaches the scorer', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    const stats = await fuzzBadAcks(loaderClient, stack.dataset, jobId, {
      numRuns: 40,
      seed: 204,
      world: 2,
      batchSize: 8,
    });
    assert.equal(stats.inputs, 40);
    await sleep(200); // longer than the loader's 20 ms score flush
    const job = await call(stack.scorerRpc, 'describeJob', { jobId });
    assert.equal(Number(job.scoresReceived), 0, 'no score of an invalid ack was forwarded');
    assert.equal(await new ReportModel(SAMPLES).diff(stateStore(), jobId), undefined);
  });

  test('an ack over the 4 MiB receive limit is RESOURCE_EXHAUSTED and applies nothing', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    const n = 600_000;
    const r = await runRank(loaderClient, stack.dataset, {
      jobId,
      epoch: 0,
      rank: 0,
      world: 1,
      batchSize: 8,
      ackOverride: (b) => ({
        index: b.index,
        ids: Array.from({ length: n }, (_, i) => b.ids[i % b.ids.length] as number),
        scores: new Array<number>(n).fill(1),
      }),
    });
    assert.equal(r.code, S.RESOURCE_EXHAUSTED, `${S[r.code]}: ${r.details}`);
    await sleep(200);
    const job = await call(stack.scorerRpc, 'describeJob', { jobId });
    assert.equal(Number(job.scoresReceived), 0);
  });
});

describe('malformed configuration', () => {
  const variants: Array<[string, string, RegExp]> = [
    ['not YAML', 'scorer:\n  listen: [oops\n', /not valid YAML/],
    ['unknown key', 'scorer:\n  lisen: 127.0.0.1:0\n', /unknown key 'scorer\.lisen'/],
    ['wrong type', 'loader:\n  inflightBytes: lots\n', /'loader\.inflightBytes'/],
    ['bad address', 'loader:\n  listen: everywhere\n', /'loader\.listen'/],
    ['a list at the top', '- scorer\n- loader\n', /expected a mapping/],
  ];
  for (const [name, yaml, pattern] of variants) {
    test(`${name}: sadp scorer refuses to start, names the problem, creates no state`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sadp-badcfg-'));
      try {
        const file = join(dir, 'config.yaml');
        await writeFile(file, yaml);
        const state = join(dir, 'state');
        const r = await runSadp(['scorer', '--config', file, '--state', state, '--listen', '127.0.0.1:0'], {
          cwd: dir,
          timeoutMs: 30_000,
        });
        assert.equal(r.code, 1, r.stderr);
        assert.doesNotMatch(r.stdout, /"listening"/);
        assert.match(r.stderr, /SADP_CONFIG_INVALID/);
        assert.match(r.stderr, pattern);
        await assert.rejects(stat(state), { code: 'ENOENT' });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
