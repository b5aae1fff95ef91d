// kill -9 of a service mid-epoch, end to end with real processes: the
// embedded S3 server (`sadp s3 serve`), the scorer (`sadp scorer`, state in a
// local directory) and the loader (`sadp loader`) each run as a child
// process; four trainer ranks in this process iterate a multi-epoch SADP job
// through the client SDK. At seeded points of an epoch one service gets
// SIGKILL and is started again on the same port and state after a seeded
// pause; the SDK reconnects on its own. Each epoch must deliver exactly its
// plan, every plan must be the one the acknowledged scores determine, and
// every acknowledged score must be in the scorer's state store.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createScorerClient, type ScorerClient } from '../../scorer/index.js';
import { buildShards, openDataset, syntheticSource, type Dataset } from '../../loader/shards/index.js';
import { createS3Client, openStore, type ObjectStore, type S3Client } from '../../storage/index.js';
import { createLoaderClient, type Batch, type LoaderClient } from '../../trainer/client/index.js';
import { startService, type ServiceProcess } from '../helpers/processes.js';
import {
  ScoreLedger,
  buildOracle,
  checkEpoch,
  compareScores,
  createJob,
  epochClean,
  expectedPlanDigest,
  readDurableScores,
  runEpoch,
  servedPlan,
  sleep,
  type EpochCheck,
  type JobParams,
  type Oracle,
  type ScoreCheck,
} from './stack.js';
import { mulberry32 } from '../helpers/random.js';

export type KillTarget = 'loader' | 'scorer' | 's3';
export const KILL_TARGETS: readonly KillTarget[] = ['loader', 'scorer', 's3'];

const BUCKET = 'reliability';
/** s3rver's fixed credentials (it checks the key id only). */
const S3_KEY = 'S3RVER';

export interface KillEnvOptions {
  /**
   * Where the scorer keeps its state: a local directory (default), or a
   * prefix on the embedded S3 server (as in Kubernetes), so that killing S3
   * also fails the scorer's writes.
   */
  scorerState?: 'local' | 's3';
  samples?: number;
  meanBytes?: number;
  shardBytes?: number;
}

/** A service that can be killed and started again on the same port. */
interface Restartable {
  current: ServiceProcess;
  start(): Promise<ServiceProcess>;
}

export interface KillEnv {
  dir: string;
  samples: number;
  manifestUrl: string;
  dataset: Dataset;
  oracle: Oracle;
  s3: Restartable;
  scorer: Restartable;
  loader: Restartable;
  s3Endpoint: string;
  scorerAddress: string;
  loaderAddress: string;
  /** The scorer's state (a directory or s3:// URL) and a store to read it. */
  stateUrl: string;
  stateStore(): ObjectStore;
  scorerClient: ScorerClient;
  /** Stops the loader and the scorer (SIGTERM); S3 and the state stay for a final read. */
  stop(): Promise<void>;
  /** Stops S3 and removes the temp directory. */
  remove(): Promise<void>;
}

async function restartable(args: (port: number) => string[]): Promise<Restartable> {
  const first = await startService({ args: args(0) });
  const port = first.port;
  const r: Restartable = {
    current: first,
    async start() {
      r.current = await startService({ args: args(port) });
      return r.current;
    },
  };
  return r;
}

