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
import { cancelledError } from '../../common/abort.js';
import { SadpError, Status, toGrpcError, type StatusCode } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { pb, type sadp } from '../../proto/index.js';
import type { StreamProgress } from './epoch-boundary.js';
import { BatchFetch, batchSpec } from './batch-fetch.js';
import { splitBatch } from './batch-parts.js';
import { deliveredTo, epochLayout, type EpochLayout } from './epoch-layout.js';
import { raceSignal, type EpochState, type JobContext } from './job-registry.js';
import { checkShape, openJob, type LoaderCore } from './loader-core.js';

/** Batch parts are written pre-encoded (batch-encoder.ts); the method's serializer passes bytes through. */
export type StreamEpochCall = grpc.ServerDuplexStream<
  sadp.v1.StreamEpochRequest,
  sadp.v1.StreamEpochResponse | Uint8Array
>;

/** Credit window when OpenEpoch.max_unacked_batches is 0. */
export const DEFAULT_MAX_UNACKED = 4;

const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]));

export function epochInfo(ctx: JobContext, state: EpochState, layout: EpochLayout): sadp.v1.EpochInfo {
  return pb.EpochInfo.create({
    jobId: ctx.jobId,
    epoch: state.epoch,
    datasetSize: ctx.dataset.size,
    selectedCount: layout.selected,
    samplesPerRank: layout.samplesPerRank,
    steps: layout.steps,
    padded: layout.padded,
    pruneRatio: state.plan.pruneRatio,
    expectedSize: state.plan.expectedSize,
    planDigest: state.plan.digest,
    fields: ctx.dataset.manifest.fields,
    datasetBytes: state.datasetBytes,
    selectedBytes: state.selectedBytes,
    epochs: ctx.epochs,
  });
}

function rpcError(status: StatusCode, message: string, code = 'SADP_BAD_REQUEST'): SadpError {
  return new SadpError(code, message, { status });
}

