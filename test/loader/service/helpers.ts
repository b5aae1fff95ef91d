// Test rig for the loader service: an embedded S3 server with small
// synthetic WebDataset shards, a scorer server with its state in a temp dir,
// loader servers on loopback port 0, and a raw trainer rank driving the
// StreamEpoch protocol with LoaderClient directly (so tests control acks,
// reads and disconnects message by message).
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createLoaderServer, type LoaderServer, type LoaderServerOptions } from '../../../loader/index.js';
import {
  buildShards,
  openDataset,
  syntheticSampleSize,
  syntheticSource,
  type Dataset,
} from '../../../loader/shards/index.js';
import type { RangeRequestEvent } from '../../../loader/fetch/index.js';
import { LoaderClient, ScorerClient as ScorerRpc, type sadp } from '../../../proto/index.js';
import {
  createScorerClient,
  createScorerServer,
  policyFromEnum,
  u64ToBigInt,
  type ScorerClient,
  type ScorerServer,
} from '../../../scorer/index.js';
import type { EmbeddedS3, S3Client, S3Options } from '../../../storage/index.js';
import type { Batch, LoaderClient as SdkLoaderClient } from '../../../trainer/client/index.js';
import { startTempS3 } from '../../helpers/temp-s3.js';

export const SAMPLES = 600;
export const MEAN_BYTES = 2_000;
export const SOURCE_SEED = 3;
const BUCKET = 'loader';

export interface Stack {
  dir: string;
  s3: EmbeddedS3;
  s3Options: S3Options;
  s3Client: S3Client;
  manifestUrl: string;
  dataset: Dataset;
  scorer: ScorerServer;
  scorerClient: ScorerClient;
  /** The raw gRPC client, for tests of the wire protocol itself. */
  scorerRpc: ScorerRpc;
  /** Every storage GET of every loader started by startLoader, in order. */
  requests: RangeRequestEvent[];
  startLoader(options?: Partial<LoaderServerOptions>): Promise<LoaderServer>;
  /** Creates a job (SADP, r = 0.5, 3 epochs, seed 11 unless `spec` says otherwise) on the rig's scorer or on `via`; returns its id. */
  createJob(spec?: Partial<sadp.v1.JobSpec.$Properties>, via?: ScorerClient): Promise<string>;
  close(): Promise<void>;
}

let jobCounter = 0;

export async function startStack(): Promise<Stack> {
  const tmp = await startTempS3({ prefix: 'sadp-loader-', buckets: [BUCKET] });
  const { dir, s3, s3Options, client: s3Client } = tmp;
  const manifestUrl = `s3://${BUCKET}/ds/manifest.json`;
  let dataset: Dataset;
  let scorer: ScorerServer;
  try {
    await buildShards(
      syntheticSource({ count: SAMPLES, meanBytes: MEAN_BYTES, seed: SOURCE_SEED, classes: 10 }),
      {
        out: `s3://${BUCKET}/ds`,
        client: s3Client,
        shardBytes: 48 * 1024,
      },
    );
    dataset = await openDataset(manifestUrl, { client: s3Client });
    scorer = await createScorerServer({ host: '127.0.0.1', port: 0, stateUrl: join(dir, 'scorer') });
  } catch (err) {
    // A rig that fails to start must not leave a server listening: the test
    // file's process would never exit.
    await tmp.close();
    throw err;
  }
  const scorerClient = createScorerClient({ address: scorer.address });
  const scorerRpc = new ScorerRpc(scorer.address, grpc.credentials.createInsecure());
  const loaders: LoaderServer[] = [];
  const requests: RangeRequestEvent[] = [];
  return {
    dir,
    s3,
    s3Options,
    s3Client,
    manifestUrl,
    dataset,
    scorer,
    scorerClient,
    scorerRpc,
    requests,
    async startLoader(options = {}) {
      const loader = await createLoaderServer({
        scorerAddress: scorer.address,
        s3: s3Options,
        // Pruned samples are never read: the service tests check that from the request log.
        readerOptions: { planner: 'ranges', gapBytes: 0 },
        onStorageRequest: (r) => requests.push(r),
        ...options,
      });
      loaders.push(loader);
      return loader;
    },
    async createJob(spec = {}, via = scorerClient) {
      const jobId = spec.jobId ?? `job-${process.pid}-${++jobCounter}`;
      const wire = { seed: 11, pruneRatio: 0.5, epochs: 3, policy: 0, ...spec };
      await via.createJob({
        jobId,
        datasetSize: wire.datasetSize ?? SAMPLES,
        policy: wire.policy ? policyFromEnum(wire.policy) : 'sadp',
        pruneRatio: wire.pruneRatio ?? 0.5,
        maxPruneRatio: wire.maxPruneRatio,
        smoothing: wire.smoothing,
        epochs: wire.epochs ?? 3,
        seed: u64ToBigInt(wire.seed),
        datasetUrl: wire.datasetUrl ?? manifestUrl,
        token: wire.token ?? '',
      });
      return jobId;
    },
    async close() {
      await Promise.all(loaders.map((l) => l.close(500)));
      scorerClient.close();
      scorerRpc.close();
      await scorer.close(500);
      await tmp.close();
    },
  };
}

