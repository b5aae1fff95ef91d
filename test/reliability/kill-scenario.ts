// kill -9 of a service mid-epoch, end to end with real processes: the
// embedded S3 server (`sadp s3 serve`), the scorer (`sadp scorer`, state in a
// local directory) and the loader (`sadp loader`) each run as a child
// process; four trainer ranks in this process iterate a multi-epoch SADP job
// through the client SDK. At seeded points of an epoch one service gets
// SIGKILL and is started again on the same port and state after a seeded
// pause; the SDK reconnects on its own. Each epoch must deliver exactly its
// plan, every plan must be the one the acknowledged scores determine, and
// every acknowledged score must be in the scorer's state store.
//
// "Seeded points" are event counts, never wall-clock sleeps: the n-th batch
// yielded to a rank, or the n-th ack written (the loader is then receiving
// scores), with n and the kind drawn from the seed. The loader and the scorer
// can be killed together, and a kill can wait for a score report proven in
// flight: the scorer's write-ahead-log PUT held at a fault proxy in front of
// its state store (accepted by the scorer, not yet durable nor answered).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createScorerClient, type ScorerClient } from '../../scorer/index.js';
import { buildShards, openDataset, syntheticSource, type Dataset } from '../../loader/shards/index.js';
import { createS3Client, openStore, type ObjectStore, type S3Client } from '../../storage/index.js';
import { createLoaderClient, type Batch, type LoaderClient } from '../../trainer/client/index.js';
import { startService, type ServiceProcess } from '../helpers/processes.js';
import { startFaultProxy, type FaultProxy } from '../helpers/s3-fault-proxy.js';
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
  runRank,
  servedPlan,
  sleep,
  type EpochCheck,
  type JobParams,
  type Oracle,
  type RankOutcome,
  type ScoreCheck,
} from './stack.js';
import { mulberry32 } from '../helpers/random.js';
import { freePort } from '../helpers/ports.js';

/** Resumes of one rank in one epoch before the run counts as failed. */
const MAX_RESUMES = 3;

export type KillTarget = 'loader' | 'scorer' | 's3' | 'loader+scorer';
export const KILL_TARGETS: readonly KillTarget[] = ['loader', 'scorer', 's3', 'loader+scorer'];

/** What the kill point counts: batches yielded to ranks, or acks written. */
export type KillMoment = 'batch' | 'ack';

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
  /** Put a fault proxy between the scorer and its S3 state (needs scorerState 's3'). */
  stateProxy?: boolean;
  /** More `sadp loader` flags (e.g. --score-durable-timeout-ms). */
  loaderArgs?: string[];
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
  /** The proxy in front of the scorer's state store, when asked for. */
  stateProxy: FaultProxy | undefined;
  /** Stops the loader and the scorer (SIGTERM); S3 and the state stay for a final read. */
  stop(): Promise<void>;
  /** Stops S3 and removes the temp directory. */
  remove(): Promise<void>;
}

