// `runTraining` end to end, nothing faked: an embedded S3 server holding
// WebDataset shards of a small learnable image set, the real scorer and
// loader services on loopback, and a spiking MLP trained through the client
// SDK. The trainer must learn (loss falls, test accuracy far above chance),
// SADP must prune (the loader reads the selected bytes, within the waste
// bound, as its storage request log confirms), the scores must reach the
// scorer, and a run stopped mid-epoch must resume at its checkpoint's cursor.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  createLoaderServer,
  buildShards,
  encodeNpyUint8,
  type LoaderServer,
  type SampleSource,
} from '../../../loader/index.js';
import type { RangeRequestEvent } from '../../../loader/fetch/index.js';
import type { sadp } from '../../../proto/index.js';
import {
  createScorerClient,
  createScorerServer,
  type ScorerClient,
  type ScorerServer,
} from '../../../scorer/index.js';
import {
  createLoaderClient,
  readCheckpoint,
  runTraining,
  type EpochSummary,
  type TrainOptions,
} from '../../../trainer/index.js';
import { isSadpError } from '../../../common/errors.js';
import { mulberry32 } from '../../helpers/random.js';
import { startTempS3, type TempS3 } from '../../helpers/temp-s3.js';
import { freePort } from '../../helpers/ports.js';

const TRAIN = 1200;
const TEST = 300;
const CLASSES = 10;
const BUCKET = 'e2e';

/**
 * 28x28 images: noise everywhere plus a bright 6x6 block whose position is
 * the class, jittered by a pixel or two. Learnable in a couple of epochs,
 * but not by a constant guess.
 */
function learnableSource(count: number, seed: number): SampleSource {
  return {
    name: `learnable-blocks:${count}:${seed}`,
    count: () => Promise.resolve(count),
    // eslint-disable-next-line @typescript-eslint/require-await -- generated in memory; the interface is async
    async *samples() {
      const rand = mulberry32(seed);
      for (let i = 0; i < count; i++) {
        const label = Math.floor(rand() * CLASSES);
        const px = new Uint8Array(784);
        for (let p = 0; p < 784; p++) px[p] = Math.floor(rand() * 60);
        const row = 2 + (label % 5) * 5 + Math.floor(rand() * 2);
        const col = 3 + Math.floor(label / 5) * 13 + Math.floor(rand() * 3);
        for (let r = row; r < row + 6; r++)
          for (let c = col; c < col + 6; c++) px[r * 28 + c] = 180 + Math.floor(rand() * 75);
        yield {
          key: String(i).padStart(6, '0'),
          members: [
            { ext: 'cls', data: new TextEncoder().encode(String(label)) },
            { ext: 'npy', data: encodeNpyUint8(px, [28, 28]) },
          ],
        };
      }
    },
  };
}

let tmp: TempS3;
let scorer: ScorerServer;
let scorerClient: ScorerClient;
let loader: LoaderServer;
let trainUrl: string;
/** Every storage GET of the loader. */
const requests: RangeRequestEvent[] = [];
let testUrl: string;

before(async () => {
  tmp = await startTempS3({ prefix: 'sadp-train-e2e-', buckets: [BUCKET] });
  await buildShards(learnableSource(TRAIN, 7), {
    out: `s3://${BUCKET}/train`,
    client: tmp.client,
    shardBytes: 256 * 1024,
  });
  await buildShards(learnableSource(TEST, 99), {
    out: `s3://${BUCKET}/test`,
    client: tmp.client,
    shardBytes: 256 * 1024,
  });
  trainUrl = `s3://${BUCKET}/train/manifest.json`;
  testUrl = `s3://${BUCKET}/test/manifest.json`;
  scorer = await createScorerServer({ host: '127.0.0.1', port: 0, stateUrl: join(tmp.dir, 'scorer') });
  scorerClient = createScorerClient({ address: scorer.address });
  loader = await createLoaderServer({
    scorerAddress: scorer.address,
    s3: tmp.s3Options,
    // The mode that bounds pruned bytes (5 %): this test checks what is read.
    readerOptions: { planner: 'min-bytes' },
    onStorageRequest: (r) => requests.push(r),
  });
});

after(async () => {
  await loader?.close(500);
  scorerClient?.close();
  await scorer?.close(500);
  await tmp?.close();
});

async function createJob(jobId: string, epochs: number, pruneRatio: number): Promise<void> {
  await scorerClient.createJob({
    jobId,
    datasetSize: TRAIN,
    policy: 'sadp',
    pruneRatio,
    epochs,
    seed: 5,
    datasetUrl: trainUrl,
  });
}