/** The rig for this test file: filled in before its tests run, closed after them. */
export function useStack(): Stack {
  const stack = {} as Stack;
  before(async () => {
    Object.assign(stack, await startStack());
  });
  after(async () => {
    await (stack as Partial<Stack>).close?.();
  });
  return stack;
}

export function unary<T>(start: (cb: grpc.requestCallback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, res) => (err || res === undefined ? reject(err ?? new Error('empty')) : resolve(res)));
  });
}

export async function getPlan(
  client: ScorerClient,
  jobId: string,
  epoch: number,
): Promise<{ ids: number[]; weights: number[]; expectedSize: number; datasetSize: number }> {
  const plan = await client.getPlan(jobId, epoch);
  return {
    ids: Array.from(plan.ids),
    weights: Array.from(plan.weights),
    expectedSize: plan.expectedSize,
    datasetSize: plan.datasetSize,
  };
}

export function getStats(client: ScorerClient, jobId: string, epoch: number): Promise<sadp.v1.JobStats> {
  return client.getStats(jobId, epoch);
}

/**
 * One epoch over SDK clients, client i as rank i of clients.length: every
 * batch goes to `onBatch`, then is acked with scoreOf per id.
 */
export async function streamEpoch(
  clients: readonly SdkLoaderClient[],
  spec: { job: string; epoch: number; batchSize: number },
  onBatch: (batch: Batch, rank: number) => void = () => undefined,
): Promise<void> {
  await Promise.all(
    clients.map(async (client, rank) => {
      for await (const batch of client.epoch({ ...spec, rank, worldSize: clients.length })) {
        onBatch(batch, rank);
        await batch.ack({ scores: Array.from(batch.ids, scoreOf) });
      }
    }),
  );
}

/** A deterministic positive score per id, varied enough to move the SADP probabilities. */
export function scoreOf(id: number): number {
  return 0.05 + ((id * 7919) % 101) / 25;
}

export interface ReceivedBatch {
  index: number;
  ids: number[];
  weights: number[];
  padded: boolean[];
}

export interface RankOptions {
  jobId: string;
  epoch: number;
  rank: number;
  world: number;
  batchSize: number;
  cursor?: number;
  maxUnacked?: number;
  token?: string;
  /** Cancel the call after this many batches were received (and acked, unless ackBeforeStop is false). */
  stopAfter?: number;
  ackBeforeStop?: boolean;
  /** Do not ack at all. */
  noAck?: boolean;
  /** Replaces the ack of the first batch (bad-ack tests). */
  ackOverride?: (batch: ReceivedBatch) => sadp.v1.Ack.$Properties;
  /** Hold the acks of batches with index >= this until `release()`. */
  holdAcksFrom?: number;
  /** Stop reading from the socket after this many batch parts (the call stays open). */
  stallAfterParts?: number;
  /** Extra acks to send right after the open (resends). */
  resend?: sadp.v1.Ack.$Properties[];
  /** Raw first message instead of a proper OpenEpoch. */
  rawFirst?: sadp.v1.StreamEpochRequest.$Properties;
  /** Messages sent after the open (protocol-violation tests). */
  after?: sadp.v1.StreamEpochRequest.$Properties[];
}

export interface RankResult {
  info: sadp.v1.EpochInfo | undefined;
  batches: ReceivedBatch[];
  commits: number[];
  code: number;
  details: string;
  /** Acks sent (with their scores) on this call. */
  acks: sadp.v1.Ack.$Properties[];
}

export interface RankHandle {
  done: Promise<RankResult>;
  /** Sends every held ack and stops holding. */
  release(): void;
  call: grpc.ClientDuplexStream<sadp.v1.StreamEpochRequest.$Properties, sadp.v1.StreamEpochResponse>;
  batches: ReceivedBatch[];
  /** ScoresCommitted.through_index values received so far. */
  commits: number[];
}

export function connectLoader(address: string): LoaderClient {
  return new LoaderClient(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
  });
}

