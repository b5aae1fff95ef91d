// Durable scorer state on a local directory: binary formats with checksums,
// write-ahead reports, group commit, snapshots and compaction, and recovery
// (torn trailing log tolerated and reported; lost acknowledged data refused).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../../common/logger.js';
import { isSadpError, Status } from '../../../common/errors.js';
import { openStore, type ObjectStore } from '../../../storage/index.js';
import { decodePlan, encodePlan, openScorerCore, planEpoch, type ScorerCore } from '../../../scorer/index.js';
import {
  decodeLog,
  decodePlanEnvelope,
  decodeSnapshot,
  encodeLog,
  encodePlanEnvelope,
  encodeSnapshot,
  StateErrorCode,
} from '../../../scorer/state/index.js';
import { mulberry32 } from '../../helpers/random.js';
import { ExpectedScores, makeReport, tempDir } from '../service/helpers.js';

const N = 20_000;

function jobSpec(jobId: string) {
  return { jobId, datasetSize: N, policy: 'sadp', pruneRatio: 0.5, epochs: 3, seed: 9n };
}

function referenceInput(expected = new ExpectedScores(N)) {
  return {
    policy: 'sadp' as const,
    datasetSize: N,
    pruneRatio: 0.5,
    maxPruneRatio: 0.7,
    smoothing: 0.3,
    epochs: 3,
    seed: 9n,
    scores: expected.scores,
    losses: expected.losses,
    scored: expected.scoredByScore,
  };
}

function referencePlan(expected: ExpectedScores, epoch: number) {
  return planEpoch({ ...referenceInput(expected), epoch });
}

async function reportAll(core: ScorerCore, expected: ExpectedScores, from: number, to: number, seed: number) {
  const r = makeReport('j', from, to, mulberry32(seed));
  await core.reportScores('j', { epoch: 0, ids: r.ids!, scores: r.scores!, losses: r.losses! });
  expected.apply(r);
}

function captureLogs() {
  const stream = new PassThrough();
  const lines: { level: number; msg: string; key?: string }[] = [];
  stream.on('data', (buf: Buffer) => {
    for (const line of buf.toString().split('\n'))
      if (line) lines.push(JSON.parse(line) as (typeof lines)[number]);
  });
  return { logger: createLogger({ level: 'debug', destination: stream }), lines };
}

async function open(t: TestContext, store: ObjectStore, logger = createLogger({ level: 'silent' })) {
  const core = await openScorerCore({ store, logger });
  t.after(() => core.close());
  return core;
}

const files = async (dir: string): Promise<string[]> => {
  try {
    return (await readdir(dir)).filter((f) => !f.includes('.tmp-')).sort();
  } catch {
    return [];
  }
};

test('log and snapshot encodings round-trip and detect damage', () => {
  const reports = [
    {
      epoch: 3,
      ids: Uint32Array.of(5, 1, 5),
      scores: Float64Array.of(0.5, 2, 0),
      losses: Float64Array.of(1, 1, 1e300),
    },
    { epoch: 4, ids: Uint32Array.of(7), scores: null, losses: Float64Array.of(3) },
    { epoch: 4, ids: Uint32Array.of(9, 10, 11), scores: Float64Array.of(1, 2, 3), losses: null },
  ];
  const bytes = encodeLog(17, reports);
  const back = decodeLog(bytes, 'log');
  assert.equal(back.seq, 17);
  assert.deepEqual(back.reports, reports);
  // Decoding works from any byte offset (e.g. a slice of a pooled Buffer).
  const shifted = new Uint8Array(bytes.byteLength + 3);
  shifted.set(bytes, 3);
  assert.deepEqual(decodeLog(shifted.subarray(3), 'log').reports, reports);

  for (const damage of [
    (b: Uint8Array) => b.subarray(0, b.byteLength - 9), // torn
    (b: Uint8Array) => {
      const c = b.slice();
      c[40] = c[40]! ^ 1;
      return c;
    },
    (b: Uint8Array) => b.subarray(0, 10),
  ]) {
    assert.throws(
      () => decodeLog(damage(bytes), 'jobs/j/log/1.log'),
      (err: unknown) =>
        isSadpError(err, StateErrorCode.CORRUPT) &&
        err.status === Status.DATA_LOSS &&
        /jobs\/j\/log/.test(err.message),
    );
  }

  const snap = {
    seq: 4,
    scoresReceived: 123,
    scores: Float64Array.of(1, 2, 3),
    losses: Float64Array.of(0, 0.5, 9),
    flags: Uint8Array.of(1, 3, 0),
  };
  // Plans come back from stores as Buffers, often views into a shared pool
  // (where Buffer#slice does not copy): the payload must still decode.
  const plan = planEpoch({ ...referenceInput(), epoch: 0 });
  const envelope = encodePlanEnvelope(0, encodePlan(plan));
  const pooled = Buffer.concat([Buffer.alloc(13), Buffer.from(envelope)]).subarray(13);
  assert.equal(decodePlan(decodePlanEnvelope(pooled, 0, 'plan')).digest, plan.digest);
  assert.throws(() => decodePlanEnvelope(pooled, 1, 'plan'), /epoch 0, not 1/);

  const s = encodeSnapshot(snap);
  assert.deepEqual(decodeSnapshot(s, 3, 'snap'), snap);
  assert.throws(() => decodeSnapshot(s, 4, 'snap'), /holds 3 examples/);
});

