// The scorer cannot make scores durable (every write to its S3 state store
// fails at a fault proxy) while a trainer finishes its epoch: the loader
// retries ReportScores for its configured scoreDurableTimeoutMs only, then
// fails the trainer's stream with UNAVAILABLE SADP_SCORES_NOT_DURABLE naming
// the scorer, job, epoch and count; the trainer SDK reconnects, resends, and
// after its reconnect budget fails with the same remote code, keeping every
// unconfirmed scored ack. Once the store is back, resending those acks makes
// every score durable: none was lost. Real processes (`sadp s3 serve`,
// `sadp scorer`, `sadp loader`) on real sockets; the outcome is asserted,
// never a duration.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createLoaderClient, LoaderCallError, type AckRecord } from '../../trainer/client/index.js';
import { readDurableScoresRetrying, startKillEnv, type KillEnv } from './kill-scenario.js';
import { createJob, type JobParams } from './stack.js';
import { freePort } from '../helpers/ports.js';

/** One sample of a Prometheus text exposition (0 when absent). */
async function scrape(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/** Exactly representable in float32, so the durable value compares equal. */
const scoreOf = (id: number): number => 0.5 + (id % 64) / 64;

let env: KillEnv;
let metricsPort: number;
before(async () => {
  metricsPort = await freePort();
  env = await startKillEnv({
    scorerState: 's3',
    stateProxy: true,
    samples: 240,
    loaderArgs: ['--score-durable-timeout-ms', '300', '--metrics-port', String(metricsPort)],
  });
});
after(async () => {
  await env?.stop();
  await env?.remove();
});

test('scores the scorer cannot make durable fail the trainer with SADP_SCORES_NOT_DURABLE; resent later, none is lost', async () => {
  const proxy = env.stateProxy;
  assert.ok(proxy);
  const params: JobParams = {
    jobId: `not-durable-${process.pid}`,
    datasetSize: env.samples,
    policy: 'random',
    pruneRatio: 0.5,
    epochs: 2,
    seed: 9,
    datasetUrl: env.manifestUrl,
  };
  await createJob(env.scorerClient, params);
  const client = createLoaderClient({
    address: env.loaderAddress,
    reconnect: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50 },
  });
  try {
    const shape = { job: params.jobId, epoch: 0, rank: 0, worldSize: 1, batchSize: 16 };
    const stream = client.epoch(shape);
    const acked = new Map<number, number>();
    let failure: unknown;
    try {
      for await (const batch of stream) {
        // The plan is durable once EpochInfo arrived; from here on every write of the state store fails.
        if (batch.index === 0)
          proxy.setRules([{ fault: 'internal-error', method: 'PUT', path: /\/scorer-state\// }]);
        const scores = Array.from(batch.ids, scoreOf);
        batch.ids.forEach((id, i) => acked.set(id, scores[i] as number));
        await batch.ack({ scores });
      }
    } catch (err) {
      failure = err;
    }
    const steps = stream.info?.steps ?? 0;
    assert.ok(steps > 1, 'the epoch has several batches');
    // Usually every batch was delivered before the third give-up; on a stalled machine the
    // failure can come first. Both are correct: what was acked is kept, the rest comes later.
    const delivered = stream.cursor;
    assert.ok(delivered >= 1 && delivered <= steps, `batches acked: ${delivered}`);

    // The trainer's error: UNAVAILABLE, the loader's code, the scorer, job, epoch and counts.
    assert.ok(failure instanceof LoaderCallError, `the epoch failed: ${String(failure)}`);
    assert.equal(failure.code, 'SADP_LOADER_RETRIES_EXHAUSTED');
    assert.equal(failure.grpcCode, 14, 'status UNAVAILABLE');
    assert.equal(failure.remoteCode, 'SADP_SCORES_NOT_DURABLE');
    assert.match(
      failure.message,
      new RegExp(
        `\\d+ scores of job ${params.jobId} epoch 0 are not durable: the scorer at ${env.scorerAddress} ` +
          'failed \\d+ ReportScores attempts over 300 ms',
      ),
    );
    const pending: AckRecord[] = stream.pendingAcks();
    assert.equal(stream.committedThrough, -1, 'nothing was confirmed');
    assert.equal(pending.length, delivered, 'every scored ack is kept by the trainer');
    assert.match(failure.message, new RegExp(`${delivered} scored acks the loader did not confirm are kept`));

    // The loader counted what it gave up (each entry at least once) and ends up holding nothing
    // (an ack still in flight when the last stream failed is given up in its turn: polled, not timed).
    const pendingEntries = pending.reduce((n, a) => n + a.ids.length, 0);
    assert.ok((await scrape(metricsPort, 'sadp_loader_score_reports_total', '{outcome="gave_up"}')) >= 2);
    // Polled up to a generous deadline, so a loader that never gives up fails with the figures, not a hang.
    for (let polls = 0; ; polls++) {
      const notDurable = await scrape(metricsPort, 'sadp_loader_scores_not_durable_total');
      const buffered = await scrape(metricsPort, 'sadp_loader_scores_buffered');
      if (notDurable >= pendingEntries && buffered === 0) break;
      assert.ok(
        polls < 1_200,
        `after ~60 s the loader still buffers ${buffered} scores and gave up ${notDurable} of ${pendingEntries}`,
      );
      await delay(50);
    }

    // The store is back: resending the kept acks (and scoring any batch not delivered yet)
    // makes every score durable.
    proxy.setRules([]);
    const resumed = client.epoch({ ...shape, cursor: delivered, resendAcks: pending });
    for await (const batch of resumed) {
      assert.ok(batch.index >= delivered, `batch ${batch.index} was delivered before`);
      const scores = Array.from(batch.ids, scoreOf);
      batch.ids.forEach((id, i) => acked.set(id, scores[i] as number));
      await batch.ack({ scores });
    }
    assert.equal(resumed.committedThrough, steps - 1, 'every resent ack confirmed');
    assert.deepEqual(resumed.pendingAcks(), []);
    const durable = await readDurableScoresRetrying(env, params.jobId);
    for (const [id, score] of acked) assert.equal(durable.scores[id], score, `score of example ${id}`);
  } finally {
    client.close();
  }
});
