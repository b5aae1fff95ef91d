// End-to-end benchmark of the loader service.
//
//   npm run bench:loader [-- --quick]
//
// Synthetic ImageNet-shaped shards (lognormal .jpg sizes plus .cls) in an
// embedded S3 server running in a child process behind a proxy that adds a
// first-byte latency to every request (S3 is not loopback). The real scorer
// and loader services run in this process; four trainer ranks use the real
// trainer SDK, ack every batch with a score, and go straight to the next
// epoch (no compute), so the numbers are the loader's own ceiling. For each
// shuffle mode (`global`, `shard-block`) and each SADP epoch: samples/s,
// MB/s, GETs, bytes requested / bytes of the selected samples, the fraction
// of the dataset's bytes never fetched, and the boundary stall each rank saw
// (its last ack of epoch k to its first batch of epoch k+1).
//
// Writes bench/results/loader.json.
import { fork } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { packageRoot } from '../common/paths.js';
import { createLoaderServer, type ShuffleMode } from '../loader/index.js';
import { buildShards, syntheticSource } from '../loader/shards/index.js';
import { pb, ScorerClient, type sadp } from '../proto/index.js';
import { createScorerServer } from '../scorer/index.js';
import { createS3Client, startEmbeddedS3, type S3Options } from '../storage/index.js';
import { createLoaderClient } from '../trainer/client/index.js';
import { startFaultProxy } from '../test/helpers/s3-fault-proxy.js';

const BUCKET = 'bench';
const WORLD = 4;

interface Config {
  samples: number;
  meanBytes: number;
  shardBytes: number;
  batchSize: number;
  epochs: number;
  pruneRatio: number;
  latencyMs: number;
}

const QUICK: Config = {
  samples: 2_000,
  meanBytes: 20_000,
  shardBytes: 2 * 1024 * 1024,
  batchSize: 32,
  epochs: 2,
  pruneRatio: 0.5,
  latencyMs: 5,
};
const FULL: Config = {
  samples: 12_000,
  meanBytes: 40_000,
  shardBytes: 8 * 1024 * 1024,
  batchSize: 64,
  epochs: 3,
  pruneRatio: 0.5,
  latencyMs: 10,
};

interface EpochResult {
  shuffle: ShuffleMode;
  epoch: number;
  seconds: number;
  selected: number;
  samplesDelivered: number;
  samplesPerSecond: number;
  megabytesPerSecond: number;
  gets: number;
  bytesRequested: number;
  selectedBytes: number;
  /** bytes requested / bytes of the selected samples (1.0 = nothing extra). */
  bytesRatio: number;
  /** Dataset bytes not fetched this epoch / dataset bytes. */
  neverFetchedFraction: number;
  /** Per rank: last ack of the previous epoch -> first batch of this one (ms); empty for epoch 0. */
  boundaryStallMs: number[];
}

// ---------------------------------------------------------------- S3 in a child process

interface ServerInfo {
  endpoint: string;
  shapedEndpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

async function serveS3(dataDir: string, latencyMs: number): Promise<void> {
  const s3 = await startEmbeddedS3({ dataDir, buckets: [BUCKET] });
  const proxy = await startFaultProxy({
    target: s3.endpoint,
    rules: [{ fault: 'latency', latencyMs, method: '*', path: /./ }],
  });
  process.send?.({
    endpoint: s3.endpoint,
    shapedEndpoint: proxy.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
  } satisfies ServerInfo);
  process.once('disconnect', () => {
    void proxy
      .close()
      .then(() => s3.close())
      .finally(() => process.exit(0));
  });
}

async function startChildS3(
  dataDir: string,
  latencyMs: number,
): Promise<ServerInfo & { stop(): Promise<void> }> {
  const child = fork(fileURLToPath(import.meta.url), ['--s3-server', dataDir, String(latencyMs)], {
    stdio: 'inherit',
  });
  const info = await new Promise<ServerInfo>((resolve, reject) => {
    child.once('message', (m) => resolve(m as ServerInfo));
    child.once('exit', (code) => reject(new Error(`embedded S3 child exited with ${code}`)));
  });
  return {
    ...info,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

// ---------------------------------------------------------------- the run

function unary<T>(start: (cb: grpc.requestCallback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, res) => (err || res === undefined ? reject(err ?? new Error('empty')) : resolve(res)));
  });
}