test('reports are durable when acknowledged; plans, snapshots and compaction survive a reopen', async (t) => {
  const dir = await tempDir(t);
  const store = openStore(dir);
  const expected = new ExpectedScores(N);
  const core = await open(t, store);
  await core.createJob(jobSpec('j'));
  await reportAll(core, expected, 0, 8_000, 1);
  await reportAll(core, expected, 4_000, 12_000, 2);
  assert.deepEqual(await files(join(dir, 'jobs/j/log')), ['000000000001.log', '000000000002.log']);

  const plan0 = await core.getPlan('j', 0);
  assert.equal(plan0.digest, referencePlan(expected, 0).digest);
  await core.close(); // waits for compaction
  assert.deepEqual(await files(join(dir, 'jobs/j/log')), [], 'logs covered by the snapshot are deleted');
  assert.deepEqual(await files(join(dir, 'jobs/j/snapshot')), ['000000000002.snap']);
  assert.deepEqual(await files(join(dir, 'jobs/j/plan')), ['0000000000.plan']);

  // More reports after the snapshot, then a reopen replays them on top of it.
  const core2 = await open(t, store);
  await reportAll(core2, expected, 10_000, 20_000, 3);
  await core2.close();
  const core3 = await open(t, store);
  const info = core3.describeJob('j');
  assert.equal(info.scoresReceived, expected.received);
  assert.equal(info.scoredExamples, N);
  assert.equal(info.plannedEpochs, 1);
  assert.equal((await core3.getPlan('j', 0)).digest, plan0.digest, 'plan 0 is read back, not recomputed');
  assert.equal((await core3.getStats('j', 0)).computeMs, 0);
  assert.equal((await core3.getPlan('j', 1)).digest, referencePlan(expected, 1).digest);
  await core3.close();
  // The plan after the replay snapshots the replayed log and compacts it.
  assert.deepEqual(await files(join(dir, 'jobs/j/log')), []);
  assert.deepEqual(await files(join(dir, 'jobs/j/snapshot')), ['000000000003.snap']);
});

test('a plan computed off the event loop sees exactly the reports before it; later ones apply after it', async (t) => {
  const dir = await tempDir(t);
  const core = await open(t, openStore(dir));
  await core.createJob(jobSpec('j'));
  const expected = new ExpectedScores(N);
  await reportAll(core, expected, 0, 10_000, 4);
  const before = referencePlan(expected, 0).digest;
  // The plan runs in a worker thread; this report arrives while it runs.
  const planning = core.getPlan('j', 0);
  const late = makeReport('j', 5_000, 20_000, mulberry32(5));
  const reported = core.reportScores('j', {
    epoch: 0,
    ids: late.ids!,
    scores: late.scores!,
    losses: late.losses!,
  });
  expected.apply(late);
  const [plan] = await Promise.all([planning, reported]);
  assert.equal(plan.digest, before, 'plan 0 reflects only the reports before it');
  assert.equal(core.describeJob('j').scoresReceived, expected.received, 'the late report was applied');
  assert.equal((await core.getPlan('j', 1)).digest, referencePlan(expected, 1).digest, 'plan 1 sees it');
});

test('concurrent reports are group-committed and applied in log order', async (t) => {
  const dir = await tempDir(t);
  const base = openStore(dir);
  let logPuts = 0;
  const store: ObjectStore = Object.assign(Object.create(base) as ObjectStore, {
    put: (key: string, body: Uint8Array, options?: object) => {
      if (key.includes('/log/')) logPuts++;
      return base.put(key, body, options);
    },
  });
  const core = await open(t, store);
  await core.createJob(jobSpec('j'));
  const expected = new ExpectedScores(N);
  const sends: Promise<number>[] = [];
  for (let i = 0; i < 20; i++) {
    // Overlapping ids: the order they are applied in matters.
    const r = makeReport('j', i * 500, i * 500 + 1_000, mulberry32(100 + i));
    expected.apply(r);
    sends.push(core.reportScores('j', { epoch: 0, ids: r.ids!, scores: r.scores!, losses: r.losses! }));
  }
  await Promise.all(sends);
  assert.ok(logPuts < 20, `20 reports took ${logPuts} log writes`);
  await core.close();
  const reopened = await open(t, base);
  assert.equal(reopened.describeJob('j').scoresReceived, 20_000);
  assert.equal((await reopened.getPlan('j', 0)).digest, referencePlan(expected, 0).digest);
});

