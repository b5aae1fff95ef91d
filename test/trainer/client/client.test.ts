// The trainer client against a real gRPC LoaderService on loopback: batches
// arrive once and in order across drops and restarts, scores survive a loader
// crash, fatal statuses surface typed, and every way out closes the stream.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  createLoaderClient,
  LoaderCallError,
  type Batch,
  type EpochStream,
  type LoaderClient,
  type LoaderClientOptions,
} from '../../../trainer/client/index.js';
import { isSadpError } from '../../../common/errors.js';
import {
  batchSizeOf,
  newRecord,
  sampleId,
  startTestLoader,
  type TestLoaderPlan,
  type TestLoaderRecord,
} from './test-server.js';
import { freePort } from '../../helpers/ports.js';

const score = (id: number): number => id * 0.01 + 0.5;
const loss = (id: number): number => id * 0.001;
const fast = { reconnect: { baseDelayMs: 10, maxDelayMs: 50 } };

function epochOf(plan: TestLoaderPlan): {
  job: string;
  epoch: number;
  rank: number;
  worldSize: number;
  batchSize: number;
} {
  return { job: 'job', epoch: 0, rank: 0, worldSize: 1, batchSize: plan.batchSize };
}

async function ackWithScores(batch: Batch): Promise<void> {
  await batch.ack({ scores: Array.from(batch.ids, score), losses: Float32Array.from(batch.ids, loss) });
}

/** A client of `loader` with fast reconnects, closed when the test ends. */
function clientOf(
  t: TestContext,
  loader: { address: string },
  options: Omit<LoaderClientOptions, 'address'> = {},
): LoaderClient {
  const client = createLoaderClient({ address: loader.address, ...options, ...fast });
  t.after(() => client.close());
  return client;
}

/** Reads `stream` to its end, acking each batch with its scores after `before(batch)`; the batch indices in order. */
async function readAll(stream: EpochStream, before?: (batch: Batch) => Promise<void>): Promise<number[]> {
  const seen: number[] = [];
  for await (const batch of stream) {
    seen.push(batch.index);
    await before?.(batch);
    await ackWithScores(batch);
  }
  return seen;
}

/** Every batch index of the plan's epoch, in order. */
const everyStep = (plan: TestLoaderPlan): number[] => Array.from({ length: plan.steps }, (_, i) => i);

/** Non-padded ids of the whole plan. */
function realIds(plan: TestLoaderPlan): number[] {
  const out: number[] = [];
  for (let b = 0; b < plan.steps; b++) {
    const size = batchSizeOf(b, plan);
    const pad = b === plan.steps - 1 ? (plan.padded ?? 0) : 0;
    for (let j = 0; j < size - pad; j++) out.push(sampleId(b, j, plan));
  }
  return out;
}

function assertAllScoresDurable(record: TestLoaderRecord, plan: TestLoaderPlan): void {
  const ids = realIds(plan);
  const missing = ids.filter((id) => record.durable.get(id) !== score(id));
  assert.deepEqual(missing, [], 'every acknowledged score is durable at the loader');
}

/** Polls `cond`; the bound (120 s) only turns a hang into a failure. */
async function waitFor(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 12_000 && !cond(); i++) await delay(10);
  assert.ok(cond(), what);
}

