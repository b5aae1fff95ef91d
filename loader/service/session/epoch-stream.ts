// One StreamEpoch call: a trainer rank's epoch. After OpenEpoch the loader
// sends EpochInfo, then the rank's batches from `cursor` on, each as one or
// more BatchParts, never more than max_unacked_batches beyond the last ack
// (credit-window.ts), from the stream's supply (prefetched under the global
// byte budget) and honouring the socket's backpressure (call-writer.ts).
// Acks carry scores, which go to the score sink; once the scores of every
// ack through index k are durable at the scorer the loader sends
// ScoresCommitted{through_index: k} (commit-tracker.ts).
//
// The loader ends the stream with OK when (a) the last batch of the epoch was
// acked on this stream and every ack's scores are committed, or (b) the
// client half-closed and the scores it sent are committed. On shutdown it
// stops sending new batches, waits for the acks of what it sent, commits
// them, and ends with UNAVAILABLE so the trainer reconnects with its cursor.
import type * as grpc from '@grpc/grpc-js';
import { onAbort, raceSignal } from '../../../common/signals.js';
import { Status, toGrpcError, type SadpError } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import { pb, type sadp, type SelfEncoding } from '../../../proto/index.js';
import { epochLayout, type EpochLayout } from '../jobs/epoch-layout.js';
import type { StreamProgress } from '../feedback/epoch-boundary.js';
import type { EpochState } from '../jobs/job-registry.js';
import type { RankKey } from '../jobs/rank-key.js';
import type { StreamSupply } from '../supply/supply.js';
import { checkAck } from './ack-check.js';
import { splitBatchForWrite } from './batch-parts.js';
import { writeInOrder } from './call-writer.js';
import { CommitTracker } from './commit-tracker.js';
import { CreditWindow } from './credit-window.js';
import { checkShape } from './shape-check.js';
import type { StreamDeps, StreamHooks } from './stream-deps.js';
import { DEFAULT_MAX_UNACKED, STATUS_NAMES, drainingError, epochInfo, rpcError } from './stream-messages.js';

/** Batch parts are written as SelfEncoding messages (batch-encoder.ts), encoded by the method's serializer. */
export type StreamEpochCall = grpc.ServerDuplexStream<
  sadp.v1.StreamEpochRequest,
  sadp.v1.StreamEpochResponse | Uint8Array | SelfEncoding
>;

/** What an open stream serves. */
interface OpenState {
  key: RankKey;
  state: EpochState;
  layout: EpochLayout;
  cursor: number;
  credit: CreditWindow;
  supply: StreamSupply;
  progress: StreamProgress;
}

type Phase = 'await-open' | 'opening' | 'open' | 'done';

export class EpochStream {
  private readonly controller = new AbortController();
  private phase: Phase = 'await-open';
  private cleaned = false;
  private log: Logger;
  private s: OpenState | undefined;
  private readonly commits = new CommitTracker((through) =>
    this.writeControl(
      pb.StreamEpochResponse.create({ committed: pb.ScoresCommitted.create({ throughIndex: through }) }),
    ),
  );
  /** Highest batch index whose parts started going out. */
  private lastStarted = -1;
  private finalAckSeen = false;
  private halfClosed = false;
  private writerDone = false;
  private openTimer: NodeJS.Timeout | undefined;
  private readonly queued: sadp.v1.StreamEpochRequest[] = [];
  private stopDrainListener: () => void = () => undefined;

  constructor(
    private readonly deps: StreamDeps,
    private readonly hooks: StreamHooks,
    private readonly call: StreamEpochCall,
  ) {
    this.log = deps.logger.child({ rpc: 'StreamEpoch', peer: call.getPeer() });
  }

  start(): void {
    const { deps, call } = this;
    call.on('data', (m: sadp.v1.StreamEpochRequest) => this.onMessage(m));
    call.on('end', () => this.onHalfClose());
    call.on('cancelled', () => {
      if (!this.cleaned) this.log.debug('stream cancelled by the client');
      this.cleanup('CANCELLED');
    });
    call.on('error', () => this.controller.abort());
    call.on('close', () => this.cleanup('CANCELLED'));
    if (deps.drainSignal.aborted) {
      this.fail(drainingError());
      return;
    }
    this.stopDrainListener = onAbort(deps.drainSignal, () => this.drainRequested());
    this.openTimer = setTimeout(() => {
      if (this.phase === 'await-open') {
        this.fail(
          rpcError(
            Status.DEADLINE_EXCEEDED,
            `no OpenEpoch within ${deps.openTimeoutMs} ms`,
            'SADP_OPEN_TIMEOUT',
          ),
        );
      }
    }, deps.openTimeoutMs);
  }

