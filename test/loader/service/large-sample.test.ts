// A sample larger than gRPC's default 4 MiB receive limit reaches clients
// that keep that default: the loader splits it across parts of at most its
// 3 MiB cap, a plain grpc-js client decodes every message, and the trainer
// SDK hands the sample over whole; with the GETs on the server's thread and
// in a read thread (readerOptions.threads).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLoaderServer, type LoaderServer } from '../../../loader/index.js';
import { buildShards, type SampleSource } from '../../../loader/shards/index.js';
import { LoaderClient, pb, ScorerClient, type sadp } from '../../../proto/index.js';
import { createScorerServer, type ScorerServer } from '../../../scorer/index.js';
import { createLoaderClient } from '../../../trainer/client/index.js';
import { startTempS3, type TempS3 } from '../../helpers/temp-s3.js';
import { unary } from './helpers.js';

const MiB = 1024 * 1024;
const COUNT = 6;
const BIG = new Set([2, 4]);
/** Deterministic member bytes: sample 2 and 4 are 6 MiB, the others 1 KiB. */
function payload(id: number): Buffer {
  const size = BIG.has(id) ? 6 * MiB : 1024;
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 32) createHash('sha256').update(`${id}:${i}`).digest().copy(out, i);
  return out;
}
const digest = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let s3: TempS3;
let scorer: ScorerServer;
/** By read threads: 0 (GET + cut on the server's thread) and 1. */
const loaders = new Map<number, LoaderServer>();
let jobId: string;
const expected = new Map<number, string>();

before(async () => {
  s3 = await startTempS3({ prefix: 'sadp-large-', buckets: ['big'] });
  const source: SampleSource = {
    name: 'large-samples',
    *samples() {
      for (let id = 0; id < COUNT; id++) {
        const bin = payload(id);
        expected.set(id, digest(bin));
        yield { key: `s${id}`, members: [{ ext: 'bin', data: bin }] };
      }
    },
  };
  await buildShards(source, { out: 's3://big/ds', client: s3.client, shardBytes: 8 * MiB });
  scorer = await createScorerServer({ host: '127.0.0.1', port: 0, stateUrl: join(s3.dir, 'scorer') });
  for (const threads of [0, 1]) {
    loaders.set(
      threads,
      await createLoaderServer({
        scorerAddress: scorer.address,
        s3: s3.s3Options,
        readerOptions: { threads },
      }),
    );
  }
  const scorerClient = new ScorerClient(scorer.address, grpc.credentials.createInsecure());
  jobId = 'large';
  await unary<sadp.v1.Job>((cb) =>
    scorerClient.createJob(
      pb.CreateJobRequest.create({
        spec: pb.JobSpec.create({
          jobId,
          datasetSize: COUNT,
          policy: pb.Policy.POLICY_FULL,
          epochs: 1,
          seed: 5,
          datasetUrl: 's3://big/ds/manifest.json',
        }),
      }),
      cb,
    ),
  );
  scorerClient.close();
});

after(async () => {
  await Promise.all([...loaders.values()].map((l) => l.close(500)));
  await scorer?.close(500);
  await s3?.close();
});

const titled = (title: string, threads: number): string =>
  threads === 0 ? title : `${title} (${threads} read thread)`;

for (const threads of [0, 1])
  test(
    titled(
      'a plain grpc-js client with the default 4 MiB limit receives every message of 6 MiB samples',
      threads,
    ),
    async () => {
      const loader = loaders.get(threads) as LoaderServer;
      // No channel options: grpc-js' own default receive limit (4 MiB).
      const client = new LoaderClient(loader.address, grpc.credentials.createInsecure());
      try {
        const call = client.streamEpoch();
        const sizes: number[] = [];
        const received = new Map<number, Buffer[]>();
        let last = -1;
        const status = await new Promise<grpc.StatusObject>((resolve) => {
          call.on('data', (m: sadp.v1.StreamEpochResponse) => {
            const part = m.batch;
            if (!part) return;
            sizes.push(pb.StreamEpochResponse.encode(m).finish().byteLength);
            for (const s of part.samples ?? []) {
              const id = s.id ?? 0;
              if (!s.continued) last = id;
              assert.equal(id, last, 'a continuation follows its sample');
              const chunks = received.get(id) ?? [];
              chunks.push(Buffer.from(s.fields?.bin ?? new Uint8Array(0)));
              received.set(id, chunks);
            }
            if ((part.part ?? 0) === (part.parts ?? 1) - 1) call.write({ ack: { index: part.index ?? 0 } });
          });
          call.on('error', () => undefined);
          call.on('status', resolve);
          call.write({ open: { jobId, epoch: 0, rank: 0, worldSize: 1, batchSize: 4 } });
        });
        assert.equal(status.code, grpc.status.OK, status.details);
        assert.equal(received.size, COUNT);
        for (const [id, chunks] of received)
          assert.equal(digest(Buffer.concat(chunks)), expected.get(id), `sample ${id}`);
        assert.ok(Math.max(...sizes) <= 3 * MiB, `largest message ${Math.max(...sizes)} bytes`);
      } finally {
        client.close();
      }
    },
  );

for (const threads of [0, 1])
  test(titled('the trainer SDK with a 4 MiB receive limit gets 6 MiB samples whole', threads), async () => {
    const loader = loaders.get(threads) as LoaderServer;
    const client = createLoaderClient({ address: loader.address, maxReceiveMessageBytes: 4 * MiB });
    try {
      const got = new Map<number, string>();
      for await (const batch of client.epoch({ job: jobId, epoch: 0, rank: 0, worldSize: 1, batchSize: 4 })) {
        batch.ids.forEach((id, j) => got.set(id, digest(batch.fields.bin![j]!)));
        await batch.ack();
      }
      assert.deepEqual(got, expected);
    } finally {
      client.close();
    }
  });