/** Drives one rank's StreamEpoch: checks every sample against the source and acks batches with scores. */
export function startRank(client: LoaderClient, dataset: Dataset, o: RankOptions): RankHandle {
  const metadata = new grpc.Metadata();
  if (o.token !== undefined) metadata.set('authorization', `Bearer ${o.token}`);
  const call = client.streamEpoch(metadata);
  const batches: ReceivedBatch[] = [];
  const commits: number[] = [];
  const acks: sadp.v1.Ack.$Properties[] = [];
  let info: sadp.v1.EpochInfo | undefined;
  let current: ReceivedBatch | undefined;
  let parts = 0;
  let stopped = false;
  let holding = o.holdAcksFrom !== undefined;
  const held: sadp.v1.Ack.$Properties[] = [];
  const sendAck = (ack: sadp.v1.Ack.$Properties): void => {
    acks.push(ack);
    call.write({ ack });
  };
  const done = new Promise<RankResult>((resolve) => {
    let settled = false;
    const finish = (code: number, details: string): void => {
      if (settled) return;
      settled = true;
      resolve({ info, batches, commits, code, details, acks });
    };
    call.on('data', (m: sadp.v1.StreamEpochResponse) => {
      if (stopped) return;
      if (m.info) {
        info = m.info as sadp.v1.EpochInfo;
        for (const a of o.resend ?? []) call.write({ ack: a });
        for (const a of o.after ?? []) call.write(a);
        return;
      }
      if (m.committed) {
        commits.push(m.committed.throughIndex ?? 0);
        return;
      }
      const part = m.batch;
      assert.ok(part, 'unexpected empty response');
      parts++;
      if (o.stallAfterParts !== undefined && parts >= o.stallAfterParts) call.pause();
      if ((part.part ?? 0) === 0) current = { index: part.index ?? 0, ids: [], weights: [], padded: [] };
      assert.ok(current && current.index === part.index, `part of batch ${part.index} out of order`);
      for (const s of part.samples ?? []) {
        const id = s.id ?? 0;
        // Content check against the synthetic source: key and payload size.
        assert.equal(s.key, dataset.key(id), `sample ${id} has the wrong key`);
        const jpg = s.fields?.jpg;
        assert.ok(jpg, `sample ${id} lacks its jpg field`);
        assert.equal(jpg.length, syntheticSampleSize(id, { meanBytes: MEAN_BYTES, seed: SOURCE_SEED }));
        current.ids.push(id);
        current.weights.push(s.weight ?? 0);
        current.padded.push(s.padded ?? false);
      }
      if ((part.part ?? 0) < (part.parts ?? 1) - 1) return;
      const batch = current;
      batches.push(batch);
      current = undefined;
      const stop = o.stopAfter !== undefined && batches.length >= o.stopAfter;
      if (o.ackOverride && batches.length === 1) {
        sendAck(o.ackOverride(batch));
      } else if (!o.noAck && (!stop || o.ackBeforeStop !== false)) {
        const ids = batch.ids.filter((_, k) => !batch.padded[k]);
        const ack = {
          index: batch.index,
          ids,
          scores: ids.map(scoreOf),
          losses: ids.map((id) => scoreOf(id) / 2),
        };
        if (holding && batch.index >= (o.holdAcksFrom ?? 0)) held.push(ack);
        else sendAck(ack);
      }
      if (stop) {
        stopped = true;
        // Let the ack reach the loader before the cancel.
        setTimeout(() => call.cancel(), 20);
      }
    });
    call.on('error', (err: grpc.ServiceError) => finish(err.code, err.details));
    call.on('status', (s: grpc.StatusObject) => finish(s.code, s.details));
  });
  call.write(
    o.rawFirst ?? {
      open: {
        jobId: o.jobId,
        epoch: o.epoch,
        rank: o.rank,
        worldSize: o.world,
        batchSize: o.batchSize,
        cursor: o.cursor ?? 0,
        maxUnackedBatches: o.maxUnacked ?? 0,
      },
    },
  );
  return {
    done,
    call,
    batches,
    commits,
    release() {
      holding = false;
      for (const a of held.splice(0)) sendAck(a);
    },
  };
}

export function runRank(client: LoaderClient, dataset: Dataset, o: RankOptions): Promise<RankResult> {
  return startRank(client, dataset, o).done;
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function newToken(): string {
  return randomBytes(16).toString('hex');
}

/** Ids of the dataset whose byte range [offset, end) intersects any storage GET of `requests` for its shard. */
export function idsTouched(dataset: Dataset, requests: readonly RangeRequestEvent[]): Set<number> {
  const byKey = new Map<string, Array<[number, number]>>();
  for (const r of requests) {
    const list = byKey.get(r.key) ?? [];
    list.push([r.start, r.end]);
    byKey.set(r.key, list);
  }
  const touched = new Set<number>();
  for (let id = 0; id < dataset.size; id++) {
    const ranges = byKey.get(dataset.shardKey(dataset.shardOf(id)));
    if (!ranges) continue;
    const a = dataset.offsets[id] as number;
    const b = dataset.ends[id] as number;
    if (ranges.some(([s, e]) => s < b && a < e)) touched.add(id);
  }
  return touched;
}

/** Polls `cond`; the bound only turns a hang into a failure, far beyond what a busy machine needs. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 120_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