test('streams every batch once in order, reassembles parts, acks scores and sends the token', async (t) => {
  const plan: TestLoaderPlan = {
    steps: 7,
    batchSize: 5,
    lastBatchSize: 3,
    padded: 1,
    sampleBytes: 4,
    partBytes: 8,
  };
  const loader = await startTestLoader(plan, { token: 's3cret' });
  t.after(() => loader.kill());
  const client = clientOf(t, loader, { token: 's3cret' });

  const stream = client.epoch({ ...epochOf(plan), maxUnackedBatches: 2 });
  const seen: number[] = [];
  for await (const batch of stream) {
    seen.push(batch.index);
    assert.equal(batch.size, batchSizeOf(batch.index, plan));
    assert.equal(batch.info.steps, plan.steps);
    for (let j = 0; j < batch.size; j++) {
      const id = sampleId(batch.index, j, plan);
      assert.equal(batch.ids[j], id);
      assert.equal(batch.keys[j], `s${String(id).padStart(6, '0')}`);
      assert.equal(batch.weights[j], 1 + (id % 3) * 0.5);
      assert.equal(batch.fields.gray![j]![1], id % 251);
      assert.equal(new TextDecoder().decode(batch.fields.cls![j]), String(id % 10));
      assert.equal(batch.padded[j], batch.index === plan.steps - 1 && j === batch.size - 1 ? 1 : 0);
    }
    await ackWithScores(batch);
    assert.equal(stream.cursor, batch.index + 1);
  }
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(loader.record.opens.length, 1);
  assert.equal(loader.record.opens[0]!.maxUnackedBatches, 2);
  assert.ok(loader.record.authorization.every((a) => a === 'Bearer s3cret'));
  assertAllScoresDurable(loader.record, plan);
  const lastId = sampleId(plan.steps - 1, 2, plan);
  assert.ok(!loader.record.acks.some((a) => a.ids.includes(lastId)), 'padded repeats are not reported');
  assert.deepEqual(
    loader.record.acks.at(-1)!.losses.slice(0, 1),
    [loss(sampleId(6, 0, plan))].map((x) => Math.fround(x)),
  );
  assert.equal(stream.committedThrough, plan.steps - 1);
  assert.deepEqual(stream.pendingAcks(), []);
  assert.equal(stream.stats.reopens, 0);
  await waitFor('server stream closed', () => loader.record.open === 0);
});

test('a stream dropped with UNAVAILABLE is reopened at the cursor and uncommitted scores are resent', async (t) => {
  const plan: TestLoaderPlan = { steps: 12, batchSize: 4 };
  const loader = await startTestLoader(plan, { commitEvery: 3, dropAfterBatch: 8 });
  t.after(() => loader.kill());
  const client = clientOf(t, loader);

  const stream = client.epoch(epochOf(plan));
  const seen = await readAll(stream);
  assert.deepEqual(seen, everyStep(plan));
  const opens = loader.record.opens.map((o) => o.cursor);
  assert.equal(opens.length, 2);
  assert.equal(opens[0], 0);
  assert.equal(opens[1], 9, 'batch 8 was delivered before the drop, so the reopen starts at 9');
  // With a window of 4, batch 8 goes out after ack 4: stream 1 received acks
  // 0..4 and committed through 2 (after its 3rd ack). 3..8 were not committed
  // there and must come back on stream 2; 0..2 must not.
  const first = loader.record.acks.filter((a) => a.stream === 1).map((a) => a.index);
  assert.deepEqual(first, [0, 1, 2, 3, 4]);
  const resent = loader.record.acks.filter((a) => a.stream === 2 && a.index < 9).map((a) => a.index);
  assert.deepEqual(resent, [3, 4, 5, 6, 7, 8]);
  assertAllScoresDurable(loader.record, plan);
  assert.equal(stream.stats.reopens, 1);
  assert.deepEqual(stream.pendingAcks(), []);
});

test('a killed loader replaced on the same port: exactly-once batches and no lost scores', async (t) => {
  const plan: TestLoaderPlan = { steps: 10, batchSize: 3 };
  const record = newRecord();
  // Outside the ephemeral range, so no outgoing connection takes the port while it is free.
  let loader = await startTestLoader(plan, { commitEvery: 0 }, record, await freePort());
  const port = loader.port;
  t.after(() => loader.kill());
  const client = clientOf(t, loader);

  const stream = client.epoch(epochOf(plan));
  const seen = await readAll(stream, async (batch) => {
    if (batch.index === 2 && record.streams === 1) {
      loader.kill();
      loader = await startTestLoader(plan, { commitEvery: 0 }, record, port);
    }
  });
  assert.deepEqual(seen, everyStep(plan));
  assert.ok(record.opens.length >= 2);
  const reopenedAt = record.opens.at(-1)!.cursor;
  assert.ok(reopenedAt >= 3 && reopenedAt < plan.steps, `reopened at ${reopenedAt}`);
  // The first loader committed nothing, so every score before the reopen was resent.
  assertAllScoresDurable(record, plan);
  assert.ok(stream.stats.reopens >= 1);
});

