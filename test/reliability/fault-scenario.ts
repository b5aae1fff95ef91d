// Storage faults between the loader and S3, end to end: the fault-injecting
// proxy sits between an in-process loader and the embedded S3 server, four
// trainer ranks iterate an epoch through the client SDK, and each epoch is
// checked against the scorer's plan (exactly once, byte-identical to a
// direct read) with every acknowledged score durable at the scorer.
import { join } from 'node:path';
import type { LoaderServer } from '../../loader/index.js';
import type { RangeReaderOptions } from '../../loader/fetch/index.js';
import { openStore } from '../../storage/index.js';
import { createLoaderClient, LoaderCallError, type LoaderClient } from '../../trainer/client/index.js';
import {
  startFaultProxy,
  type FaultKind,
  type FaultProxy,
  type FaultRule,
} from '../helpers/s3-fault-proxy.js';
import { SAMPLES, startStack, type Stack } from '../loader/service/helpers.js';
import {
  ScoreLedger,
  buildOracle,
  checkEpoch,
  compareScores,
  describeError,
  readDurableScores,
  runEpoch,
  runRank,
  servedPlan,
  type EpochCheck,
  type Oracle,
  type RankOutcome,
  type ScoreCheck,
} from './stack.js';

/** Shard GETs only: manifest and index reads (job open) stay clean. */
export const SHARD_PATH = /\.tar(\?|$)/;
export const WORLD = 4;

export interface FaultEnvOptions {
  /** Range reader attempts per range; default 5 (the loader's default). */
  maxAttempts?: number;
  /**
   * Reader idle timeout (stalled bodies); default 10 s: far beyond what a busy
   * machine's queueing can cause, so only an injected stall trips it.
   */
  idleTimeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  proxySeed?: number;
}

export interface FaultEnv {
  stack: Stack;
  proxy: FaultProxy;
  loader: LoaderServer;
  oracle: Oracle;
  clients: LoaderClient[];
  readerOptions: RangeReaderOptions;
  close(): Promise<void>;
}

export async function startFaultEnv(options: FaultEnvOptions = {}): Promise<FaultEnv> {
  const stack = await startStack();
  const proxy = await startFaultProxy({ target: stack.s3.endpoint, seed: options.proxySeed ?? 1 });
  const readerOptions: RangeReaderOptions = {
    // One GET per run of selected samples: the fault counts assume no pruned bytes read.
    planner: 'ranges',
    gapBytes: 0,
    maxAttempts: options.maxAttempts ?? 5,
    baseDelayMs: options.baseDelayMs ?? 5,
    maxDelayMs: options.maxDelayMs ?? 50,
    idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
  };
  const loader = await stack.startLoader({
    // The SDK's own retries are off: the range reader retries (and counts) every attempt.
    s3: { ...stack.s3Options, endpoint: proxy.endpoint, maxAttempts: 1, requestTimeoutMs: 5_000 },
    readerOptions,
  });
  const oracle = await buildOracle(stack.dataset);
  const clients = [...Array(WORLD).keys()].map(() =>
    createLoaderClient({ address: loader.address, reconnect: { baseDelayMs: 50, maxDelayMs: 500 } }),
  );
  return {
    stack,
    proxy,
    loader,
    oracle,
    clients,
    readerOptions,
    async close() {
      for (const c of clients) c.close();
      await proxy.close();
      await stack.close();
    },
  };
}

export type FaultMode = 'probability' | 'schedule';

export interface FaultCase {
  fault: FaultKind;
  mode: FaultMode;
  /** probability mode; default 0.2. */
  probability?: number;
  /** schedule mode: the matching GETs that fail, counted from 1; default [1, 2, 4, 7, 11, 16]. */
  nth?: number[];
  batchSize?: number;
}

export interface FaultCaseResult {
  fault: FaultKind;
  mode: FaultMode;
  /** Faults the proxy injected. */
  injected: number;
  storageRequests: number;
  retries: number;
  /** The part of `retries` that were idle timeouts (a stall, or a server queued past the timer). */
  idleTimeoutRetries: number;
  /** Most attempts any one range needed. */
  maxAttempt: number;
  maxAttemptsAllowed: number;
  reopens: number;
  check: EpochCheck;
  scores: ScoreCheck;
  durationMs: number;
}

function ruleFor(c: FaultCase): FaultRule {
  const base: FaultRule = {
    fault: c.fault,
    path: SHARD_PATH,
    latencyMs: 40,
    stallMs: 60_000,
  };
  return c.mode === 'probability'
    ? { ...base, probability: c.probability ?? 0.2 }
    : { ...base, nth: c.nth ?? [1, 2, 4, 7, 11, 16] };
}

async function durableCheck(env: FaultEnv, jobId: string, ledger: ScoreLedger): Promise<ScoreCheck> {
  const store = openStore(join(env.stack.dir, 'scorer'));
  return compareScores(ledger, await readDurableScores(store, jobId));
}