async function runShuffle(
  shuffle: ShuffleMode,
  config: Config,
  scorerAddress: string,
  scorer: ScorerClient,
  s3: S3Options,
  manifestUrl: string,
  log: (line: string) => void,
): Promise<EpochResult[]> {
  const jobId = `bench-${shuffle}-${Date.now()}`;
  await unary<sadp.v1.Job>((cb) =>
    scorer.createJob(
      pb.CreateJobRequest.create({
        spec: pb.JobSpec.create({
          jobId,
          datasetSize: config.samples,
          policy: pb.Policy.POLICY_SADP,
          pruneRatio: config.pruneRatio,
          epochs: config.epochs,
          seed: 2024,
          datasetUrl: manifestUrl,
        }),
      }),
      cb,
    ),
  );
  const loader = await createLoaderServer({ scorerAddress, s3, shuffle });
  const clients = [...Array(WORLD).keys()].map(() => createLoaderClient({ address: loader.address }));
  const lastAckAt = new Array<number>(WORLD).fill(0);
  const results: EpochResult[] = [];
  try {
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      const before = loader.stats();
      const started = performance.now();
      const stalls: number[] = [];
      let info: { selectedCount: number; selectedBytes: number; datasetBytes: number } | undefined;
      const delivered = await Promise.all(
        clients.map(async (client, rank) => {
          let n = 0;
          let first = true;
          const stream = client.epoch({
            job: jobId,
            epoch,
            rank,
            worldSize: WORLD,
            batchSize: config.batchSize,
          });
          for await (const batch of stream) {
            if (first && epoch > 0) stalls.push(performance.now() - (lastAckAt[rank] as number));
            first = false;
            info ??= batch.info;
            n += batch.size;
            await batch.ack({ scores: Array.from(batch.ids, (id) => 0.1 + (id % 97) / 10) });
            lastAckAt[rank] = performance.now();
          }
          return n;
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const after = loader.stats();
      const bytesRequested = after.io.bytesRequested - before.io.bytesRequested;
      const selectedBytes = info?.selectedBytes ?? 0;
      const samplesDelivered = delivered.reduce((a, b) => a + b, 0);
      const r: EpochResult = {
        shuffle,
        epoch,
        seconds,
        selected: info?.selectedCount ?? 0,
        samplesDelivered,
        samplesPerSecond: samplesDelivered / seconds,
        megabytesPerSecond: (after.io.bytesDelivered - before.io.bytesDelivered) / 1e6 / seconds,
        gets: after.io.requests - before.io.requests,
        bytesRequested,
        selectedBytes,
        bytesRatio: selectedBytes > 0 ? bytesRequested / selectedBytes : 0,
        neverFetchedFraction: info ? 1 - selectedBytes / info.datasetBytes : 0,
        boundaryStallMs: stalls.map((s) => Math.round(s * 10) / 10),
      };
      results.push(r);
      log(
        `${shuffle.padEnd(11)} epoch ${epoch}: ${r.selected} selected, ${r.samplesPerSecond.toFixed(0)} samples/s, ` +
          `${r.megabytesPerSecond.toFixed(1)} MB/s, ${r.gets} GETs, bytes ratio ${r.bytesRatio.toFixed(3)}, ` +
          `never fetched ${(100 * r.neverFetchedFraction).toFixed(1)} %` +
          (stalls.length > 0 ? `, boundary stall ${r.boundaryStallMs.join('/')} ms` : ''),
      );
    }
  } finally {
    for (const c of clients) c.close();
    await loader.close(1_000);
  }
  return results;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const config = quick ? QUICK : FULL;
  const started = Date.now();
  const log = (line: string): void =>
    console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-loader-'));
  const server = await startChildS3(join(dir, 's3'), config.latencyMs);
  try {
    const direct: S3Options = {
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
    };
    const client = createS3Client(direct);
    log(
      `writing ${config.samples} samples (mean ${config.meanBytes} B) in ${config.shardBytes / 2 ** 20} MiB shards`,
    );
    await buildShards(syntheticSource({ count: config.samples, meanBytes: config.meanBytes }), {
      out: `s3://${BUCKET}/ds`,
      client,
      shardBytes: config.shardBytes,
      onProgress: (p) => {
        if (p.samples % 1000 === 0) log(`  ${p.samples}/${p.total ?? '?'} samples, ${p.shards} shards`);
      },
    });
    client.destroy();
    const scorer = await createScorerServer({ host: '127.0.0.1', port: 0, stateUrl: join(dir, 'scorer') });
    const scorerClient = new ScorerClient(scorer.address, grpc.credentials.createInsecure());
    const results: EpochResult[] = [];
    try {
      for (const shuffle of ['global', 'shard-block'] as const) {
        results.push(
          ...(await runShuffle(
            shuffle,
            config,
            scorer.address,
            scorerClient,
            { ...direct, endpoint: server.shapedEndpoint },
            `s3://${BUCKET}/ds/manifest.json`,
            log,
          )),
        );
      }
    } finally {
      scorerClient.close();
      await scorer.close(500);
    }
    const out = join(packageRoot, 'bench/results/loader.json');
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      JSON.stringify(
        {
          bench: 'loader',
          quick,
          config: { ...config, world: WORLD },
          machine: { cpus: cpus().length, loadavg: loadavg() },
          setup:
            'embedded s3rver in a child process behind a latency proxy; scorer, loader and 4 SDK ranks in this process; no trainer compute',
          results,
        },
        null,
        2,
      ) + '\n',
    );
    log(`wrote ${out}`);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const serverAt = process.argv.indexOf('--s3-server');
if (serverAt >= 0) {
  const [dataDir, latencyMs] = process.argv.slice(serverAt + 1);
  await serveS3(dataDir as string, Number(latencyMs));
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