  // ---- incoming messages ------------------------------------------------

  private onMessage(req: sadp.v1.StreamEpochRequest): void {
    try {
      switch (this.phase) {
        case 'done':
          return;
        case 'opening':
          this.queued.push(req);
          return;
        case 'await-open':
          if (req.kind !== 'open' || !req.open) {
            throw rpcError(
              Status.FAILED_PRECONDITION,
              `the first message of a stream must be OpenEpoch, got ${req.kind ?? 'an empty request'}`,
            );
          }
          this.phase = 'opening';
          clearTimeout(this.openTimer);
          this.call.pause();
          this.open(req.open).then(
            () => {
              if (this.phase !== 'open') return;
              for (const m of this.queued.splice(0)) this.onMessage(m);
              this.call.resume();
            },
            (err: unknown) => this.fail(err),
          );
          return;
        case 'open':
          if (req.kind === 'open') {
            throw rpcError(Status.FAILED_PRECONDITION, 'OpenEpoch may only be the first message of a stream');
          }
          if (req.kind !== 'ack' || !req.ack)
            throw rpcError(Status.INVALID_ARGUMENT, 'empty StreamEpochRequest');
          this.onAck(req.ack);
          return;
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private async open(o: sadp.v1.OpenEpoch.$Properties): Promise<void> {
    const { deps } = this;
    const key: RankKey = {
      jobId: o.jobId ?? '',
      epoch: o.epoch ?? 0,
      world: o.worldSize ?? 0,
      batchSize: o.batchSize ?? 0,
      rank: o.rank ?? 0,
    };
    const { jobId, epoch, world, batchSize, rank } = key;
    const cursor = o.cursor ?? 0;
    this.log = this.log.child({ job: jobId, epoch, rank, world });
    checkShape(jobId, world, rank, batchSize);
    const { ctx, state } = await deps.jobs.openEpoch(
      jobId,
      epoch,
      this.call.metadata,
      this.controller.signal,
    );
    const layout = epochLayout(state.plan.ids.length, world, batchSize);
    if (cursor > layout.steps) {
      throw rpcError(
        Status.OUT_OF_RANGE,
        `cursor ${cursor} is beyond the ${layout.steps} batches of rank ${rank} in job ${jobId} epoch ${epoch} ` +
          `(world ${world}, batch ${batchSize})`,
        'SADP_CURSOR_OUT_OF_RANGE',
      );
    }
    if (this.phase !== 'opening') return;
    if (deps.drainSignal.aborted) throw drainingError();
    this.lastStarted = cursor - 1;
    const progress = deps.boundary.streamOpened(key);
    // A rank that already acked everything does not hold up the next plan.
    if (cursor === layout.steps) progress.closed();
    const supply = deps.supply.openStream({ ctx, state, layout, key, cursor });
    const credit = new CreditWindow(cursor, o.maxUnackedBatches || DEFAULT_MAX_UNACKED);
    this.s = { key, state, layout, cursor, credit, supply, progress };
    this.phase = 'open';
    deps.metrics.epoch.set({ job: jobId }, epoch);
    deps.metrics.subsetSize.set({ job: jobId }, layout.selected);
    this.writeControl(pb.StreamEpochResponse.create({ info: epochInfo(ctx, state, layout) }));
    this.log.info(
      {
        cursor,
        steps: layout.steps,
        batchSize,
        selected: layout.selected,
        padded: layout.padded,
        warm: supply.adopted,
      },
      'stream opened',
    );
    void this.runWriter(this.s);
  }

  private onAck(ack: sadp.v1.Ack.$Properties): void {
    const s = this.s as OpenState;
    const { layout, state, key } = s;
    const { index, ids, scores, losses } = checkAck(ack, {
      layout,
      state,
      rank: key.rank,
      lastSent: this.lastStarted,
      jobId: key.jobId,
      epoch: key.epoch,
    });
    s.credit.ack(index);
    const durable = this.commits.track(index);
    const { scores: sink } = this.deps;
    sink.add(key.jobId, key.epoch, ids, scores, losses, {
      durable: () => {
        if (this.phase === 'done') return;
        durable();
        this.maybeFinish();
      },
      failed: (err) => this.fail(err),
    });
    if (index === layout.steps - 1 && !this.finalAckSeen) {
      this.finalAckSeen = true;
      s.progress.finished();
      void sink.flush(key.jobId);
    }
    if (sink.full(key.jobId)) {
      // Bounded score buffer: stop reading acks (and so granting credit) until the scorer catches up.
      this.call.pause();
      void sink.waitForRoom(key.jobId).then(() => {
        if (this.phase === 'open') this.call.resume();
      });
    }
    this.maybeFinish();
  }

  private onHalfClose(): void {
    if (this.phase === 'done') return;
    this.halfClosed = true;
    if (this.phase === 'await-open') {
      this.fail(rpcError(Status.FAILED_PRECONDITION, 'stream half-closed before OpenEpoch'));
      return;
    }
    this.stopRequested();
  }

  private drainRequested(): void {
    if (this.phase === 'await-open') {
      this.fail(drainingError());
      return;
    }
    this.stopRequested();
  }

  /** Half-close or drain: the writer stops at the next batch, what was sent gets committed. */
  private stopRequested(): void {
    this.s?.credit.wake();
    if (this.phase === 'open' && this.s) void this.deps.scores.flush(this.s.key.jobId);
    this.maybeFinish();
  }

  // ---- outgoing batches -------------------------------------------------

  private stopping(): boolean {
    return this.phase !== 'open' || this.halfClosed || this.deps.drainSignal.aborted;
  }

  private async runWriter(s: OpenState): Promise<void> {
    const { deps } = this;
    const { layout, credit, supply } = s;
    const signal = this.controller.signal;
    const stopping = (): boolean => this.stopping();
    try {
      for (let b = s.cursor; b < layout.steps; b++) {
        if (this.stopping()) break;
        supply.topUp(b);
        await credit.wait(b, signal, stopping);
        if (this.stopping()) break;
        const requestedAt = credit.grantTime(b);
        // A trim may have dropped the batch while the writer waited for credit.
        const fetch = supply.take(b);
        const samples = await raceSignal(fetch.ready, signal, `fetch of batch ${b}`);
        const { parts, split } = splitBatchForWrite(fetch.spec, samples, deps.maxMessageBytes);
        if (split.length > 0) {
          this.log.debug(
            { batch: b, ids: split.slice(0, 8), maxMessageBytes: deps.maxMessageBytes },
            'samples larger than maxMessageBytes split across parts',
          );
        }
        this.commits.batchStarted();
        this.lastStarted = b;
        // Each part encodes itself when grpc-js serializes it (batch-encoder.ts).
        await writeInOrder(this.call, parts, signal, (p) => p.written());
        fetch.release();
        supply.sent(b);
        const n = fetch.spec.ids.length;
        this.hooks.sent(n);
        deps.metrics.batchLatency.observe((performance.now() - requestedAt) / 1000);
        this.commits.batchEnded();
      }
      this.writerDone = true;
      supply.dropAll();
      this.maybeFinish();
    } catch (err) {
      this.commits.batchAborted();
      if (this.phase === 'done') return;
      this.fail(err);
    }
  }

  /** A small message between batches (EpochInfo, ScoresCommitted); the call's own buffer holds it. */
  private writeControl(message: sadp.v1.StreamEpochResponse): void {
    if (this.phase === 'done' || this.cleaned) return;
    this.call.write(message);
  }

  // ---- ending -----------------------------------------------------------

  private maybeFinish(): void {
    const s = this.s;
    if (this.phase !== 'open' || !s || this.commits.writing) return;
    if (this.commits.pending > 0) return;
    if (s.layout.steps === 0) {
      this.finish();
      return;
    }
    if (!this.writerDone) return;
    if (this.finalAckSeen || this.halfClosed) {
      this.finish();
      return;
    }
    if (this.deps.drainSignal.aborted && s.credit.lastAck >= this.lastStarted) {
      this.finish(
        rpcError(
          Status.UNAVAILABLE,
          `the loader is shutting down; reconnect with cursor ${s.credit.lastAck + 1}`,
          'SADP_DRAINING',
        ),
      );
    }
  }

  private finish(err?: SadpError): void {
    if (this.phase === 'done') return;
    this.commits.flushQueued();
    if (err) {
      this.fail(err);
      return;
    }
    this.phase = 'done';
    this.log.info({ lastAck: this.s?.credit.lastAck, committed: this.commits.committed }, 'stream finished');
    this.call.end();
    this.cleanup('OK');
  }

  private fail(err: unknown): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    const status = toGrpcError(err);
    const name = STATUS_NAMES.get(status.code) ?? String(status.code);
    const level = status.code === Status.INTERNAL || status.code === Status.DATA_LOSS ? 'error' : 'warn';
    this.log[level]({ status: name, err: status.details }, 'stream failed');
    this.call.emit('error', { code: status.code, details: status.details, message: status.details });
    this.cleanup(name);
  }

  private cleanup(outcome: string): void {
    if (this.cleaned) return;
    this.cleaned = true;
    this.phase = 'done';
    clearTimeout(this.openTimer);
    this.stopDrainListener();
    this.controller.abort();
    this.s?.supply.close();
    this.s?.progress.closed();
    this.hooks.ended(outcome);
  }
}