/** One epoch of a fresh one-epoch job under one fault rule. */
export async function runFaultCase(env: FaultEnv, c: FaultCase): Promise<FaultCaseResult> {
  const started = performance.now();
  const jobId = await env.stack.createJob({ epochs: 1, pruneRatio: 0.4 });
  const batchSize = c.batchSize ?? 16;
  // Open the job (dataset, plan) while storage is healthy.
  await env.clients[0]?.epochInfo({ job: jobId, epoch: 0, worldSize: WORLD, batchSize });
  const injectedBefore = env.proxy.stats[c.fault];
  const io = { ...env.loader.stats().io };
  const firstRequest = env.stack.requests.length;
  env.proxy.setRules([ruleFor(c)]);
  let ranks: RankOutcome[];
  try {
    ranks = await runEpoch(
      { job: jobId, epoch: 0, worldSize: WORLD, batchSize, oracle: env.oracle },
      env.clients,
    );
  } finally {
    env.proxy.setRules([]);
  }
  const after = env.loader.stats().io;
  const plan = await servedPlan(env.stack.scorerClient, jobId, 0);
  const segments = ranks.map((r) => [r]);
  const ledger = new ScoreLedger(SAMPLES);
  ledger.recordEpoch(0, segments);
  const requests = env.stack.requests.slice(firstRequest);
  return {
    fault: c.fault,
    mode: c.mode,
    injected: env.proxy.stats[c.fault] - injectedBefore,
    storageRequests: after.requests - io.requests,
    retries: after.retries - io.retries,
    idleTimeoutRetries: after.idleTimeoutRetries - io.idleTimeoutRetries,
    maxAttempt: requests.reduce((m, r) => Math.max(m, r.attempt), 0),
    maxAttemptsAllowed: env.readerOptions.maxAttempts ?? 5,
    reopens: ranks.reduce((n, r) => n + r.reopens, 0),
    check: checkEpoch(segments, plan),
    scores: await durableCheck(env, jobId, ledger),
    durationMs: performance.now() - started,
  };
}

export interface PersistentResult {
  fault: FaultKind;
  /** The shard whose every GET failed. */
  key: string;
  /** Ranks whose iteration failed, with what the trainer saw. */
  failures: Array<{ rank: number; code: string; status: number; details: string; cursor: number }>;
  /** The same, after the fault cleared: the resumed iterations' errors (none expected). */
  check: EpochCheck;
  scores: ScoreCheck;
  resumedRanks: number;
  durationMs: number;
}

/**
 * Every GET of one shard fails until the trainers give up (SDK retries
 * exhausted); then the fault clears and each failed rank resumes at its
 * cursor with its unconfirmed acks, as a trainer restarting from a
 * checkpoint does.
 */
export async function runPersistentFault(env: FaultEnv, fault: FaultKind): Promise<PersistentResult> {
  const started = performance.now();
  const jobId = await env.stack.createJob({ epochs: 1, pruneRatio: 0.3 });
  const batchSize = 16;
  await env.clients[0]?.epochInfo({ job: jobId, epoch: 0, worldSize: WORLD, batchSize });
  const dataset = env.stack.dataset;
  const key = dataset.shardKey(Math.floor(dataset.shardCount / 2));
  const file = key.split('/').pop() as string;
  const impatient = [...Array(WORLD).keys()].map(() =>
    createLoaderClient({
      address: env.loader.address,
      reconnect: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
    }),
  );
  try {
    env.proxy.setRules([
      {
        fault,
        path: new RegExp(`${file.replace(/\./g, '\\.')}(\\?|$)`),
        stallMs: 60_000,
        afterBytes: 200,
      },
    ]);
    let first: RankOutcome[];
    try {
      first = await runEpoch(
        { job: jobId, epoch: 0, worldSize: WORLD, batchSize, oracle: env.oracle },
        impatient,
      );
    } finally {
      env.proxy.setRules([]);
    }
    const failures = first.flatMap((r) =>
      r.error
        ? [
            {
              rank: r.rank,
              code: r.error instanceof LoaderCallError ? r.error.code : describeError(r.error),
              status: r.error instanceof LoaderCallError ? r.error.status : -1,
              details: r.error instanceof LoaderCallError ? r.error.details : describeError(r.error),
              cursor: r.cursor,
            },
          ]
        : [],
    );
    // Resume every failed rank where its trainer stopped, resending what was not committed.
    const segments: RankOutcome[][] = await Promise.all(
      first.map(async (r, rank) =>
        r.error
          ? [
              r,
              await runRank({
                client: env.clients[rank] as LoaderClient,
                job: jobId,
                epoch: 0,
                rank,
                worldSize: WORLD,
                batchSize,
                cursor: r.cursor,
                resendAcks: r.pending,
                oracle: env.oracle,
              }),
            ]
          : [r],
      ),
    );
    // The failed segment's error is expected; the check looks at the last segment of each rank.
    const plan = await servedPlan(env.stack.scorerClient, jobId, 0);
    const ledger = new ScoreLedger(SAMPLES);
    ledger.recordEpoch(0, segments);
    return {
      fault,
      key,
      failures,
      check: checkEpoch(segments, plan),
      scores: await durableCheck(env, jobId, ledger),
      resumedRanks: failures.length,
      durationMs: performance.now() - started,
    };
  } finally {
    for (const c of impatient) c.close();
  }
}