function describeJob(jobId: string): Promise<sadp.v1.Job> {
  return scorerClient.describeJob(jobId);
}

function baseOptions(job: string): TrainOptions {
  return {
    loader: loader.address,
    job,
    batchSize: 32,
    model: 'mlp',
    network: { hidden: [64] },
    lr: 3e-3,
    seed: 3,
    eval: { kind: 'manifest', url: testUrl, s3: tmp.s3Options },
  };
}

test('two SADP epochs: the network learns, only selected bytes are read, scores reach the scorer', async () => {
  await createJob('learn', 2, 0.3);
  const requestsBefore = requests.length;
  let epochReceived = 0;
  const summaries: EpochSummary[] = [];
  const result = await runTraining(baseOptions('learn'), { onEpoch: (s) => summaries.push(s) });
  assert.deepEqual(result, summaries);
  assert.equal(result.length, 2, "the job's two epochs, asked from the loader");
  const [first, second] = result as [EpochSummary, EpochSummary];
  assert.ok(second.loss < first.loss, `loss falls: ${first.loss} -> ${second.loss}`);
  assert.ok(second.testAccuracy! > 0.6, `test accuracy ${second.testAccuracy} is far above chance (0.1)`);
  for (const s of result) {
    assert.ok(s.selected < TRAIN && s.selected > 0, `epoch ${s.epoch} selected ${s.selected} of ${TRAIN}`);
    assert.equal(s.datasetSize, TRAIN);
    // The plan's figure: every sample has the same size here, so the selected
    // bytes are exactly the selected share of the dataset.
    const datasetBytes = s.datasetBytesTotal / (s.epoch + 1);
    assert.equal(s.selectedBytes, (s.selected * datasetBytes) / TRAIN);
    // The measured figure: what the loader received from storage for the
    // epoch (one rank, one loader). Every selected byte, plus at most the
    // 5 % waste bound of bytes merged across pruned samples, never the dataset.
    const received = s.loaderBytesReceived;
    assert.ok(received !== undefined, 'the loader reported what it read');
    assert.ok(
      received >= s.selectedBytes && received <= s.selectedBytes * 1.05,
      `epoch ${s.epoch}: loader read ${received} for ${s.selectedBytes} selected bytes`,
    );
    epochReceived += received;
    assert.equal(s.samples, s.selected, 'one rank trains on every selected example once');
    assert.ok(
      s.steps === Math.ceil(s.selected / 32),
      `steps ${s.steps} follow the subset size ${s.selected}`,
    );
    assert.ok(s.meanWeight > 0 && s.maxWeight >= s.meanWeight);
  }
  // The per-epoch figures add up to the storage request log of the run (no
  // faults, so every GET's bytes arrived): measured, not derived from the plan.
  const logged = requests.slice(requestsBefore).reduce((sum, r) => sum + (r.end - r.start), 0);
  assert.equal(epochReceived, logged, 'loader-reported bytes = bytes of the storage GETs');
  assert.ok(second.selected < first.selected, 'the pruning schedule prunes more in the last epoch');
  assert.ok(second.lr < first.lr, 'the learning rate anneals');
  assert.equal(second.totalStepsEstimate, first.steps + second.steps, 'the last epoch knows the exact total');
  const job = await describeJob('learn');
  assert.ok(
    job.scoredExamples >= first.selected,
    `scored ${job.scoredExamples} >= selected in epoch 0 ${first.selected}`,
  );
});