test('statuses a retry cannot fix throw a typed error at once', async (t) => {
  for (const code of [
    grpc.status.INVALID_ARGUMENT,
    grpc.status.NOT_FOUND,
    grpc.status.PERMISSION_DENIED,
    grpc.status.OUT_OF_RANGE,
    grpc.status.FAILED_PRECONDITION,
  ]) {
    const loader = await startTestLoader(
      { steps: 3, batchSize: 2 },
      { rejectWith: { code, details: `SADP_TEST_REJECT: job 'job' says no (${code})` } },
    );
    const client = createLoaderClient({ address: loader.address, ...fast });
    try {
      await assert.rejects(
        async () => {
          for await (const _ of client.epoch(epochOf({ steps: 3, batchSize: 2 })))
            assert.fail('no batch expected');
        },
        (err: unknown) => {
          assert.ok(err instanceof LoaderCallError);
          assert.equal(err.grpcCode, code);
          assert.equal(err.status, code);
          assert.equal(err.remoteCode, 'SADP_TEST_REJECT');
          assert.match(err.message, /job 'job' says no/);
          return true;
        },
      );
      assert.equal(loader.record.opens.length, 1, 'not retried');
    } finally {
      client.close();
      loader.kill();
    }
  }

  const guarded = await startTestLoader({ steps: 3, batchSize: 2 }, { token: 'right' });
  t.after(() => guarded.kill());
  const client = createLoaderClient({ address: guarded.address, token: 'wrong', ...fast });
  t.after(() => client.close());
  await assert.rejects(
    async () => {
      for await (const _ of client.epoch(epochOf({ steps: 3, batchSize: 2 })))
        assert.fail('no batch expected');
    },
    (err: unknown) => err instanceof LoaderCallError && err.grpcCode === Number(grpc.status.UNAUTHENTICATED),
  );
  assert.equal(guarded.record.authorization[0], 'Bearer wrong');
});

test('reconnect attempts are bounded when the loader never comes back', async (t) => {
  const gone = await startTestLoader({ steps: 3, batchSize: 2 });
  gone.kill();
  const client = createLoaderClient({
    address: gone.address,
    reconnect: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
  });
  t.after(() => client.close());
  await assert.rejects(
    async () => {
      for await (const _ of client.epoch(epochOf({ steps: 3, batchSize: 2 })))
        assert.fail('no batch expected');
    },
    (err: unknown) =>
      err instanceof LoaderCallError &&
      err.code === 'SADP_LOADER_RETRIES_EXHAUSTED' &&
      err.status === grpc.status.UNAVAILABLE &&
      /3 consecutive attempts/.test(err.message),
  );
});

test('breaking out of the loop cancels the stream on the server', async (t) => {
  const plan: TestLoaderPlan = { steps: 50, batchSize: 2 };
  const loader = await startTestLoader(plan);
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  const stream = client.epoch(epochOf(plan));
  for await (const batch of stream) {
    await batch.ack();
    if (batch.index === 1) break;
  }
  await waitFor(
    'server saw the cancellation',
    () => loader.record.cancelled === 1 && loader.record.open === 0,
  );
  assert.equal(stream.cursor, 2);
  assert.throws(() => stream[Symbol.asyncIterator](), /iterated once/);
});

test('an AbortSignal ends a wait for a wedged loader and cancels its call', async (t) => {
  const loader = await startTestLoader({ steps: 3, batchSize: 2 }, { hang: true });
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  const ac = new AbortController();
  const run = (async () => {
    for await (const _ of client.epoch({ ...epochOf({ steps: 3, batchSize: 2 }), signal: ac.signal })) {
      assert.fail('no batch expected');
    }
  })();
  await waitFor('stream opened', () => loader.record.opens.length === 1);
  ac.abort();
  await assert.rejects(run, (err: unknown) => isSadpError(err, 'SADP_CANCELLED'));
  await waitFor('server saw the cancellation', () => loader.record.cancelled === 1);
});