async function restartable(args: (port: number) => string[]): Promise<Restartable> {
  // A port the kernel never hands to an outgoing connection, so it is still free at the restart.
  const first = await startService({ args: args(await freePort()) });
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
  let stateProxy: FaultProxy | undefined;
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
    if (options.stateProxy) {
      if (options.scorerState !== 's3') throw new Error('stateProxy needs scorerState s3');
      stateProxy = await startFaultProxy({ target: s3Endpoint });
    }
    const stateFlags = ['--endpoint', stateProxy?.endpoint ?? s3Endpoint, ...s3Flags.slice(2)];
    scorer = await restartable((port) => [
      'scorer',
      '--listen',
      `127.0.0.1:${port}`,
      '--state',
      stateUrl,
      ...(options.scorerState === 's3' ? stateFlags : []),
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
      ...(options.loaderArgs ?? []),
      '--log-level',
      'warn',
    ]);
    const loaderAddress = `127.0.0.1:${loader.current.port}`;
    const scorerClient = createScorerClient({ address: scorerAddress });
    const all = { s3, scorer, loader };
    const c = client;
    const proxy = stateProxy;
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
      stateProxy,
      async stop() {
        scorerClient.close();
        await all.loader.current.stop();
        await all.scorer.current.stop();
      },
      async remove() {
        c.destroy();
        await all.loader.current.kill();
        await all.scorer.current.kill();
        await proxy?.close();
        await all.s3.current.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    client?.destroy();
    await stateProxy?.close();
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
  /** What the kill points count; default drawn from the seed for each point. */
  moment?: KillMoment;
  /**
   * Instead of counted points: one kill of the scorer while a score report
   * is in flight, i.e. the n-th (seeded, 1-2) write-ahead-log PUT of the job
   * is held at the state proxy. Needs startKillEnv({ stateProxy: true }).
   */
  reportInFlight?: boolean;
}

export interface KillPoint {
  epoch: number;
  /** What `atBatch` counts: batches yielded or acks written (over all ranks), or a held report. */
  moment: KillMoment | 'report-in-flight';
  /** Kill once this many events of the epoch (over all ranks) happened. */
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
  /** ranksResumed: rank iterations restarted from their cursor after the SDK gave up. */
  epochs: Array<EpochCheck & { reopens: number; ranksResumed: number; planDigestOk: boolean }>;
  scores: ScoreCheck;
  /** Every epoch clean, every plan as expected, no score lost. */
  ok: boolean;
  /** reportInFlight: the state PUT that was held when the scorer died. */
  heldReport?: string;
  durationMs: number;
}

/** Every epoch delivered exactly the plan, each plan reflects every acknowledged score, no score lost. */
export function assertExactlyThePlan(result: KillRunResult): void {
  result.epochs.forEach((e, epoch) => {
    assert.ok(epochClean(e), `epoch ${epoch}: ${JSON.stringify(e)}`);
    assert.ok(e.planDigestOk, `epoch ${epoch}: the plan reflects every acknowledged score`);
  });
  assert.ok(result.scores.acknowledged > 0);
  assert.equal(result.scores.lost, 0, result.scores.examples.join('; '));
  assert.equal(result.scores.unexpected, 0);
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
    jobId: `kill-${o.target.replace('+', '-and-')}-${o.seed}-${process.pid}`,
    datasetSize: env.samples,
    policy: 'sadp',
    pruneRatio: o.pruneRatio ?? 0.4,
    epochs,
    seed: o.seed,
    datasetUrl: env.manifestUrl,
  };
  const job = await createJob(env.scorerClient, params);
  const kills: KillPoint[] = o.reportInFlight
    ? []
    : [...Array(o.kills ?? 1).keys()]
        .map(() => ({
          epoch: Math.floor(rand() * epochs),
          fraction: 0.05 + 0.9 * rand(),
          downMs: Math.floor(rand() * (o.maxDownMs ?? 1_000)),
          moment: o.moment ?? (rand() < 0.5 ? ('batch' as const) : ('ack' as const)),
        }))
        .sort((a, b) => a.epoch - b.epoch || a.fraction - b.fraction)
        .map(({ epoch, fraction, downMs, moment }) => ({ epoch, moment, atBatch: fraction, downMs }));
  // Killed together: both die, then the scorer comes back before the loader.
  const services = o.target === 'loader+scorer' ? [env.scorer, env.loader] : [env[o.target]];
  const proxy = env.stateProxy;
  let heldReport: string | undefined;
  // The proxy's log is shared by every run of the env: look at this run's part.
  const logStart = proxy?.requestLog.length ?? 0;
  if (o.reportInFlight) {
    if (!proxy || o.target !== 'scorer')
      throw new Error('reportInFlight needs the state proxy and target scorer');
    // Held until its client goes away: the dead scorer's socket closes and
    // the proxy drops the request instead of forwarding it late.
    proxy.setRules([
      {
        fault: 'latency',
        latencyMs: 3_600_000,
        method: 'PUT',
        path: new RegExp(`^/${BUCKET}/scorer-state/jobs/${params.jobId}/log/`),
        nth: [1 + Math.floor(rand() * 2)],
        times: 1,
      },
    ]);
  }
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
        await Promise.all(services.map((svc) => svc.current.kill()));
        if (o.reportInFlight) proxy?.setRules([]);
        await sleep(point.downMs);
        const t1 = performance.now();
        for (const svc of services) await svc.start();
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
  let currentEpoch = 0;
  let events = 0;
  // reportInFlight: the held PUT is an event of the state proxy, so it is
  // polled for; the kill fires on the event, whenever it comes.
  const watcher = o.reportInFlight
    ? setInterval(() => {
        if (heldReport !== undefined) return;
        const held = proxy?.requestLog
          .slice(logStart)
          .find((r) => r.method === 'PUT' && r.faults.includes('latency') && r.path.includes(params.jobId));
        if (!held) return;
        heldReport = held.path;
        const point: KillPoint = {
          epoch: currentEpoch,
          moment: 'report-in-flight',
          atBatch: events,
          downMs: 0,
        };
        kills.push(point);
        killNow(point);
      }, 10)
    : undefined;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      currentEpoch = epoch;
      const expectedDigest = expectedPlanDigest(job, params, epoch, ledger);
      const counted: Record<KillMoment, number> = { batch: 0, ack: 0 };
      const onEvent =
        (moment: KillMoment) =>
        (batch: Batch): void => {
          events++;
          counted[moment]++;
          const point = kills[nextKill];
          if (o.reportInFlight || !point || point.epoch !== epoch || point.moment !== moment) return;
          // atBatch holds the fraction until the epoch's size is known.
          const at = Math.max(1, Math.ceil(point.atBatch * batch.info.steps * world));
          if (counted[moment] >= at) {
            point.atBatch = at;
            nextKill++;
            killNow(point);
          }
        };
      const ranks = await runEpoch(
        {
          job: params.jobId,
          epoch,
          worldSize: world,
          batchSize,
          oracle: env.oracle,
          onBatch: onEvent('batch'),
          onAcked: onEvent('ack'),
        },
        clients,
      );
      // A kill point not reached (the epoch was shorter than the fraction implies) fires at its end.
      while (!o.reportInFlight && kills[nextKill]?.epoch === epoch) {
        const point = kills[nextKill++] as KillPoint;
        point.atBatch = counted[point.moment as KillMoment];
        killNow(point);
      }
      await settled();
      // A rank whose SDK gave up (the service stayed down longer than its
      // reconnect budget, e.g. a slow restart on a loaded machine) failed
      // loudly with UNAVAILABLE; it resumes the way a trainer does from its
      // checkpoint, at its cursor and resending the scores not yet confirmed
      // durable. Nothing may be lost or repeated across that either.
      const segments: RankOutcome[][] = ranks.map((r) => [r]);
      let resumed = 0;
      for (const seg of segments) {
        for (let attempt = 0; attempt < MAX_RESUMES; attempt++) {
          const last = seg[seg.length - 1] as RankOutcome;
          if (last.error === undefined) break;
          resumed++;
          seg.push(
            await runRank({
              client: clients[last.rank] as LoaderClient,
              job: params.jobId,
              epoch,
              rank: last.rank,
              worldSize: world,
              batchSize,
              oracle: env.oracle,
              cursor: last.cursor,
              resendAcks: last.pending,
            }),
          );
        }
      }
      ledger.recordEpoch(epoch, segments);
      const plan = await servedPlan(env.scorerClient, params.jobId, epoch);
      results.push({
        ...checkEpoch(segments, plan),
        reopens: segments.flat().reduce((n, r) => n + r.reopens, 0),
        ranksResumed: resumed,
        planDigestOk: plan.digest === expectedDigest,
      });
    }
  } finally {
    if (watcher) clearInterval(watcher);
    if (o.reportInFlight) proxy?.setRules([]);
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
      ...(heldReport === undefined ? {} : { heldReport }),
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
