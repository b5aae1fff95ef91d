// One StreamEpoch call: a trainer rank's epoch. After OpenEpoch the loader
// sends EpochInfo, then the rank's batches from `cursor` on, each as one or
// more BatchParts, never more than max_unacked_batches beyond the last ack;
// it prefetches up to prefetchBatches batches under the global byte budget
// and honours the socket's backpressure. Acks carry scores, which go to the
// score forwarder; once the scores of every ack through index k are durable
// at the scorer the loader sends ScoresCommitted{through_index: k}.
//
// The loader ends the stream with OK when (a) the last batch of the epoch was
// acked on this stream and every ack's scores are committed, or (b) the
// client half-closed and the scores it sent are committed. On shutdown it
// stops sending new batches, waits for the acks of what it sent, commits
// them, and ends with UNAVAILABLE so the trainer reconnects with its cursor.
import type * as grpc from '@grpc/grpc-js';
import { cancelledError, raceSignal } from '../../common/signals.js';
import { Status, toGrpcError, type SadpError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { pb, type sadp, type SelfEncoding } from '../../proto/index.js';
import type { StreamProgress } from './epoch-boundary.js';
import { PrefetchWindow } from './prefetch-window.js';
import { splitBatchForWrite } from './batch-parts.js';
import { checkAck } from './ack-check.js';
import { writeInOrder } from './call-writer.js';
import { epochLayout, type EpochLayout } from './epoch-layout.js';
import type { EpochState, JobContext } from './job-registry.js';
import { checkShape, openJob, type LoaderCore } from './loader-core.js';
import { DEFAULT_MAX_UNACKED, STATUS_NAMES, drainingError, epochInfo, rpcError } from './stream-messages.js';

/** Batch parts are written as SelfEncoding messages (batch-encoder.ts), encoded by the method's serializer. */
export type StreamEpochCall = grpc.ServerDuplexStream<
  sadp.v1.StreamEpochRequest,
  sadp.v1.StreamEpochResponse | Uint8Array | SelfEncoding
>;

interface PendingAck {
  index: number;
  durable: boolean;
}

type Phase = 'await-open' | 'opening' | 'open' | 'done';

export function handleStreamEpoch(core: LoaderCore, call: StreamEpochCall): void {
  new EpochStream(core, call).start();
}

class EpochStream {
  private readonly controller = new AbortController();
  private phase: Phase = 'await-open';
  private cleaned = false;
  private log: Logger;
  private ctx!: JobContext;
  private state!: EpochState;
  private layout!: EpochLayout;
  private jobId = '';
  private epoch = 0;
  private rank = 0;
  private cursor = 0;
  private maxUnacked = DEFAULT_MAX_UNACKED;
  /** Highest batch index acknowledged (acks are cumulative). */
  private lastAck = -1;
  /** Highest batch index whose parts started going out. */
  private lastStarted = -1;
  private window!: PrefetchWindow;
  /** The batch the writer is waiting for or writing (never trimmed). */
  private writing = -1;
  private wakeWriter: (() => void) | undefined;
  /** Times credit grew: batches <= limit became sendable at `at` (ms). */
  private readonly grants: Array<{ limit: number; at: number }> = [];
  private inBatch = false;
  private commitQueued = -1;
  private commitSent = -1;
  private maxCommitted = -1;
  private pendingAcks: PendingAck[] = [];
  private finalAckSeen = false;
  private halfClosed = false;
  private writerDone = false;
  private progress: StreamProgress | undefined;
  private openTimer: NodeJS.Timeout | undefined;
  private readonly queued: sadp.v1.StreamEpochRequest[] = [];
  private readonly onDrain = (): void => this.drainRequested();

  constructor(
    private readonly core: LoaderCore,
    private readonly call: StreamEpochCall,
  ) {
    this.log = core.logger.child({ rpc: 'StreamEpoch', peer: call.getPeer() });
  }

  start(): void {
    const { core, call } = this;
    core.activeStreams++;
    core.metrics.activeStreams.inc();
    call.on('data', (m: sadp.v1.StreamEpochRequest) => this.onMessage(m));
    call.on('end', () => this.onHalfClose());
    call.on('cancelled', () => {
      if (!this.cleaned) this.log.debug('stream cancelled by the client');
      this.cleanup('CANCELLED');
    });
    call.on('error', () => this.controller.abort());
    call.on('close', () => this.cleanup('CANCELLED'));
    if (core.drainSignal.aborted) {
      this.fail(drainingError());
      return;
    }
    core.drainSignal.addEventListener('abort', this.onDrain, { once: true });
    this.openTimer = setTimeout(() => {
      if (this.phase === 'await-open') {
        this.fail(
          rpcError(
            Status.DEADLINE_EXCEEDED,
            `no OpenEpoch within ${core.options.openTimeoutMs} ms`,
            'SADP_OPEN_TIMEOUT',
          ),
        );
      }
    }, core.options.openTimeoutMs);
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
    const { core } = this;
    const signal = this.controller.signal;
    const jobId = o.jobId ?? '';
    const epoch = o.epoch ?? 0;
    const rank = o.rank ?? 0;
    const world = o.worldSize ?? 0;
    const batchSize = o.batchSize ?? 0;
    const cursor = o.cursor ?? 0;
    this.jobId = jobId;
    this.epoch = epoch;
    this.rank = rank;
    this.log = this.log.child({ job: jobId, epoch, rank, world });
    checkShape(jobId, world, rank, batchSize);
    const ctx = await openJob(core, jobId, epoch, this.call.metadata, signal);
    const state = await core.registry.epoch(ctx, epoch, signal);
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
    if (core.drainSignal.aborted) {
      throw drainingError();
    }
    this.ctx = ctx;
    this.state = state;
    this.layout = layout;
    this.cursor = cursor;
    this.maxUnacked = o.maxUnackedBatches || DEFAULT_MAX_UNACKED;
    this.lastAck = cursor - 1;
    this.lastStarted = cursor - 1;
    this.grants.push({ limit: cursor - 1 + this.maxUnacked, at: performance.now() });
    this.window = new PrefetchWindow({
      ctx,
      state,
      layout,
      rank,
      prefetchBatches: core.options.prefetchBatches,
      fairShare: () => core.budget.capacity / Math.max(1, core.activeStreams),
      deps: core.fetchDeps(ctx, epoch),
    });
    this.phase = 'open';
    core.streams.add(this);

    const rankKey = { jobId, epoch, world, batchSize, rank };
    this.progress = core.boundary.streamOpened(rankKey);
    // A rank that already acked everything does not hold up the next plan.
    if (cursor === layout.steps) this.progress.closed();
    const warm = core.boundary.takeWarm(rankKey);
    if (warm) this.window.adopt(warm, cursor);
    core.metrics.epoch.set({ job: jobId }, epoch);
    core.metrics.subsetSize.set({ job: jobId }, layout.selected);
    this.writeControl(pb.StreamEpochResponse.create({ info: epochInfo(ctx, state, layout) }));
    this.log.info(
      {
        cursor,
        steps: layout.steps,
        batchSize,
        selected: layout.selected,
        padded: layout.padded,
        warm: warm?.size ?? 0,
      },
      'stream opened',
    );
    void this.runWriter();
  }

  private onAck(ack: sadp.v1.Ack.$Properties): void {
    const { layout, state, rank } = this;
    const { index, ids, scores, losses } = checkAck(ack, {
      layout,
      state,
      rank,
      lastSent: this.lastStarted,
      jobId: this.jobId,
      epoch: this.epoch,
    });
    if (index > this.lastAck) {
      this.lastAck = index;
      this.grants.push({ limit: index + this.maxUnacked, at: performance.now() });
      this.wake();
    }
    const entry: PendingAck = { index, durable: false };
    this.pendingAcks.push(entry);
    const { forwarder } = this.core;
    forwarder.add(this.jobId, this.epoch, ids, scores, losses, {
      durable: () => this.onDurable(entry),
      failed: (err) => this.fail(err),
    });
    if (index === layout.steps - 1 && !this.finalAckSeen) {
      this.finalAckSeen = true;
      this.progress?.finished();
      void forwarder.flush(this.jobId);
    }
    if (forwarder.full(this.jobId)) {
      // Bounded score buffer: stop reading acks (and so granting credit) until the scorer catches up.
      this.call.pause();
      void forwarder.waitForRoom(this.jobId).then(() => {
        if (this.phase === 'open') this.call.resume();
      });
    }
    this.maybeFinish();
  }

  private onDurable(entry: PendingAck): void {
    if (this.phase === 'done') return;
    entry.durable = true;
    let minPending = Infinity;
    const still: PendingAck[] = [];
    for (const a of this.pendingAcks) {
      if (a.durable) this.maxCommitted = Math.max(this.maxCommitted, a.index);
      else {
        still.push(a);
        minPending = Math.min(minPending, a.index);
      }
    }
    this.pendingAcks = still;
    const through = Math.min(this.maxCommitted, minPending - 1);
    if (through > this.commitSent && through > this.commitQueued) {
      if (this.inBatch) this.commitQueued = through;
      else this.sendCommit(through);
    }
    this.maybeFinish();
  }

  private sendCommit(through: number): void {
    this.commitSent = through;
    this.writeControl(
      pb.StreamEpochResponse.create({ committed: pb.ScoresCommitted.create({ throughIndex: through }) }),
    );
  }

  private onHalfClose(): void {
    if (this.phase === 'done') return;
    this.halfClosed = true;
    if (this.phase === 'await-open') {
      this.fail(rpcError(Status.FAILED_PRECONDITION, 'stream half-closed before OpenEpoch'));
      return;
    }
    this.wake();
    if (this.phase === 'open') void this.core.forwarder.flush(this.jobId);
    this.maybeFinish();
  }

  private drainRequested(): void {
    if (this.phase === 'await-open') {
      this.fail(drainingError());
      return;
    }
    this.wake();
    if (this.phase === 'open') void this.core.forwarder.flush(this.jobId);
    this.maybeFinish();
  }

  // ---- outgoing batches -------------------------------------------------

  private stopping(): boolean {
    return this.phase !== 'open' || this.halfClosed || this.core.drainSignal.aborted;
  }

  private wake(): void {
    const w = this.wakeWriter;
    this.wakeWriter = undefined;
    w?.();
  }

  private waitCredit(batch: number): Promise<void> {
    if (batch <= this.lastAck + this.maxUnacked || this.stopping()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const signal = this.controller.signal;
      const onAbort = (): void => reject(cancelledError(signal, 'wait for credit'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.wakeWriter = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
    });
  }

  /** When batch `batch` became sendable (the trainer's view of "requested"). */
  private grantTime(batch: number): number {
    while (this.grants.length > 1 && (this.grants[0] as { limit: number }).limit < batch) this.grants.shift();
    return (this.grants[0] as { at: number }).at;
  }

  /** Budget contention: give back prefetched batches (latest first) until this stream holds at most `share`. */
  trim(share: number): void {
    this.window?.trim(share, this.writing);
  }

  private async runWriter(): Promise<void> {
    const { core, layout } = this;
    const signal = this.controller.signal;
    try {
      for (let b = this.cursor; b < layout.steps; b++) {
        if (this.stopping()) break;
        this.writing = b;
        this.window.topUp(b);
        await this.waitCredit(b);
        if (this.stopping()) break;
        const requestedAt = this.grantTime(b);
        // A trim may have dropped the batch while the writer waited for credit.
        const fetch = this.window.take(b);
        const samples = await raceSignal(fetch.ready, signal, `fetch of batch ${b}`);
        const { parts, split } = splitBatchForWrite(fetch.spec, samples, core.options.maxMessageBytes);
        if (split.length > 0) {
          this.log.debug(
            { batch: b, ids: split.slice(0, 8), maxMessageBytes: core.options.maxMessageBytes },
            'samples larger than maxMessageBytes split across parts',
          );
        }
        this.inBatch = true;
        this.lastStarted = b;
        // Each part encodes itself when grpc-js serializes it (batch-encoder.ts).
        await writeInOrder(this.call, parts, signal);
        this.inBatch = false;
        // Every part was serialized (grpc-js copies it into its frame): the bytes can be reused.
        core.reader.recycle(samples);
        fetch.release();
        this.window.sent(b);
        const n = fetch.spec.ids.length;
        core.counters.batchesSent++;
        core.counters.samplesSent += n;
        core.metrics.batchesSent.inc();
        core.metrics.samplesSent.inc(n);
        core.metrics.batchLatency.observe((performance.now() - requestedAt) / 1000);
        if (this.commitQueued > this.commitSent) this.sendCommit(this.commitQueued);
      }
      this.writerDone = true;
      this.window.disposeAll();
      this.maybeFinish();
    } catch (err) {
      this.inBatch = false;
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
    if (this.phase !== 'open' || this.inBatch) return;
    if (this.pendingAcks.length > 0) return;
    const steps = this.layout.steps;
    if (steps === 0) {
      this.finish();
      return;
    }
    if (!this.writerDone) return;
    if (this.finalAckSeen || this.halfClosed) {
      this.finish();
      return;
    }
    if (this.core.drainSignal.aborted && this.lastAck >= this.lastStarted) {
      this.finish(
        rpcError(
          Status.UNAVAILABLE,
          `the loader is shutting down; reconnect with cursor ${this.lastAck + 1}`,
          'SADP_DRAINING',
        ),
      );
    }
  }

  private finish(err?: SadpError): void {
    if (this.phase === 'done') return;
    if (this.commitQueued > this.commitSent) this.sendCommit(this.commitQueued);
    if (err) {
      this.fail(err);
      return;
    }
    this.phase = 'done';
    this.log.info({ lastAck: this.lastAck, committed: this.commitSent }, 'stream finished');
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
    const { core } = this;
    clearTimeout(this.openTimer);
    core.drainSignal.removeEventListener('abort', this.onDrain);
    this.controller.abort();
    core.streams.delete(this);
    (this.window as PrefetchWindow | undefined)?.disposeAll();
    this.progress?.closed();
    core.activeStreams--;
    core.metrics.activeStreams.dec();
    core.metrics.streamsEnded.inc({ status: outcome });
    core.syncIo();
    core.streamClosed();
  }
}