test('a loader that never answers the open is timed out and retried, boundedly', async (t) => {
  const loader = await startTestLoader({ steps: 3, batchSize: 2 }, { hang: true });
  t.after(() => loader.kill());
  const client = createLoaderClient({
    address: loader.address,
    deadlineMs: 30,
    reconnect: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10 },
  });
  t.after(() => client.close());
  await assert.rejects(
    async () => {
      for await (const _ of client.epoch(epochOf({ steps: 3, batchSize: 2 })))
        assert.fail('no batch expected');
    },
    (err: unknown) => err instanceof LoaderCallError && err.code === 'SADP_LOADER_RETRIES_EXHAUSTED',
  );
  assert.equal(loader.record.opens.length, 2);
  await waitFor('both calls cancelled', () => loader.record.cancelled === 2);
});

test('a stream that stalls mid-epoch is reopened at the cursor after the idle timeout', async (t) => {
  const plan: TestLoaderPlan = { steps: 8, batchSize: 2 };
  const loader = await startTestLoader(plan, { stallAfterBatch: 2 });
  t.after(() => loader.kill());
  const client = clientOf(t, loader, { idleTimeoutMs: 500 });
  const stream = client.epoch(epochOf(plan));
  const seen = await readAll(stream);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7]);
  // The stall after batch 2 is reopened at cursor 3. A busy machine may also
  // let a healthy stream idle past the timer; such a reopen is at its cursor
  // too, so the cursors start at 0, never go back, and include 3.
  const cursors = loader.record.opens.map((o) => o.cursor);
  assert.equal(cursors[0], 0);
  assert.ok(cursors.includes(3), `reopened at ${cursors.join(', ')}`);
  assert.ok(
    cursors.every((c, i) => i === 0 || c >= (cursors[i - 1] ?? 0)),
    `cursors ${cursors.join(', ')}`,
  );
  assertAllScoresDurable(loader.record, plan);
  await waitFor(
    'every idle call was cancelled',
    () => loader.record.cancelled === loader.record.opens.length - 1,
  );
});

test('batches larger than one message arrive in parts and are reassembled byte for byte', async (t) => {
  const MiB = 1024 * 1024;
  const plan: TestLoaderPlan = { steps: 3, batchSize: 8, sampleBytes: MiB, partBytes: 3 * MiB };
  const loader = await startTestLoader(plan);
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  let batches = 0;
  for await (const batch of client.epoch(epochOf(plan))) {
    batches++;
    assert.equal(batch.size, 8);
    batch.fields.gray!.forEach((bytes, j) => {
      const id = sampleId(batch.index, j, plan);
      assert.equal(bytes.length, MiB);
      assert.equal(bytes[0], batch.index);
      assert.equal(bytes[MiB - 1], id % 251);
    });
    await batch.ack();
  }
  assert.equal(batches, 3);

  // Over the receive limit: fails at once, naming the size problem.
  const small = createLoaderClient({ address: loader.address, maxReceiveMessageBytes: MiB, ...fast });
  t.after(() => small.close());
  await assert.rejects(
    async () => {
      for await (const _ of small.epoch(epochOf(plan))) assert.fail('no batch expected');
    },
    (err: unknown) =>
      err instanceof LoaderCallError && err.grpcCode === Number(grpc.status.RESOURCE_EXHAUSTED),
  );
});

test('an un-acked batch is acked (without scores) when the next one is requested', async (t) => {
  const plan: TestLoaderPlan = { steps: 6, batchSize: 2 };
  const loader = await startTestLoader(plan);
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  const stream = client.epoch({ ...epochOf(plan), maxUnackedBatches: 1 });
  let n = 0;
  for await (const _ of stream) n++;
  assert.equal(n, plan.steps);
  assert.equal(stream.cursor, plan.steps);
  assert.deepEqual(
    loader.record.acks.map((a) => a.index),
    [0, 1, 2, 3, 4, 5],
  );
  assert.ok(loader.record.acks.every((a) => a.scores.length === 0 && a.ids.length === 0));
});

