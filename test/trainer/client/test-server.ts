// A small but real LoaderService for the client tests: grpc-js on a loopback
// socket serving a fixed plan of batches with the protocol's credit window,
// parts and ScoresCommitted, plus faults a real loader cannot be made to
// produce on cue (drop a stream at batch k, die and come back, reject).
// Scores become "durable" only when a ScoresCommitted covers them, so a
// crash loses exactly what a crashing loader would.
import * as grpc from '@grpc/grpc-js';
import { LoaderService, pb, type sadp } from '../../../proto/index.js';
import { bindLoopback } from '../../helpers/grpc.js';

type Req = sadp.v1.StreamEpochRequest;
type Res = sadp.v1.StreamEpochResponse;

export interface TestLoaderPlan {
  steps: number;
  batchSize: number;
  /** Samples of the last batch (default batchSize). */
  lastBatchSize?: number;
  /** Trailing samples of the last batch marked padded. */
  padded?: number;
  /** Bytes of each sample's `gray` member. Default 4. */
  sampleBytes?: number;
  /** Cap on one BatchPart's member bytes (default: one part per batch). */
  partBytes?: number;
  planDigest?: string;
}

export interface TestLoaderFaults {
  /** Required bearer token. */
  token?: string;
  /** Send ScoresCommitted after this many acks on a stream; 0 = only at the end. Default 1. */
  commitEvery?: number;
  /** The first stream that sends batch `k` fails right after it with `dropStatus`. */
  dropAfterBatch?: number;
  dropStatus?: grpc.status;
  /** Every stream fails at open with this status. */
  rejectWith?: { code: grpc.status; details: string };
  /** The first stream sends batches 0..k, then nothing more and never ends (a wedged loader). */
  stallAfterBatch?: number;
  /** Send nothing at all on a stream (a wedged loader). */
  hang?: boolean;
  /** The first stream ends (OK, without a final commit) as soon as the last batch is acked. */
  endWhenAcked?: boolean;
}

/** Everything the servers saw; shared across restarts of the "same" loader. */
export interface TestLoaderRecord {
  opens: sadp.v1.OpenEpoch[];
  acks: { stream: number; index: number; ids: number[]; scores: number[]; losses: number[] }[];
  /** Scores covered by a ScoresCommitted, by id. */
  durable: Map<number, number>;
  authorization: string[];
  /** Calls the client cancelled before the server finished them. */
  cancelled: number;
  streams: number;
  /** Streams currently open on the server side. */
  open: number;
}

export function newRecord(): TestLoaderRecord {
  return { opens: [], acks: [], durable: new Map(), authorization: [], cancelled: 0, streams: 0, open: 0 };
}

export function sampleId(batch: number, j: number, plan: TestLoaderPlan): number {
  return batch * plan.batchSize + j;
}

export function batchSizeOf(index: number, plan: TestLoaderPlan): number {
  return index === plan.steps - 1 ? (plan.lastBatchSize ?? plan.batchSize) : plan.batchSize;
}

function sampleOf(index: number, j: number, plan: TestLoaderPlan): sadp.v1.Sample.$Properties {
  const id = sampleId(index, j, plan);
  const size = batchSizeOf(index, plan);
  const gray = new Uint8Array(plan.sampleBytes ?? 4).fill(id % 251);
  gray[0] = index % 256;
  return {
    id,
    key: `s${String(id).padStart(6, '0')}`,
    fields: { gray, cls: new TextEncoder().encode(String(id % 10)) },
    weight: 1 + (id % 3) * 0.5,
    padded: j >= size - (index === plan.steps - 1 ? (plan.padded ?? 0) : 0),
  };
}

export function epochInfo(plan: TestLoaderPlan): sadp.v1.EpochInfo.$Properties {
  const samples = (plan.steps - 1) * plan.batchSize + (plan.lastBatchSize ?? plan.batchSize);
  return {
    jobId: 'job',
    epoch: 0,
    datasetSize: samples * 2,
    selectedCount: samples - (plan.padded ?? 0),
    samplesPerRank: samples,
    steps: plan.steps,
    padded: plan.padded ?? 0,
    pruneRatio: 0.5,
    expectedSize: samples,
    planDigest: plan.planDigest ?? 'digest-1',
    fields: ['cls', 'gray'],
    datasetBytes: 2 * samples * (plan.sampleBytes ?? 4),
    selectedBytes: samples * (plan.sampleBytes ?? 4),
  };
}

export interface TestLoader {
  port: number;
  address: string;
  record: TestLoaderRecord;
  /** Kills every connection (as a crashed process would). */
  kill(): void;
}

