// Bad input over gRPC, fuzzed against a model (fast-check): random
// ReportScores requests (ids out of range, NaN, negative, infinite values,
// mismatched lengths, empty reports) must be accepted exactly when the
// protocol says they are valid and rejected with INVALID_ARGUMENT otherwise,
// and the scorer's durable state must equal the model of the accepted ones;
// raw garbage bytes as a request must not change anything; random OpenEpoch
// fields and invalid acks on a live stream must get a status from the closed
// set, and no score of an invalid ack may reach the scorer.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { type LoaderClient, type ScorerClient, type sadp } from '../../proto/index.js';
import type { Dataset } from '../../loader/shards/index.js';
import { FLAG_LOSS, FLAG_SCORE } from '../../scorer/state/index.js';
import type { ObjectStore } from '../../storage/index.js';
import { call, ExpectedScores } from '../scorer/service/helpers.js';
import { readDurableScores } from './stack.js';

export interface GrpcFuzzStats {
  target: string;
  inputs: number;
  /** Outcomes by gRPC status name. */
  statuses: Record<string, number>;
}

const S = grpc.status;
const statusName = (code: number): string => S[code] ?? String(code);

function note(stats: GrpcFuzzStats, code: number): void {
  const k = statusName(code);
  stats.statuses[k] = (stats.statuses[k] ?? 0) + 1;
}

