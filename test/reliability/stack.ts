// Shared pieces of the reliability suite (tests and bench/reliability): an
// independent oracle of every sample's bytes, trainer ranks driven through
// the real client SDK that check each delivered sample against the oracle,
// the exactly-once check of an epoch against the scorer's plan, a ledger of
// every score the trainers acknowledged, and a reader of the scorer's state
// store to prove those scores are durable.
import { createHash } from 'node:crypto';
import type { Dataset } from '../../loader/shards/index.js';
import type { sadp } from '../../proto/index.js';
import { planEpoch, type PolicyName, type ScorerClient } from '../../scorer/index.js';
// Test-only: the state module is internal to the scorer; reading it is how
// this suite proves acknowledged scores are durable, independent of the service.
import { FLAG_LOSS, FLAG_SCORE, StateStore, recoverJob } from '../../scorer/state/index.js';
import { silentLogger } from '../../common/logger.js';
import type { ObjectStore } from '../../storage/index.js';
import type { AckRecord, Batch, EpochInfo, LoaderClient } from '../../trainer/client/index.js';
import { readWhole } from '../loader/fetch/fixtures.js';
import { getPlan } from '../loader/service/helpers.js';

/** SHA-256 of a sample's members (extension, length, bytes; extensions sorted). */
export function sampleHash(fields: Record<string, Uint8Array>): string {
  const h = createHash('sha256');
  for (const ext of Object.keys(fields).sort()) {
    const bytes = fields[ext] as Uint8Array;
    h.update(`${ext}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/** Per id: key and member hash, from whole-shard sequential reads parsed by tar-stream (not the range reader). */
export interface Oracle {
  keys: string[];
  hashes: string[];
}

export async function buildOracle(dataset: Dataset): Promise<Oracle> {
  const whole = await readWhole(dataset);
  const keys = new Array<string>(dataset.size);
  const hashes = new Array<string>(dataset.size);
  for (const [id, s] of whole) {
    keys[id] = s.key;
    hashes[id] = sampleHash(s.fields);
  }
  return { keys, hashes };
}

/** The score a trainer reports for `id` in `epoch`: positive, and different per epoch so a lost report shows. */
export function scoreFor(id: number, epoch: number): number {
  return 0.05 + ((id * 7919 + epoch * 104_729) % 1009) / 250;
}

export interface RankOutcome {
  rank: number;
  info: EpochInfo | undefined;
  /** Batch indices yielded, in order. */
  indices: number[];
  /** Non-padded ids delivered, in order. */
  ids: number[];
  padded: number;
  /** Samples whose key or bytes differ from the oracle (first few, described). */
  corrupt: string[];
  corruptCount: number;
  /** Wait for each batch (ms, trainer side: from asking for it to having it). */
  waitsMs: number[];
  bytes: number;
  reopens: number;
  cursor: number;
  committedThrough: number;
  /** Scored acks the loader had not confirmed when the iteration ended. */
  pending: AckRecord[];
  /** performance.now() when the iteration started and ended. */
  startedMs: number;
  endedMs: number;
  /** Set when the iteration threw (the epoch is then incomplete for this rank). */
  error?: unknown;
}

export interface RankRequest {
  client: LoaderClient;
  job: string;
  epoch: number;
  rank: number;
  worldSize: number;
  batchSize: number;
  cursor?: number;
  resendAcks?: readonly AckRecord[];
  maxUnackedBatches?: number;
  oracle?: Oracle;
  /** Called after each batch was checked, before its ack (kill triggers, pauses). */
  onBatch?: (batch: Batch) => void | Promise<void>;
  /** Called once a batch's ack (with its scores) was written to the stream (kill triggers). */
  onAcked?: (batch: Batch) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Iterates one rank's epoch with the SDK: checks every sample, acks with scoreFor; never throws. */
export async function runRank(req: RankRequest): Promise<RankOutcome> {
  const out: RankOutcome = {
    rank: req.rank,
    info: undefined,
    indices: [],
    ids: [],
    padded: 0,
    corrupt: [],
    corruptCount: 0,
    waitsMs: [],
    bytes: 0,
    reopens: 0,
    cursor: req.cursor ?? 0,
    committedThrough: -1,
    pending: [],
    startedMs: performance.now(),
    endedMs: 0,
  };
  const stream = req.client.epoch({
    job: req.job,
    epoch: req.epoch,
    rank: req.rank,
    worldSize: req.worldSize,
    batchSize: req.batchSize,
    ...(req.cursor === undefined ? {} : { cursor: req.cursor }),
    ...(req.resendAcks === undefined ? {} : { resendAcks: req.resendAcks }),
    ...(req.maxUnackedBatches === undefined ? {} : { maxUnackedBatches: req.maxUnackedBatches }),
    ...(req.signal === undefined ? {} : { signal: req.signal }),
  });
  try {
    let asked = performance.now();
    for await (const batch of stream) {
      out.waitsMs.push(performance.now() - asked);
      out.info = batch.info;
      out.indices.push(batch.index);
      const scores = new Float64Array(batch.size);
      for (let j = 0; j < batch.size; j++) {
        const id = batch.ids[j] as number;
        scores[j] = scoreFor(id, req.epoch);
        if (batch.padded[j]) out.padded++;
        else out.ids.push(id);
        if (req.oracle && !matchesOracle(batch, j, req.oracle)) {
          out.corruptCount++;
          if (out.corrupt.length < 5) out.corrupt.push(`batch ${batch.index} sample ${id}`);
        }
      }
      if (req.onBatch) await req.onBatch(batch);
      await batch.ack({ scores });
      if (req.onAcked) await req.onAcked(batch);
      asked = performance.now();
    }
  } catch (err) {
    out.error = err;
  }
  out.info ??= stream.info;
  out.reopens = stream.stats.reopens;
  out.bytes = stream.stats.bytes;
  out.cursor = stream.cursor;
  out.committedThrough = stream.committedThrough;
  out.pending = stream.pendingAcks();
  out.endedMs = performance.now();
  return out;
}

/**
 * Key and bytes of sample j equal the oracle's. The SDK gives a zero-length
 * array both for a missing field and for an empty member, so every choice of
 * the empty fields being present is tried (a sample has at most a couple).
 */
function matchesOracle(batch: Batch, j: number, oracle: Oracle): boolean {
  const id = batch.ids[j] as number;
  const fields: Record<string, Uint8Array> = {};
  for (const [ext, list] of Object.entries(batch.fields)) fields[ext] = list[j] as Uint8Array;
  if (batch.keys[j] !== oracle.keys[id]) return false;
  const empty = Object.keys(fields).filter((ext) => (fields[ext] as Uint8Array).length === 0);
  for (let mask = 0; mask < 1 << empty.length; mask++) {
    const f: Record<string, Uint8Array> = {};
    for (const [ext, bytes] of Object.entries(fields)) {
      const k = empty.indexOf(ext);
      if (k < 0 || mask & (1 << k)) f[ext] = bytes;
    }
    if (sampleHash(f) === oracle.hashes[id]) return true;
  }
  return false;
}

export interface Plan {
  ids: number[];
  weights: number[];
}

export interface EpochCheck {
  planned: number;
  /** Non-padded deliveries (with duplicates). */
  delivered: number;
  /** Planned ids never delivered. */
  lost: number;
  /** Deliveries beyond the first of an id (padding excluded). */
  duplicated: number;
  /** Delivered ids not in the plan. */
  unplanned: number;
  padded: number;
  expectedPadded: number;
  corrupt: number;
  /** Ranks whose batch indices were not exactly 0..steps-1 in order, described. */
  indexProblems: string[];
  /** Ranks that ended with an error. */
  errors: string[];
}

/**
 * Checks an epoch against the scorer's plan. `ranks[r]` lists the rank's
 * outcomes in order (more than one when it resumed in a new iteration).
 */
export function checkEpoch(ranks: RankOutcome[][], plan: Plan): EpochCheck {
  const planned = new Set(plan.ids);
  const count = new Map<number, number>();
  let delivered = 0;
  let padded = 0;
  let corrupt = 0;
  const indexProblems: string[] = [];
  const errors: string[] = [];
  let info: EpochInfo | undefined;
  ranks.forEach((segments, rank) => {
    const indices = segments.flatMap((s) => s.indices);
    const rankInfo = segments.find((s) => s.info)?.info;
    info ??= rankInfo;
    const steps = rankInfo?.steps ?? 0;
    const want = [...Array(steps).keys()];
    if (indices.join() !== want.join()) {
      indexProblems.push(`rank ${rank}: got [${indices.join()}], want 0..${steps - 1}`);
    }
    const last = segments[segments.length - 1];
    if (last?.error) errors.push(`rank ${rank}: ${describeError(last.error)}`);
    for (const s of segments) {
      padded += s.padded;
      corrupt += s.corruptCount;
      delivered += s.ids.length;
      for (const id of s.ids) count.set(id, (count.get(id) ?? 0) + 1);
    }
  });
  let duplicated = 0;
  let unplanned = 0;
  for (const [id, c] of count) {
    duplicated += c - 1;
    if (!planned.has(id)) unplanned++;
  }
  let lost = 0;
  for (const id of plan.ids) if (!count.has(id)) lost++;
  return {
    planned: plan.ids.length,
    delivered,
    lost,
    duplicated,
    unplanned,
    padded,
    expectedPadded: info?.padded ?? 0,
    corrupt,
    indexProblems,
    errors,
  };
}

/** True when the check shows exactly-once delivery of the plan with intact bytes. */
export function epochClean(c: EpochCheck): boolean {
  return (
    c.lost === 0 &&
    c.duplicated === 0 &&
    c.unplanned === 0 &&
    c.corrupt === 0 &&
    c.padded === c.expectedPadded &&
    c.indexProblems.length === 0 &&
    c.errors.length === 0
  );
}

/** Runs `world` ranks of one epoch concurrently. */
export function runEpoch(
  base: Omit<RankRequest, 'rank' | 'client'>,
  clients: LoaderClient[],
): Promise<RankOutcome[]> {
  return Promise.all(clients.map((client, rank) => runRank({ ...base, client, rank })));
}

/** Every score the trainers acknowledged, as the scorer must hold it (latest report wins). */
export class ScoreLedger {
  readonly scores: Float64Array;
  readonly scored: Uint8Array;
  constructor(readonly size: number) {
    this.scores = new Float64Array(size);
    this.scored = new Uint8Array(size);
  }
  /** Records the scores of an epoch's delivered (non-padded) ids. */
  recordEpoch(epoch: number, ranks: RankOutcome[][]): void {
    for (const segments of ranks)
      for (const s of segments)
        for (const id of s.ids) {
          this.scores[id] = scoreFor(id, epoch);
          this.scored[id] = 1;
        }
  }
  get scoredCount(): number {
    return this.scored.reduce((n, v) => n + v, 0);
  }
}

export interface DurableScores {
  scores: Float64Array;
  losses: Float64Array;
  /** FLAG_SCORE | FLAG_LOSS per id. */
  flags: Uint8Array;
  scoresReceived: number;
}

/** Reads a job's scores back from the scorer's state store (snapshot + logs), as a restarted scorer would. */
export async function readDurableScores(store: ObjectStore, jobId: string): Promise<DurableScores> {
  const state = new StateStore(store);
  const listing = (await state.listJobs()).find((l) => l.jobId === jobId);
  if (!listing) throw new Error(`no state for job ${jobId} in ${store.url}`);
  let received = 0;
  const { job } = await recoverJob<DurableScores>(
    state,
    listing,
    {
      open(record, snapshot) {
        if (snapshot) {
          received = snapshot.scoresReceived;
          return {
            scores: Float64Array.from(snapshot.scores),
            losses: Float64Array.from(snapshot.losses),
            flags: Uint8Array.from(snapshot.flags),
            scoresReceived: received,
          };
        }
        return {
          scores: new Float64Array(record.datasetSize),
          losses: new Float64Array(record.datasetSize),
          flags: new Uint8Array(record.datasetSize),
          scoresReceived: 0,
        };
      },
      apply(j, _seq, reports) {
        for (const r of reports) {
          j.scoresReceived += r.ids.length;
          r.ids.forEach((id, i) => {
            if (r.scores) {
              j.scores[id] = r.scores[i] as number;
              j.flags[id] = (j.flags[id] as number) | FLAG_SCORE;
            }
            if (r.losses) {
              j.losses[id] = r.losses[i] as number;
              j.flags[id] = (j.flags[id] as number) | FLAG_LOSS;
            }
          });
        }
      },
    },
    { logger: silentLogger },
  );
  return job;
}

export interface ScoreCheck {
  /** Ids the trainers acknowledged a score for. */
  acknowledged: number;
  /** Of those, ids whose durable score is missing or differs. */
  lost: number;
  /** First few lost ids, described. */
  examples: string[];
  /** Ids scored in the store that no trainer acknowledged (should be 0). */
  unexpected: number;
}

export function compareScores(ledger: ScoreLedger, durable: DurableScores): ScoreCheck {
  let lost = 0;
  let unexpected = 0;
  const examples: string[] = [];
  for (let id = 0; id < ledger.size; id++) {
    const has = ((durable.flags[id] ?? 0) & FLAG_SCORE) !== 0;
    if (ledger.scored[id]) {
      if (!has || durable.scores[id] !== ledger.scores[id]) {
        lost++;
        if (examples.length < 5)
          examples.push(`id ${id}: want ${ledger.scores[id]}, have ${has ? durable.scores[id] : 'none'}`);
      }
    } else if (has) unexpected++;
  }
  return { acknowledged: ledger.scoredCount, lost, examples, unexpected };
}

export interface JobParams {
  jobId: string;
  datasetSize: number;
  policy: PolicyName;
  pruneRatio: number;
  epochs: number;
  seed: number;
  datasetUrl: string;
  token?: string;
}

export function createJob(client: ScorerClient, p: JobParams): Promise<sadp.v1.Job> {
  return client.createJob({
    jobId: p.jobId,
    datasetSize: p.datasetSize,
    policy: p.policy,
    pruneRatio: p.pruneRatio,
    epochs: p.epochs,
    seed: p.seed,
    datasetUrl: p.datasetUrl,
    token: p.token ?? '',
  });
}

export function describeJob(client: ScorerClient, jobId: string): Promise<sadp.v1.Job> {
  return client.describeJob(jobId);
}

/** The plan the scorer must serve for `epoch` given exactly the ledger's scores (recomputed in this process). */
export function expectedPlanDigest(
  job: sadp.v1.Job,
  p: JobParams,
  epoch: number,
  ledger: ScoreLedger,
): string {
  return planEpoch({
    policy: p.policy,
    datasetSize: p.datasetSize,
    pruneRatio: p.pruneRatio,
    maxPruneRatio: job.maxPruneRatio,
    smoothing: job.smoothing,
    epochs: p.epochs,
    epoch,
    seed: BigInt(p.seed),
    scores: ledger.scores,
    losses: new Float64Array(p.datasetSize),
    scored: ledger.scored,
  }).digest;
}

/** The plan digest the scorer serves for an epoch (SHA-256 as the protocol defines it). */
export async function servedPlan(
  client: ScorerClient,
  jobId: string,
  epoch: number,
): Promise<Plan & { digest: string }> {
  const plan = await getPlan(client, jobId, epoch);
  const ids = Uint32Array.from(plan.ids);
  const weights = Float64Array.from(plan.weights);
  const digest = createHash('sha256')
    .update(new Uint8Array(ids.buffer))
    .update(new Uint8Array(weights.buffer))
    .digest('hex');
  return { ids: plan.ids, weights: plan.weights, digest };
}

/** A one-line description of anything thrown. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return typeof err === 'string' ? err : JSON.stringify(err);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