test('scores acked after the loader ended the stream are flushed on a reopen at the end', async (t) => {
  const plan: TestLoaderPlan = { steps: 4, batchSize: 3 };
  const loader = await startTestLoader(plan, { commitEvery: 0, endWhenAcked: true });
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  const stream = client.epoch(epochOf(plan));
  for await (const batch of stream) await ackWithScores(batch);
  assert.deepEqual(
    loader.record.opens.map((o) => o.cursor),
    [0, 4],
  );
  assertAllScoresDurable(loader.record, plan);
  assert.deepEqual(stream.pendingAcks(), []);
});

test('a resumed epoch starts at the checkpoint cursor and resends its uncommitted scores', async (t) => {
  const plan: TestLoaderPlan = { steps: 5, batchSize: 2 };
  const loader = await startTestLoader(plan);
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  const ids = Uint32Array.of(sampleId(2, 0, plan), sampleId(2, 1, plan));
  const stream = client.epoch({
    ...epochOf(plan),
    cursor: 3,
    resendAcks: [{ index: 2, ids, scores: Float64Array.from(ids, score), losses: undefined }],
  });
  const seen = await readAll(stream);
  assert.deepEqual(seen, [3, 4]);
  assert.equal(loader.record.opens[0]!.cursor, 3);
  assert.equal(loader.record.acks[0]!.index, 2);
  for (let b = 2; b < 5; b++) {
    for (let j = 0; j < 2; j++)
      assert.equal(loader.record.durable.get(sampleId(b, j, plan)), score(sampleId(b, j, plan)));
  }
});

test('a plan that changes across a reconnect is refused rather than resumed', async (t) => {
  const plan: TestLoaderPlan = { steps: 6, batchSize: 2, planDigest: 'digest-1' };
  const loader = await startTestLoader(plan, { dropAfterBatch: 1 });
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  let stream: EpochStream | undefined;
  await assert.rejects(
    async () => {
      stream = client.epoch(epochOf(plan));
      for await (const batch of stream) {
        plan.planDigest = 'digest-2';
        await batch.ack();
      }
    },
    (err: unknown) =>
      err instanceof LoaderCallError &&
      err.code === 'SADP_LOADER_PLAN_CHANGED' &&
      err.status === grpc.status.FAILED_PRECONDITION,
  );
  assert.equal(stream?.cursor, 2);
});

test('acks with bad scores are refused naming the sample', async (t) => {
  const plan: TestLoaderPlan = { steps: 2, batchSize: 3 };
  const loader = await startTestLoader(plan);
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  for await (const batch of client.epoch(epochOf(plan))) {
    await assert.rejects(batch.ack({ scores: [1, 2] }), /2 scores for 3 samples/);
    await assert.rejects(
      batch.ack({ scores: [1, Number.NaN, 2] }),
      (err: unknown) => isSadpError(err, 'SADP_SCORE_INVALID') && err.message.includes(`id ${batch.ids[1]}`),
    );
    await assert.rejects(batch.ack({ losses: [1, 2, -1] }), /losses of sample id/);
    await batch.ack();
  }
  assert.deepEqual(
    loader.record.acks.map((a) => a.index),
    [0, 1],
  );
});

test('epochInfo describes an epoch without streaming it', async (t) => {
  const loader = await startTestLoader({ steps: 4, batchSize: 2 });
  t.after(() => loader.kill());
  const client = clientOf(t, loader);
  const info = await client.epochInfo({ job: 'job', epoch: 0, worldSize: 1, batchSize: 2 });
  assert.equal(info.steps, 4);
  assert.equal(info.selectedBytes, 8 * 4);
  assert.deepEqual(info.fields, ['cls', 'gray']);
  assert.equal(loader.record.streams, 0);
});