export async function startTestLoader(
  plan: TestLoaderPlan,
  faults: TestLoaderFaults = {},
  record: TestLoaderRecord = newRecord(),
  port = 0,
): Promise<TestLoader> {
  let dropped = false;
  const server = new grpc.Server();
  server.addService(LoaderService, {
    describeEpoch: (_call: unknown, cb: grpc.sendUnaryData<Res['info']>) =>
      cb(null, pb.EpochInfo.create(epochInfo(plan))),
    streamEpoch: (call: grpc.ServerDuplexStream<Req, Res>) => {
      const stream = ++record.streams;
      record.open++;
      record.authorization.push(String(call.metadata.get('authorization')[0] ?? ''));
      let open: sadp.v1.OpenEpoch | undefined;
      let acked = 0;
      let sent = 0;
      let maxAckIndex = -1;
      let acksSinceCommit = 0;
      let done = false;
      const received: TestLoaderRecord['acks'] = [];
      let committedUpTo = 0; // entries of `received` already durable

      const finish = (err?: { code: grpc.status; details: string }): void => {
        if (done) return;
        done = true;
        record.open--;
        if (err) call.emit('error', err);
        else call.end();
      };
      const commit = (): void => {
        if (done || maxAckIndex < 0) return;
        for (; committedUpTo < received.length; committedUpTo++) {
          const a = received[committedUpTo]!;
          a.ids.forEach((id, k) => {
            if (a.scores[k] !== undefined) record.durable.set(id, a.scores[k]);
          });
        }
        acksSinceCommit = 0;
        call.write(pb.StreamEpochResponse.create({ committed: { throughIndex: maxAckIndex } }));
      };
      const pump = (): void => {
        if (!open || done || faults.hang) return;
        const window = open.maxUnackedBatches || 4;
        while (sent < plan.steps && sent < acked + window) {
          if (faults.stallAfterBatch !== undefined && stream === 1 && sent > faults.stallAfterBatch) return;
          const index = sent++;
          const samples = Array.from({ length: batchSizeOf(index, plan) }, (_, j) =>
            sampleOf(index, j, plan),
          );
          const groups: sadp.v1.Sample.$Properties[][] = [[]];
          let bytes = 0;
          for (const s of samples) {
            const b = (s.fields!.gray as Uint8Array).length;
            if (plan.partBytes && bytes + b > plan.partBytes && groups.at(-1)!.length > 0) {
              groups.push([]);
              bytes = 0;
            }
            groups.at(-1)!.push(s);
            bytes += b;
          }
          groups.forEach((g, part) =>
            call.write(
              pb.StreamEpochResponse.create({ batch: { index, part, parts: groups.length, samples: g } }),
            ),
          );
          if (faults.dropAfterBatch === index && !dropped) {
            dropped = true;
            finish({
              code: faults.dropStatus ?? grpc.status.UNAVAILABLE,
              details: 'SADP_TEST_DROP: dropped',
            });
            return;
          }
        }
      };
      call.on('data', (req: Req) => {
        if (done) return;
        if (req.open) {
          open = pb.OpenEpoch.create(req.open);
          record.opens.push(open);
          if (faults.rejectWith) return finish(faults.rejectWith);
          if (faults.token !== undefined && record.authorization.at(-1) !== `Bearer ${faults.token}`) {
            return finish({ code: grpc.status.UNAUTHENTICATED, details: 'SADP_AUTH_TOKEN: bad token' });
          }
          if (faults.hang) return;
          acked = sent = open.cursor;
          call.write(pb.StreamEpochResponse.create({ info: epochInfo(plan) }));
          pump();
          return;
        }
        const a = req.ack;
        if (!a) return;
        const entry = {
          stream,
          index: a.index ?? 0,
          ids: [...(a.ids ?? [])],
          scores: [...(a.scores ?? [])],
          losses: [...(a.losses ?? [])],
        };
        record.acks.push(entry);
        received.push(entry);
        maxAckIndex = Math.max(maxAckIndex, entry.index);
        acked = Math.max(acked, entry.index + 1);
        const every = faults.commitEvery ?? 1;
        if (every > 0 && ++acksSinceCommit >= every) commit();
        if (faults.endWhenAcked && stream === 1 && entry.index === plan.steps - 1) return finish();
        pump();
      });
      call.on('end', () => {
        // The client half-closed after its last ack: commit and finish. grpc-js
        // also ends the request side of a call the client cancels; that one
        // arrives before the epoch was acked through and is left to 'cancelled'.
        if (acked < plan.steps) return;
        commit();
        finish();
      });
      // grpc-js emits 'cancelled' whenever the stream closes; only a close
      // before this server finished the call is a cancellation by the client.
      call.on('cancelled', () => {
        if (done) return;
        done = true;
        record.cancelled++;
        record.open--;
      });
      call.on('error', () => {});
    },
  });
  const bound =
    port === 0
      ? await bindLoopback(server)
      : await new Promise<number>((resolve, reject) =>
          server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
            err ? reject(err) : resolve(p),
          ),
        );
  return { port: bound, address: `127.0.0.1:${bound}`, record, kill: () => server.forceShutdown() };
}