/** fc.assert with the failing input's error in the message. */
async function check<T>(property: fc.IAsyncProperty<T>, numRuns: number, seed: number): Promise<void> {
  try {
    await fc.assert(property, { numRuns, seed });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : '';
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nfailure: ${cause}`, { cause: err });
  }
}

/** What the scorer must hold for a job after the reports it accepted (ExpectedScores), checked against its state store. */
export class ReportModel extends ExpectedScores {
  /** The score/loss flags the state store keeps for `id`. */
  private flagsOf(id: number): number {
    return (this.scoredByScore[id] ? FLAG_SCORE : 0) | (this.scoredByLoss[id] ? FLAG_LOSS : 0);
  }
  /** The first difference from the durable state, or undefined. */
  async diff(store: ObjectStore, jobId: string): Promise<string | undefined> {
    const d = await readDurableScores(store, jobId);
    if (d.scoresReceived !== this.received)
      return `scoresReceived ${d.scoresReceived}, model ${this.received}`;
    for (let id = 0; id < this.size; id++) {
      if (d.flags[id] !== this.flagsOf(id))
        return `id ${id}: flags ${d.flags[id]}, model ${this.flagsOf(id)}`;
      if (!Object.is(d.scores[id], this.scores[id]) && d.scores[id] !== this.scores[id])
        return `id ${id}: score ${d.scores[id]}, model ${this.scores[id]}`;
      if (d.losses[id] !== this.losses[id]) return `id ${id}: loss ${d.losses[id]}, model ${this.losses[id]}`;
    }
    return undefined;
  }
}

const value = fc.oneof(
  { weight: 12, arbitrary: fc.double({ min: 0, max: 1e6, noNaN: true }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(NaN, -1, -1e-300, Infinity, -Infinity, -0, 1e308, Number.MIN_VALUE, 0),
  },
);

export interface FuzzReport {
  ids: number[];
  scores: number[];
  losses: number[];
  epoch: number;
}

const reportArb = (size: number): fc.Arbitrary<FuzzReport> => {
  const id = fc.oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0, max: size - 1 }) },
    { weight: 1, arbitrary: fc.constantFrom(size, size + 1, 2 ** 31, 2 ** 32 - 1) },
  );
  return fc.integer({ min: 0, max: 16 }).chain((n) => {
    const values = fc.oneof(
      { weight: 2, arbitrary: fc.constant<number[]>([]) },
      { weight: 6, arbitrary: fc.array(value, { minLength: n, maxLength: n }) },
      { weight: 1, arbitrary: fc.array(value, { maxLength: 18 }) },
    );
    return fc.record({
      ids: fc.array(id, { minLength: n, maxLength: n }),
      scores: values,
      losses: values,
      epoch: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(2 ** 32 - 1)),
    });
  });
};

/** Whether the protocol says the report is valid (scorer.proto ReportScores). */
export function reportValid(r: FuzzReport, size: number): boolean {
  const n = r.ids.length;
  if (n === 0) return false;
  if (r.scores.length !== 0 && r.scores.length !== n) return false;
  if (r.losses.length !== 0 && r.losses.length !== n) return false;
  if (r.scores.length === 0 && r.losses.length === 0) return false;
  const ok = (v: number): boolean => v >= 0 && v < Infinity;
  return r.ids.every((id) => id < size) && r.scores.every(ok) && r.losses.every(ok);
}

/** Model-based fuzz of ReportScores; throws on the first disagreement. */
export async function fuzzReportScores(
  scorer: ScorerClient,
  store: ObjectStore,
  jobId: string,
  size: number,
  o: { numRuns: number; seed: number },
): Promise<GrpcFuzzStats> {
  const stats: GrpcFuzzStats = { target: 'Scorer/ReportScores', inputs: 0, statuses: {} };
  const model = new ReportModel(size);
  await check(
    fc.asyncProperty(reportArb(size), async (r) => {
      let code: number = S.OK;
      let details = '';
      try {
        await call(scorer, 'reportScores', { jobId, ...r });
      } catch (err) {
        code = (err as grpc.ServiceError).code;
        details = (err as grpc.ServiceError).details;
      }
      stats.inputs++;
      note(stats, code);
      const valid = reportValid(r, size);
      if (valid && code !== (S.OK as number))
        throw new Error(`a valid report was refused: ${statusName(code)} ${details}`);
      if (!valid && code !== (S.INVALID_ARGUMENT as number))
        throw new Error(`an invalid report got ${statusName(code)} (${details})`);
      if (!valid && !/^SADP_[A-Z_]+: report for job/.test(details))
        throw new Error(`rejection without a clear message: ${details}`);
      if (valid) model.apply(r);
    }),
    o.numRuns,
    o.seed,
  );
  const diff = await model.diff(store, jobId);
  if (diff) throw new Error(`durable state differs from the model of accepted reports: ${diff}`);
  return stats;
}

/** Raw bytes sent as a request to `method`; resolves with the status. */
export function rawUnary(
  address: string,
  method: string,
  bytes: Buffer,
): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      { deadline: Date.now() + 10_000 },
      (err) => {
        client.close();
        resolve({ code: err ? err.code : S.OK, details: err?.details ?? '' });
      },
    );
  });
}

/** Random bytes as ReportScores / CreateJob requests: no crash, no change to `jobId`'s state. */
export async function fuzzGarbageRequests(
  scorerAddress: string,
  o: { numRuns: number; seed: number },
): Promise<GrpcFuzzStats> {
  const stats: GrpcFuzzStats = { target: 'Scorer/* garbage bytes', inputs: 0, statuses: {} };
  const allowed = new Set<number>([S.INVALID_ARGUMENT, S.NOT_FOUND, S.INTERNAL, S.OUT_OF_RANGE]);
  await check(
    fc.asyncProperty(
      fc.constantFrom(
        '/sadp.v1.Scorer/ReportScores',
        '/sadp.v1.Scorer/CreateJob',
        '/sadp.v1.Scorer/DescribeJob',
      ),
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      async (method, bytes) => {
        const r = await rawUnary(scorerAddress, method, Buffer.from(bytes));
        stats.inputs++;
        note(stats, r.code);
        if (!allowed.has(r.code))
          throw new Error(`${method}: garbage got ${statusName(r.code)}: ${r.details}`);
      },
    ),
    o.numRuns,
    o.seed,
  );
  return stats;
}

/** Random OpenEpoch fields: a status from the closed set, or an EpochInfo (then cancelled). */
export async function fuzzOpenEpoch(
  loader: LoaderClient,
  jobId: string,
  o: { numRuns: number; seed: number },
): Promise<GrpcFuzzStats> {
  const stats: GrpcFuzzStats = { target: 'Loader/StreamEpoch OpenEpoch', inputs: 0, statuses: {} };
  const allowed = new Set<number>([
    S.OK,
    S.INVALID_ARGUMENT,
    S.NOT_FOUND,
    S.OUT_OF_RANGE,
    S.FAILED_PRECONDITION,
  ]);
  const u32 = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 8 }) },
    { weight: 1, arbitrary: fc.constantFrom(2 ** 31, 2 ** 32 - 1, 65_536, 65_537, 100_000) },
  );
  await check(
    fc.asyncProperty(
      fc.record({
        jobId: fc.oneof(fc.constant(jobId), fc.constant(''), fc.string({ maxLength: 200 })),
        epoch: u32,
        rank: u32,
        worldSize: u32,
        batchSize: u32,
        cursor: u32,
        maxUnackedBatches: u32,
      }),
      async (open) => {
        const code = await openOnce(loader, open);
        stats.inputs++;
        note(stats, code);
        if (!allowed.has(code)) throw new Error(`OpenEpoch ${JSON.stringify(open)} got ${statusName(code)}`);
      },
    ),
    o.numRuns,
    o.seed,
  );
  return stats;
}

/** Opens a stream with `open`; OK once EpochInfo arrives (the call is then cancelled). */
function openOnce(loader: LoaderClient, open: sadp.v1.OpenEpoch.$Properties): Promise<number> {
  return new Promise((resolve) => {
    const c = loader.streamEpoch(new grpc.Metadata(), { deadline: Date.now() + 20_000 });
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      resolve(code);
    };
    c.on('data', (m: sadp.v1.StreamEpochResponse) => {
      if (m.info) {
        finish(S.OK);
        c.cancel();
      }
    });
    c.on('error', (err: grpc.ServiceError) => finish(err.code));
    c.on('status', (s: grpc.StatusObject) => finish(s.code));
    c.write({ open });
  });
}

export interface BadAck {
  /** How the ack is broken (each one is invalid by construction). */
  flaw:
    | 'nan'
    | 'negative'
    | 'infinite'
    | 'id-out-of-range'
    | 'id-not-delivered'
    | 'length'
    | 'no-values'
    | 'index-past-end';
  at: number;
}

/**
 * On a fresh stream of a job whose scores must stay empty: receive the first
 * batch, send an ack broken by `flaw`, expect the stream to end with
 * INVALID_ARGUMENT / OUT_OF_RANGE / FAILED_PRECONDITION.
 */
export async function fuzzBadAcks(
  loader: LoaderClient,
  dataset: Dataset,
  jobId: string,
  o: { numRuns: number; seed: number; world: number; batchSize: number },
): Promise<GrpcFuzzStats> {
  const stats: GrpcFuzzStats = { target: 'Loader/StreamEpoch bad acks', inputs: 0, statuses: {} };
  const allowed = new Set<number>([S.INVALID_ARGUMENT, S.OUT_OF_RANGE, S.FAILED_PRECONDITION]);
  await check(
    fc.asyncProperty(
      fc.record({
        flaw: fc.constantFrom<BadAck['flaw']>(
          'nan',
          'negative',
          'infinite',
          'id-out-of-range',
          'id-not-delivered',
          'length',
          'no-values',
          'index-past-end',
        ),
        at: fc.nat(),
        rank: fc.integer({ min: 0, max: o.world - 1 }),
      }),
      async ({ flaw, at, rank }) => {
        const code = await badAckOnce(loader, dataset, jobId, rank, o, { flaw, at });
        stats.inputs++;
        note(stats, code);
        if (!allowed.has(code)) throw new Error(`ack with flaw ${flaw} got ${statusName(code)}`);
      },
    ),
    o.numRuns,
    o.seed,
  );
  return stats;
}

function badAckOnce(
  loader: LoaderClient,
  dataset: Dataset,
  jobId: string,
  rank: number,
  o: { world: number; batchSize: number },
  bad: BadAck,
): Promise<number> {
  return new Promise((resolve) => {
    const c = loader.streamEpoch(new grpc.Metadata(), { deadline: Date.now() + 20_000 });
    let done = false;
    let acked = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      resolve(code);
      c.cancel();
    };
    c.on('data', (m: sadp.v1.StreamEpochResponse) => {
      const part = m.batch;
      if (!part || acked || (part.part ?? 0) < (part.parts ?? 1) - 1) return;
      acked = true;
      const ids = (part.samples ?? []).map((s) => s.id ?? 0);
      const n = ids.length;
      const k = bad.at % Math.max(1, n);
      const scores = ids.map(() => 1);
      const ack: sadp.v1.Ack.$Properties = { index: part.index ?? 0, ids, scores };
      switch (bad.flaw) {
        case 'nan':
          scores[k] = NaN;
          break;
        case 'negative':
          scores[k] = -1;
          break;
        case 'infinite':
          scores[k] = Infinity;
          break;
        case 'id-out-of-range':
          ids[k] = dataset.size + (bad.at % 1000);
          break;
        case 'id-not-delivered': {
          const mine = new Set(ids);
          // Any id of the dataset not in this batch: never delivered to this rank in batches <= 0.
          let other = bad.at % dataset.size;
          while (mine.has(other)) other = (other + 1) % dataset.size;
          ids[k] = other;
          break;
        }
        case 'length':
          ack.scores = scores.slice(1);
          break;
        case 'no-values':
          ack.scores = [];
          break;
        case 'index-past-end':
          ack.index = 1_000_000 + bad.at;
          break;
      }
      c.write({ ack });
    });
    c.on('error', (err: grpc.ServiceError) => finish(err.code));
    c.on('status', (s: grpc.StatusObject) => finish(s.code));
    c.write({ open: { jobId, epoch: 0, rank, worldSize: o.world, batchSize: o.batchSize } });
  });
}