export async function startKillEnv(options: KillEnvOptions = {}): Promise<KillEnv> {
  const samples = options.samples ?? 600;
  const dir = await mkdtemp(join(tmpdir(), 'sadp-kill-'));
  const stateDir = join(dir, 'scorer-state');
  await mkdir(stateDir, { recursive: true });
  const stateUrl = options.scorerState === 's3' ? `s3://${BUCKET}/scorer-state` : stateDir;
  const s3 = await restartable((port) => [
    's3',
    'serve',
    '--data-dir',
    join(dir, 's3'),
    '--port',
    String(port),
    '--bucket',
    BUCKET,
  ]);
  const s3Endpoint = String(s3.current.listening.endpoint);
  let client: S3Client | undefined;
  let scorer: Restartable | undefined;
  let loader: Restartable | undefined;
  try {
    client = createS3Client({
      endpoint: s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: S3_KEY,
      secretAccessKey: S3_KEY,
    });
    const manifestUrl = `s3://${BUCKET}/ds/manifest.json`;
    await buildShards(
      syntheticSource({ count: samples, meanBytes: options.meanBytes ?? 2_000, seed: 21, classes: 10 }),
      { out: `s3://${BUCKET}/ds`, client, shardBytes: options.shardBytes ?? 48 * 1024 },
    );
    const dataset = await openDataset(manifestUrl, { client });
    const oracle = await buildOracle(dataset);
    const s3Flags = ['--endpoint', s3Endpoint, '--access-key-id', S3_KEY, '--secret-access-key', S3_KEY];
    scorer = await restartable((port) => [
      'scorer',
      '--listen',
      `127.0.0.1:${port}`,
      '--state',
      stateUrl,
      ...(options.scorerState === 's3' ? s3Flags : []),
      '--log-level',
      'warn',
    ]);
    const scorerAddress = `127.0.0.1:${scorer.current.port}`;
    loader = await restartable((port) => [
      'loader',
      '--listen',
      `127.0.0.1:${port}`,
      '--scorer',
      scorerAddress,
      ...s3Flags,
      '--log-level',
      'warn',
    ]);
    const loaderAddress = `127.0.0.1:${loader.current.port}`;
    const scorerClient = createScorerClient({ address: scorerAddress });
    const all = { s3, scorer, loader };
    const c = client;
    return {
      dir,
      samples,
      manifestUrl,
      dataset,
      oracle,
      ...all,
      s3Endpoint,
      scorerAddress,
      loaderAddress,
      stateUrl,
      stateStore: () =>
        openStore(stateUrl, {
          s3: {
            endpoint: s3Endpoint,
            region: 'us-east-1',
            forcePathStyle: true,
            accessKeyId: S3_KEY,
            secretAccessKey: S3_KEY,
          },
        }),
      scorerClient,
      async stop() {
        scorerClient.close();
        await all.loader.current.stop();
        await all.scorer.current.stop();
      },
      async remove() {
        c.destroy();
        await all.loader.current.kill();
        await all.scorer.current.kill();
        await all.s3.current.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    client?.destroy();
    await loader?.current.kill();
    await scorer?.current.kill();
    await s3.current.kill();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface KillRunOptions {
  target: KillTarget;
  seed: number;
  /** Kills in the run, at seeded points; default 1. */
  kills?: number;
  epochs?: number;
  world?: number;
  batchSize?: number;
  pruneRatio?: number;
  /** Longest seeded pause between the kill and the restart; default 1,000 ms. */
  maxDownMs?: number;
}

export interface KillPoint {
  epoch: number;
  /** Kill once this many batches of the epoch (over all ranks) were yielded. */
  atBatch: number;
  downMs: number;
  /** What actually happened. */
  firedAtMs?: number;
  restartMs?: number;
}

export interface KillRunResult {
  target: KillTarget;
  seed: number;
  jobId: string;
  kills: KillPoint[];
  epochs: Array<EpochCheck & { reopens: number; planDigestOk: boolean }>;
  scores: ScoreCheck;
  /** Every epoch clean, every plan as expected, no score lost. */
  ok: boolean;
  durationMs: number;
}

/** Ledgers of completed runs, to re-check once the scorer is stopped. */
export interface RunRecord {
  jobId: string;
  ledger: ScoreLedger;
}

export async function runKillScenario(
  env: KillEnv,
  o: KillRunOptions,
): Promise<{ result: KillRunResult; record: RunRecord }> {
  const started = performance.now();
  const rand = mulberry32(o.seed * 7919 + KILL_TARGETS.indexOf(o.target));
  const epochs = o.epochs ?? 3;
  const world = o.world ?? 4;
  const batchSize = o.batchSize ?? 8;
  const params: JobParams = {
    jobId: `kill-${o.target}-${o.seed}-${process.pid}`,
    datasetSize: env.samples,
    policy: 'sadp',
    pruneRatio: o.pruneRatio ?? 0.4,
    epochs,
    seed: o.seed,
    datasetUrl: env.manifestUrl,
  };
  const job = await createJob(env.scorerClient, params);
  const kills: KillPoint[] = [...Array(o.kills ?? 1).keys()]
    .map(() => ({
      epoch: Math.floor(rand() * epochs),
      fraction: 0.05 + 0.9 * rand(),
      downMs: Math.floor(rand() * (o.maxDownMs ?? 1_000)),
    }))
    .sort((a, b) => a.epoch - b.epoch || a.fraction - b.fraction)
    .map(({ epoch, fraction, downMs }) => ({ epoch, atBatch: fraction, downMs }));
  const service = env[o.target];
  let killing: Promise<void> = Promise.resolve();
  // A restart that fails is kept here (not left as an unhandled rejection) and thrown at the next wait.
  let restartError: Error | undefined;
  const settled = async (): Promise<void> => {
    await killing;
    if (restartError !== undefined) throw restartError;
  };
  let nextKill = 0;
  const killNow = (point: KillPoint): void => {
    const t0 = performance.now();
    point.firedAtMs = t0 - started;
    killing = killing
      .then(async () => {
        if (restartError !== undefined) return;
        await service.current.kill();
        await sleep(point.downMs);
        const t1 = performance.now();
        await service.start();
        point.restartMs = performance.now() - t1;
      })
      .catch((err: unknown) => {
        restartError ??= err instanceof Error ? err : new Error(String(err));
      });
  };

  const clients: LoaderClient[] = [...Array(world).keys()].map(() =>
    createLoaderClient({ address: env.loaderAddress }),
  );
  const ledger = new ScoreLedger(env.samples);
  const results: KillRunResult['epochs'] = [];
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const expectedDigest = expectedPlanDigest(job, params, epoch, ledger);
      let yielded = 0;
      const onBatch = (batch: Batch): void => {
        yielded++;
        const point = kills[nextKill];
        if (!point || point.epoch !== epoch) return;
        // atBatch holds the fraction until the epoch's size is known.
        const at = Math.max(1, Math.ceil(point.atBatch * batch.info.steps * world));
        if (yielded >= at) {
          point.atBatch = at;
          nextKill++;
          killNow(point);
        }
      };
      const ranks = await runEpoch(
        { job: params.jobId, epoch, worldSize: world, batchSize, oracle: env.oracle, onBatch },
        clients,
      );
      // A kill point not reached (the epoch was shorter than the fraction implies) fires at its end.
      while (kills[nextKill]?.epoch === epoch) {
        const point = kills[nextKill++] as KillPoint;
        point.atBatch = yielded;
        killNow(point);
      }
      await settled();
      const segments = ranks.map((r) => [r]);
      ledger.recordEpoch(epoch, segments);
      const plan = await servedPlan(env.scorerClient, params.jobId, epoch);
      results.push({
        ...checkEpoch(segments, plan),
        reopens: ranks.reduce((n, r) => n + r.reopens, 0),
        planDigestOk: plan.digest === expectedDigest,
      });
    }
  } finally {
    for (const c of clients) c.close();
    await killing;
  }
  await settled();
  const scores = compareScores(ledger, await readDurableScoresRetrying(env, params.jobId));
  const ok =
    results.every((e) => epochClean(e) && e.planDigestOk) && scores.lost === 0 && scores.unexpected === 0;
  return {
    result: {
      target: o.target,
      seed: o.seed,
      jobId: params.jobId,
      kills,
      epochs: results,
      scores,
      ok,
      durationMs: performance.now() - started,
    },
    record: { jobId: params.jobId, ledger },
  };
}

/**
 * Reads a job's durable scores while the scorer runs. A compaction of the
 * job may delete a log between the listing and the read: read again.
 */
export async function readDurableScoresRetrying(env: KillEnv, jobId: string) {
  const store = env.stateStore();
  for (let attempt = 1; ; attempt++) {
    try {
      return await readDurableScores(store, jobId);
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(200);
    }
  }
}

/** After env.stop(): every run's scores, read from the state a clean shutdown left. */
export async function verifyAfterStop(env: KillEnv, records: RunRecord[]): Promise<ScoreCheck[]> {
  const store = env.stateStore();
  const out: ScoreCheck[] = [];
  for (const r of records) out.push(compareScores(r.ledger, await readDurableScores(store, r.jobId)));
  return out;
}