/** A stream that has not opened when the loader drains: UNAVAILABLE, so the trainer reconnects elsewhere. */
function drainingError(): SadpError {
  return rpcError(
    Status.UNAVAILABLE,
    'the loader is shutting down; connect to another replica',
    'SADP_DRAINING',
  );
}

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
  private readonly fetches = new Map<number, BatchFetch>();
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
    this.phase = 'open';
    core.streams.add(this);

    this.progress = core.boundary.streamOpened(jobId, epoch, rank, world, batchSize);
    // A rank that already acked everything does not hold up the next plan.
    if (cursor === layout.steps) this.progress.closed();
    const warm = core.boundary.takeWarm(jobId, epoch, world, batchSize, rank);
    if (warm) {
      for (const [i, f] of warm) {
        if (i >= cursor && i < layout.steps && !this.fetches.has(i)) this.fetches.set(i, f);
        else f.dispose();
      }
    }
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
    const index = ack.index ?? 0;
    const ids = ack.ids ?? [];
    const scores = ack.scores ?? [];
    const losses = ack.losses ?? [];
    const what = `ack for batch ${index} of rank ${rank} (job ${this.jobId} epoch ${this.epoch})`;
    if (index >= layout.steps) {
      throw rpcError(
        Status.OUT_OF_RANGE,
        `${what}: the rank has ${layout.steps} batches (0..${layout.steps - 1})`,
      );
    }
    if (index > this.lastStarted) {
      throw rpcError(
        Status.FAILED_PRECONDITION,
        `${what}: that batch was not sent yet (last sent: ${this.lastStarted})`,
      );
    }
    const invalid = (msg: string): SadpError =>
      rpcError(Status.INVALID_ARGUMENT, `${what}: ${msg}`, 'SADP_BAD_ACK');
    if (scores.length !== 0 && scores.length !== ids.length) {
      throw invalid(`${scores.length} scores for ${ids.length} ids (give one per id, or none)`);
    }
    if (losses.length !== 0 && losses.length !== ids.length) {
      throw invalid(`${losses.length} losses for ${ids.length} ids (give one per id, or none)`);
    }
    if (ids.length > 0 && scores.length === 0 && losses.length === 0) {
      throw invalid(`${ids.length} ids but neither scores nor losses`);
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const o = id < state.orderIndexOf.length ? (state.orderIndexOf[id] as number) : -1;
      if (o < 0) throw invalid(`ids[${i}] = ${id} is not selected in this epoch's plan`);
      if (!deliveredTo(layout, o, rank, index)) {
        throw invalid(`ids[${i}] = ${id} was not delivered to rank ${rank} in batches 0..${index}`);
      }
      if (scores.length > 0) {
        const s = scores[i] as number;
        if (!Number.isFinite(s) || s < 0)
          throw invalid(`scores[${i}] = ${s} (id ${id}) must be a finite number >= 0`);
      }
      if (losses.length > 0) {
        const l = losses[i] as number;
        if (!Number.isFinite(l) || l < 0)
          throw invalid(`losses[${i}] = ${l} (id ${id}) must be a finite number >= 0`);
      }
    }

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

  /** Keeps up to prefetchBatches batches from `batch` on fetched or in flight, within this stream's fair share. */
  private topUp(batch: number): void {
    const { core, layout, state, ctx } = this;
    const end = Math.min(layout.steps, batch + core.options.prefetchBatches);
    let held = 0;
    for (const f of this.fetches.values()) held += f.bytes;
    const share = core.budget.capacity / Math.max(1, core.activeStreams);
    for (let i = batch; i < end; i++) {
      if (this.fetches.has(i)) continue;
      const spec = batchSpec(state, layout, ctx.dataset, this.rank, i);
      // The batch to send next always goes; prefetch beyond it only within the fair share,
      // so one stalled trainer cannot hold the whole budget.
      if (i > batch && held + spec.bytes > share) break;
      this.fetches.set(i, BatchFetch.start(spec, core.fetchDeps(ctx, this.epoch), i === batch ? 0 : 1));
      held += spec.bytes;
    }
  }

  /** Budget contention: give back prefetched batches (latest first) until this stream holds at most `share`. */
  trim(share: number): void {
    let held = 0;
    for (const f of this.fetches.values()) held += f.bytes;
    if (held <= share) return;
    const evictable = [...this.fetches.keys()].filter((i) => i > this.writing).sort((a, b) => b - a);
    for (const i of evictable) {
      if (held <= share) break;
      const f = this.fetches.get(i) as BatchFetch;
      f.dispose();
      this.fetches.delete(i);
      held -= f.bytes;
    }
  }

  private async runWriter(): Promise<void> {
    const { core, layout } = this;
    const signal = this.controller.signal;
    try {
      for (let b = this.cursor; b < layout.steps; b++) {
        if (this.stopping()) break;
        this.writing = b;
        this.topUp(b);
        await this.waitCredit(b);
        if (this.stopping()) break;
        const requestedAt = this.grantTime(b);
        // A trim may have dropped the batch while the writer waited for credit.
        if (!this.fetches.has(b)) this.topUp(b);
        const fetch = this.fetches.get(b) as BatchFetch;
        const samples = await raceSignal(fetch.ready, signal, `fetch of batch ${b}`);
        const { parts, split } = splitBatch(fetch.spec, samples, core.options.maxMessageBytes);
        if (split.length > 0) {
          this.log.debug(
            { batch: b, ids: split.slice(0, 8), maxMessageBytes: core.options.maxMessageBytes },
            'samples larger than maxMessageBytes split across parts',
          );
        }
        this.inBatch = true;
        this.lastStarted = b;
        await this.writeAll(parts);
        this.inBatch = false;
        fetch.release();
        this.fetches.delete(b);
        const n = fetch.spec.ids.length;
        core.counters.batchesSent++;
        core.counters.samplesSent += n;
        core.metrics.batchesSent.inc();
        core.metrics.samplesSent.inc(n);
        core.metrics.batchLatency.observe((performance.now() - requestedAt) / 1000);
        if (this.commitQueued > this.commitSent) this.sendCommit(this.commitQueued);
      }
      this.writerDone = true;
      for (const f of this.fetches.values()) f.dispose();
      this.fetches.clear();
      this.maybeFinish();
    } catch (err) {
      this.inBatch = false;
      if (this.phase === 'done') return;
      this.fail(err);
    }
  }

  /** Writes messages in order, waiting for 'drain' when the call's buffer is full, then for the last one to flush. */
  private async writeAll(messages: readonly Uint8Array[]): Promise<void> {
    const signal = this.controller.signal;
    let flushed: Promise<void> = Promise.resolve();
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as Uint8Array;
      flushed = new Promise<void>((resolve, reject) => {
        const ok = this.call.write(message, (err: Error | null | undefined) =>
          err ? reject(err) : resolve(),
        );
        if (!ok && i < messages.length - 1) this.needDrain = true;
      });
      flushed.catch(() => undefined);
      if (this.needDrain) {
        this.needDrain = false;
        await this.waitDrain(signal);
      }
    }
    // The write callback never fires on a cancelled call: race it against the abort.
    await raceSignal(flushed, signal, 'stream write');
  }

  private needDrain = false;

  private waitDrain(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(cancelledError(signal, 'stream write'));
        return;
      }
      const done = (): void => {
        this.call.removeListener('drain', done);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.call.removeListener('drain', done);
        reject(cancelledError(signal, 'stream write'));
      };
      this.call.once('drain', done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
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
    for (const f of this.fetches.values()) f.dispose();
    this.fetches.clear();
    this.progress?.closed();
    core.activeStreams--;
    core.metrics.activeStreams.dec();
    core.metrics.streamsEnded.inc({ status: outcome });
    core.syncIo();
    core.streamClosed();
  }
}