test('a run stopped mid-epoch resumes from its checkpoint at the cursor', async () => {
  await createJob('resume', 1, 0.3);
  const checkpointDir = join(tmp.dir, 'ckpt');
  const controller = new AbortController();
  const seenFirst: number[] = [];
  await assert.rejects(
    runTraining(
      {
        ...baseOptions('resume'),
        epochs: 1,
        eval: undefined,
        checkpointDir,
        checkpointEveryBatches: 4,
        signal: controller.signal,
      },
      {
        onBatch: (p) => {
          seenFirst.push(p.done);
          if (p.done === 6) controller.abort();
        },
      },
    ),
    (err: unknown) => isSadpError(err, 'SADP_CANCELLED'),
  );
  assert.deepEqual(seenFirst, [1, 2, 3, 4, 5, 6]);
  const saved = await readCheckpoint(checkpointDir, 0);
  assert.ok(saved, 'a checkpoint was written when the run stopped');
  assert.equal(saved.meta.epoch, 0);
  assert.equal(saved.meta.cursor, 6);
  assert.equal(saved.meta.step, 6);

  const resumedAt: number[] = [];
  const seenSecond: number[] = [];
  const [summary] = await runTraining(
    { ...baseOptions('resume'), epochs: 1, eval: undefined, checkpointDir, checkpointEveryBatches: 4 },
    {
      onResume: (meta) => resumedAt.push(meta.cursor),
      onBatch: (p) => seenSecond.push(p.done),
    },
  );
  assert.deepEqual(resumedAt, [6]);
  assert.ok(summary);
  assert.equal(seenSecond[0], 7, 'the resumed run starts at batch 7');
  assert.deepEqual(
    seenSecond,
    Array.from({ length: summary.steps - 6 }, (_, i) => i + 7),
  );
  assert.equal(summary.resumedAt, 6);
  assert.equal(summary.step, summary.steps, 'optimizer steps continue across the restart');
  assert.equal(summary.samples, summary.selected, 'the epoch summary covers both runs');
  const job = await describeJob('resume');
  assert.equal(
    job.scoredExamples,
    summary.selected,
    'every selected example was scored exactly across the restart',
  );
  // The checkpoint restores weights, Adam moments and the epoch's running
  // sums: an uninterrupted run of an identical job (same seed, so the same
  // plan and order) ends at the same loss.
  await createJob('straight', 1, 0.3);
  const [straight] = await runTraining({ ...baseOptions('straight'), epochs: 1, eval: undefined });
  assert.ok(straight);
  assert.equal(straight.selected, summary.selected);
  assert.ok(
    Math.abs(straight.loss - summary.loss) <= 1e-4 * straight.loss,
    `resumed loss ${summary.loss} equals uninterrupted ${straight.loss}`,
  );
  const end = await readCheckpoint(checkpointDir, 0);
  assert.equal(end?.meta.epoch, 1, 'the final checkpoint points past the finished epoch');
  assert.equal(end?.meta.cursor, 0);

  // A different job with the same checkpoint directory is refused, not resumed.
  await createJob('other', 1, 0.3);
  await assert.rejects(
    runTraining({ ...baseOptions('other'), epochs: 1, eval: undefined, checkpointDir }),
    (err: unknown) =>
      isSadpError(err, 'SADP_CHECKPOINT_MISMATCH') && /job 'resume' vs 'other'/.test(err.message),
  );
});

test('the client rides through a real loader restart: every batch once, every score durable', async (t) => {
  await createJob('restart', 1, 0.3);
  // Outside the ephemeral range, so no outgoing connection takes the port while it is free.
  const first = await createLoaderServer({
    scorerAddress: scorer.address,
    s3: tmp.s3Options,
    port: await freePort(),
  });
  let second: LoaderServer | undefined;
  t.after(async () => {
    await first.close(500);
    await second?.close(500);
  });
  const client = createLoaderClient({
    address: first.address,
    reconnect: { baseDelayMs: 50, maxDelayMs: 500 },
  });
  t.after(() => client.close());
  const stream = client.epoch({ job: 'restart', epoch: 0, rank: 0, worldSize: 1, batchSize: 16 });
  const seen: number[] = [];
  const ids = new Set<number>();
  let restarted: Promise<void> | undefined;
  for await (const batch of stream) {
    seen.push(batch.index);
    batch.ids.forEach((id) => ids.add(id));
    await batch.ack({
      scores: Array.from(batch.ids, (id) => 1 + (id % 7)),
      losses: Array.from(batch.ids, () => 0.5),
    });
    if (batch.index === 5) {
      // Graceful shutdown (drain, commit, UNAVAILABLE), then a new process on the same port.
      restarted = first.close(5_000).then(async () => {
        second = await createLoaderServer({
          scorerAddress: scorer.address,
          s3: tmp.s3Options,
          port: first.port,
        });
      });
    }
  }
  await restarted;
  const steps = stream.info!.steps;
  assert.deepEqual(
    seen,
    Array.from({ length: steps }, (_, i) => i),
  );
  assert.equal(ids.size, stream.info!.selectedCount);
  assert.ok(stream.stats.reopens >= 1, 'the stream was reopened on the new loader');
  assert.ok(second, 'the second loader served the rest of the epoch');
  const job = await describeJob('restart');
  assert.equal(job.scoredExamples, stream.info!.selectedCount, 'no acknowledged score was lost');
});