test('a failed log write rejects the report, applies nothing, and the next write reuses its number', async (t) => {
  const dir = await tempDir(t);
  const base = openStore(dir);
  let failNext = false;
  // Store faults cannot be provoked on a local directory, so this one is injected.
  const store: ObjectStore = Object.assign(Object.create(base) as ObjectStore, {
    put: async (key: string, body: Uint8Array, options?: object) => {
      if (failNext && key.includes('/log/')) {
        failNext = false;
        await base.put(key, body.subarray(0, 100), options); // a partial object is left behind
        throw new Error('injected: connection reset');
      }
      return base.put(key, body, options);
    },
  });
  const core = await open(t, store);
  await core.createJob(jobSpec('j'));
  const expected = new ExpectedScores(N);
  await reportAll(core, expected, 0, 1_000, 1);
  failNext = true;
  const lost = makeReport('j', 5_000, 6_000, mulberry32(2));
  await assert.rejects(
    core.reportScores('j', { epoch: 0, ids: lost.ids!, scores: lost.scores!, losses: lost.losses! }),
    (err: unknown) => isSadpError(err, 'SADP_STATE_WRITE_FAILED') && err.status === Status.UNAVAILABLE,
  );
  assert.equal(core.describeJob('j').scoresReceived, 1_000);
  await reportAll(core, expected, 500, 1_500, 3);
  await core.close();
  const reopened = await open(t, base);
  assert.equal(reopened.describeJob('j').scoresReceived, 2_000);
  assert.equal(reopened.describeJob('j').scoredExamples, 1_500);
  assert.equal((await reopened.getPlan('j', 0)).digest, referencePlan(expected, 0).digest);
});

test('a torn trailing log object is reported and ignored; its number is reused', async (t) => {
  const dir = await tempDir(t);
  const store = openStore(dir);
  const expected = new ExpectedScores(N);
  const core = await open(t, store);
  await core.createJob(jobSpec('j'));
  await reportAll(core, expected, 0, 3_000, 1);
  await core.close();
  // A crash mid-write of log 2 on a store without atomic puts.
  const torn = encodeLog(2, [
    { epoch: 0, ids: Uint32Array.of(1, 2), scores: Float64Array.of(5, 5), losses: null },
  ]);
  await writeFile(join(dir, 'jobs/j/log/000000000002.log'), torn.subarray(0, torn.byteLength - 5));

  const { logger, lines } = captureLogs();
  const core2 = await open(t, store, logger);
  await new Promise((resolve) => setImmediate(resolve));
  const warning = lines.find((l) => /torn or corrupt/.test(l.msg));
  assert.ok(warning, 'the torn object is reported');
  assert.match(warning.key ?? '', /000000000002\.log$/);
  assert.equal(core2.describeJob('j').scoresReceived, 3_000);
  await reportAll(core2, expected, 2_000, 4_000, 2);
  await core2.close();
  const core3 = await open(t, store);
  assert.equal(core3.describeJob('j').scoresReceived, 5_000);
  assert.equal((await core3.getPlan('j', 0)).digest, referencePlan(expected, 0).digest);
});

test('a damaged or missing log object before the last one fails loading with DATA_LOSS', async (t) => {
  for (const damage of ['corrupt', 'missing'] as const) {
    const dir = await tempDir(t);
    const store = openStore(dir);
    const core = await open(t, store);
    await core.createJob(jobSpec('j'));
    const expected = new ExpectedScores(N);
    for (let i = 0; i < 3; i++) await reportAll(core, expected, i * 1_000, (i + 1) * 1_000, i);
    await core.close();
    const victim = join(dir, 'jobs/j/log/000000000002.log');
    if (damage === 'corrupt')
      await writeFile(victim, Buffer.from('garbage that is long enough to look like a header....'));
    else await rm(victim);
    await assert.rejects(
      openScorerCore({ store }),
      (err: unknown) =>
        isSadpError(err, StateErrorCode.CORRUPT) &&
        err.status === Status.DATA_LOSS &&
        /000000000002/.test(err.message),
      damage,
    );
  }
});
