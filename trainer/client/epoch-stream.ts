// One rank's epoch as an async iterable of batches over the StreamEpoch
// bidirectional stream, surviving loader restarts.
//
// Invariants:
// - `cursor` = batches acknowledged = batches yielded once the consumer asks
//   for the next one (an un-acked batch is acked without scores then), so a
//   reopen at `cursor` yields nothing twice and skips nothing.
// - Acks carrying scores stay in `pending` until a ScoresCommitted on the
//   stream they were last sent on covers them, and are resent after every
//   reopen, so no acknowledged score is lost when a loader dies.
// - At most one call is open; every timer and listener is cleared when the
//   iteration ends, fails, is aborted or is abandoned (`break`).
import { Metadata, status as GrpcStatus, type ClientDuplexStream } from '@grpc/grpc-js';
import type { LoaderClient as GrpcLoaderClient, sadp } from '../../proto/index.js';
import { cancelledError, onAbort, sleep } from '../../common/signals.js';
import { invalidArgument } from '../../common/errors.js';
import {
  assembleBatch,
  toAckRecord,
  toEpochInfo,
  type AckRecord,
  type AckReport,
  type Batch,
  type EpochInfo,
} from './batch.js';
import { LoaderCallError, grpcStatusOf, isRetryableStatus, protocolError, statusName } from './errors.js';
import { backoffDelayMs } from '../../common/retry.js';
import type { ResolvedClientOptions } from './options.js';

export interface EpochRequest {
  job: string;
  epoch: number;
  rank: number;
  worldSize: number;
  batchSize: number;
  /** Batches of this rank already acknowledged (a checkpoint's cursor). Default 0. */
  cursor?: number;
  /** Credit window: batches the loader may send ahead of the last ack. Default 0 = the loader's (4). */
  maxUnackedBatches?: number;
  /** Acks whose scores were not committed when a checkpoint was written; resent on open. */
  resendAcks?: readonly AckRecord[];
  signal?: AbortSignal;
}

interface EpochStreamStats {
  /** Streams opened after the first (reconnects and end-of-epoch flushes). */
  reopens: number;
  /** Batches yielded by this iterator. */
  batches: number;
  /** Member bytes received in yielded batches. */
  bytes: number;
  /** Scored acks dropped because more than `maxPendingAcks` awaited a commit. */
  droppedAcks: number;
}

export interface EpochStream extends AsyncIterable<Batch> {
  /** Batches acknowledged: reopen here to resume. */
  readonly cursor: number;
  /** Highest index covered by a ScoresCommitted, -1 before the first. */
  readonly committedThrough: number;
  /** The epoch's info once the first stream has opened. */
  readonly info: EpochInfo | undefined;
  readonly stats: Readonly<EpochStreamStats>;
  /** Copies of the scored acks not yet committed (for a checkpoint). */
  pendingAcks(): AckRecord[];
}

type Request = sadp.v1.StreamEpochRequest.$Properties;
type Response = sadp.v1.StreamEpochResponse;

/** Failures detected by the client that a reopen cannot fix. */
const LOCAL_FATAL = new Set([
  'SADP_LOADER_PROTOCOL',
  'SADP_LOADER_PLAN_CHANGED',
  'SADP_LOADER_CURSOR_RANGE',
  'SADP_EPOCH_STREAM_REUSED',
]);

/** A status error from grpc-js (as opposed to a bug or a local error). */
function isServiceError(err: unknown): err is Error & { code: number; details: string } {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'number' &&
    typeof (err as { details?: unknown }).details === 'string'
  );
}

/** Messages buffered from the socket before the call is paused (bounded read-ahead). */
const READ_HIGH_WATER = 16;

interface PendingAck {
  record: AckRecord;
  /** Connection generation and sequence of its latest send; -1 when not sent on any stream yet. */
  gen: number;
  seq: number;
}

/** One StreamEpoch call: a bounded message queue fed by the call's events. */
class Connection {
  readonly gen: number;
  /** Sequence of the first ack sent with each index on this call. */
  readonly firstSeq = new Map<number, number>();
  private seq = 0;
  private readonly queue: Response[] = [];
  private failure: unknown;
  private ended = false;
  private halfClosed = false;
  private closed = false;
  private paused = false;
  private wake: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly call: ClientDuplexStream<Request, Response>,
    gen: number,
  ) {
    this.gen = gen;
    call.on('data', (m: Response) => {
      this.queue.push(m);
      if (this.queue.length >= READ_HIGH_WATER && !this.paused) {
        this.paused = true;
        call.pause();
      }
      this.notify();
    });
    call.on('error', (err: unknown) => {
      this.failure ??= err;
      this.settle();
    });
    call.on('end', () => {
      this.ended = true;
      this.settle();
    });
    call.on('drain', () => this.releaseWriters());
  }

  get finished(): boolean {
    return this.closed || this.ended || this.failure !== undefined;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private settle(): void {
    this.releaseWriters();
    this.notify();
  }

  private releaseWriters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** The next message; null when the server ended the call with OK. */
  async next(timeoutMs: number, signal: AbortSignal | undefined, what: string): Promise<Response | null> {
    for (;;) {
      // Aborting stops at once, even with messages already buffered.
      if (signal?.aborted) throw cancelledError(signal, what);
      const m = this.queue.shift();
      if (m) {
        if (this.paused && this.queue.length < READ_HIGH_WATER / 2) {
          this.paused = false;
          this.call.resume();
        }
        return m;
      }
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a grpc-js ServiceError
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return null;
      await new Promise<void>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const done = (): void => {
          if (timer) clearTimeout(timer);
          stopListening();
          this.wake = undefined;
        };
        const stopListening = onAbort(signal, () => {
          done();
          reject(cancelledError(signal, what));
        });
        this.wake = () => {
          done();
          resolve();
        };
        if (timeoutMs > 0) {
          timer = setTimeout(() => {
            done();
            const msg = `${what}: no message from the loader for ${timeoutMs} ms`;
            reject(new LoaderCallError('SADP_LOADER_TIMEOUT', msg, GrpcStatus.DEADLINE_EXCEEDED, msg));
          }, timeoutMs);
        }
      });
    }
  }

  /** Writes a request; waits while the call's write buffer is full. Never rejects. */
  async write(message: Request): Promise<void> {
    if (this.finished || this.halfClosed) return;
    if (this.call.write(message)) return;
    await new Promise<void>((resolve) => {
      if (this.finished) resolve();
      else this.drainWaiters.push(resolve);
    });
  }

  /** Sends an ack and returns its sequence number on this call. */
  sendAck(record: AckRecord): { seq: number; write: Promise<void> } {
    const seq = ++this.seq;
    if (!this.firstSeq.has(record.index)) this.firstSeq.set(record.index, seq);
    const ack: sadp.v1.Ack.$Properties = {
      index: record.index,
      // protobufjs' packed writers index the arrays; typed arrays avoid a copy.
      ids: record.ids as unknown as number[],
      scores: record.scores as unknown as number[] | undefined,
      losses: record.losses as unknown as number[] | undefined,
    };
    return { seq, write: this.write({ ack }) };
  }

  /** Half-closes: tells the loader no more acks follow. */
  end(): void {
    if (this.halfClosed || this.finished) return;
    this.halfClosed = true;
    this.call.end();
  }

  get isHalfClosed(): boolean {
    return this.halfClosed;
  }

  /** Cancels the call if still open and drops every listener. */
  close(): void {
    if (this.closed) return;
    const open = !this.ended && this.failure === undefined;
    this.closed = true;
    this.settle();
    this.call.removeAllListeners('data');
    this.call.removeAllListeners('drain');
    this.call.removeAllListeners('end');
    // Keep an error listener: a cancelled call still emits 'error' (CANCELLED).
    this.call.removeAllListeners('error');
    this.call.on('error', () => {});
    if (open) this.call.cancel();
  }
}

export function openEpochStream(
  client: GrpcLoaderClient,
  options: ResolvedClientOptions,
  request: EpochRequest,
): EpochStream {
  return new EpochStreamImpl(client, options, request);
}

function checkUint(name: string, value: number, min = 0): number {
  if (!Number.isInteger(value) || value < min || value > 0xffffffff) {
    throw invalidArgument(
      'SADP_INVALID_OPTION',
      `epoch request ${name} must be an integer >= ${min}, got ${value}`,
    );
  }
  return value;
}

class EpochStreamImpl implements EpochStream {
  private cursorValue: number;
  private committed = -1;
  private infoValue: EpochInfo | undefined;
  private readonly pending = new Map<number, PendingAck>();
  private conn: Connection | undefined;
  private gen = 0;
  private started = false;
  private nextIndex: number;
  readonly stats: EpochStreamStats = { reopens: 0, batches: 0, bytes: 0, droppedAcks: 0 };
  private readonly what: string;

  constructor(
    private readonly client: GrpcLoaderClient,
    private readonly options: ResolvedClientOptions,
    private readonly request: EpochRequest,
  ) {
    if (!request.job) throw invalidArgument('SADP_INVALID_OPTION', 'epoch request job is empty');
    checkUint('epoch', request.epoch);
    checkUint('worldSize', request.worldSize, 1);
    checkUint('rank', request.rank);
    if (request.rank >= request.worldSize) {
      throw invalidArgument(
        'SADP_INVALID_OPTION',
        `epoch request rank ${request.rank} is not below worldSize ${request.worldSize}`,
      );
    }
    checkUint('batchSize', request.batchSize, 1);
    this.cursorValue = checkUint('cursor', request.cursor ?? 0);
    checkUint('maxUnackedBatches', request.maxUnackedBatches ?? 0);
    this.nextIndex = this.cursorValue;
    for (const r of request.resendAcks ?? []) this.remember(r);
    this.what = `epoch ${request.epoch} of job ${request.job} (rank ${request.rank}/${request.worldSize})`;
  }

  get cursor(): number {
    return this.cursorValue;
  }
  get committedThrough(): number {
    return this.committed;
  }
  get info(): EpochInfo | undefined {
    return this.infoValue;
  }

  pendingAcks(): AckRecord[] {
    return [...this.pending.values()].map(({ record: r }) => ({
      index: r.index,
      ids: r.ids.slice(),
      scores: r.scores?.slice(),
      losses: r.losses?.slice(),
    }));
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    if (this.started) {
      throw new LoaderCallError(
        'SADP_EPOCH_STREAM_REUSED',
        `${this.what}: an epoch stream can be iterated once; open a new one with its cursor`,
        GrpcStatus.FAILED_PRECONDITION,
        'iterated twice',
      );
    }
    this.started = true;
    return this.run();
  }

  private remember(record: AckRecord): void {
    const prev = this.pending.get(record.index);
    if (prev) this.pending.delete(record.index); // re-insert: Map order = age for dropping
    this.pending.set(record.index, { record, gen: -1, seq: -1 });
    while (this.pending.size > this.options.maxPendingAcks) {
      const oldest = this.pending.keys().next().value as number;
      this.pending.delete(oldest);
      this.stats.droppedAcks++;
    }
  }

  private async ack(batch: Batch, report: AckReport | undefined): Promise<void> {
    const record = toAckRecord(batch, report);
    if (batch.index + 1 > this.cursorValue) this.cursorValue = batch.index + 1;
    const scored = record.scores !== undefined || record.losses !== undefined;
    if (scored) this.remember(record);
    const conn = this.conn;
    if (!conn || conn.finished || conn.isHalfClosed) return; // resent (if scored) after the reopen
    const { seq, write } = conn.sendAck(record);
    const entry = scored ? this.pending.get(record.index) : undefined;
    if (entry) {
      entry.gen = conn.gen;
      entry.seq = seq;
    }
    await write;
  }

  private onCommitted(conn: Connection, through: number): void {
    if (through > this.committed) this.committed = through;
    // Conservative: an ack is durable if it was sent on this call no later
    // than the first ack of index `through`, which the loader had received.
    const bound = conn.firstSeq.get(through) ?? Infinity;
    for (const [index, p] of this.pending) {
      if (index <= through && p.gen === conn.gen && p.seq <= bound) this.pending.delete(index);
    }
  }

  private acceptInfo(m: sadp.v1.EpochInfo.$Properties): EpochInfo {
    const info = toEpochInfo(m);
    const prev = this.infoValue;
    if (prev && (prev.planDigest !== info.planDigest || prev.steps !== info.steps)) {
      const msg =
        `${this.what}: the plan changed across a reconnect (digest ${prev.planDigest} -> ${info.planDigest}, ` +
        `steps ${prev.steps} -> ${info.steps}); resuming at cursor ${this.cursorValue} would not continue the same epoch`;
      throw new LoaderCallError('SADP_LOADER_PLAN_CHANGED', msg, GrpcStatus.FAILED_PRECONDITION, msg);
    }
    if (this.cursorValue > info.steps) {
      const msg = `${this.what}: cursor ${this.cursorValue} is past the epoch's ${info.steps} batches`;
      throw new LoaderCallError('SADP_LOADER_CURSOR_RANGE', msg, GrpcStatus.OUT_OF_RANGE, msg);
    }
    this.infoValue = info;
    return info;
  }

  private open(): Connection {
    const metadata = new Metadata();
    if (this.options.token) metadata.set('authorization', `Bearer ${this.options.token}`);
    const call = this.client.streamEpoch(metadata);
    const conn = new Connection(call, ++this.gen);
    void conn.write({
      open: {
        jobId: this.request.job,
        epoch: this.request.epoch,
        rank: this.request.rank,
        worldSize: this.request.worldSize,
        batchSize: this.request.batchSize,
        cursor: this.cursorValue,
        maxUnackedBatches: this.request.maxUnackedBatches ?? 0,
      },
    });
    this.conn = conn;
    return conn;
  }

  private resend(conn: Connection): void {
    for (const p of this.pending.values()) {
      const { seq } = conn.sendAck(p.record);
      p.gen = conn.gen;
      p.seq = seq;
    }
  }

  /** Retry only what a reopen at the cursor can fix: transport and transient statuses. */
  private retryable(err: unknown): boolean {
    if (err instanceof LoaderCallError) return !LOCAL_FATAL.has(err.code) && isRetryableStatus(err.grpcCode);
    if (!isServiceError(err)) return false;
    // A message over maxReceiveMessageBytes fails the same way every time.
    if (err.code === Number(GrpcStatus.RESOURCE_EXHAUSTED) && /larger than max/i.test(err.details))
      return false;
    return isRetryableStatus(err.code);
  }

  private fail(err: unknown): LoaderCallError {
    if (err instanceof LoaderCallError) return err;
    const { code, details } = grpcStatusOf(err);
    return new LoaderCallError(
      `SADP_LOADER_${statusName(code)}`,
      `${this.what}: loader at ${this.options.address} answered ${statusName(code)}: ${details}`,
      code,
      details,
      err,
    );
  }

  private async *run(): AsyncGenerator<Batch, void, undefined> {
    const { signal } = this.request;
    let failures = 0;
    let lastError: unknown;
    let flushed = false;
    let opened = false;
    for (;;) {
      if (signal?.aborted) throw cancelledError(signal, this.what);
      if (failures > 0) {
        if (failures >= this.options.maxAttempts) {
          const last = this.fail(lastError);
          // Scores the loader never confirmed stay here: say so, so that none is lost unnoticed.
          const kept =
            this.pending.size > 0
              ? `; ${this.pending.size} scored acks the loader did not confirm are kept (pendingAcks(): pass them as resendAcks)`
              : '';
          throw new LoaderCallError(
            'SADP_LOADER_RETRIES_EXHAUSTED',
            `${this.what}: ${failures} consecutive attempts failed at cursor ${this.cursorValue}; last: ${last.message}${kept}`,
            GrpcStatus.UNAVAILABLE,
            last.details,
            lastError,
          );
        }
        await sleep(
          // Equal jitter: half the step is fixed so a run of attempts always
          // spans a restart, half is random so trainers spread out.
          backoffDelayMs(failures, {
            baseDelayMs: this.options.baseDelayMs,
            maxDelayMs: this.options.maxDelayMs,
            jitter: 'equal',
          }),
          signal,
          this.what,
        );
      }
      if (opened) this.stats.reopens++;
      opened = true;
      const conn = this.open();
      try {
        const first = await conn.next(this.options.deadlineMs, signal, this.what);
        if (first === null) {
          const msg = `${this.what}: loader ended the stream before EpochInfo`;
          throw new LoaderCallError('SADP_LOADER_STREAM_ENDED', msg, GrpcStatus.UNAVAILABLE, msg);
        }
        if (!first.info)
          throw protocolError(`${this.what}: first message is ${first.kind ?? 'empty'}, not info`);
        const info = this.acceptInfo(first.info);
        this.resend(conn);
        this.nextIndex = this.cursorValue;
        let samples: sadp.v1.Sample.$Properties[] = [];
        let expectPart = 0;
        for (;;) {
          if (this.cursorValue >= info.steps) conn.end();
          const msg = await conn.next(this.options.idleTimeoutMs, signal, this.what);
          if (msg === null) break;
          if (msg.committed) {
            this.onCommitted(conn, msg.committed.throughIndex ?? 0);
            continue;
          }
          if (!msg.batch)
            throw protocolError(`${this.what}: unexpected ${msg.kind ?? 'empty'} message mid-stream`);
          const index = msg.batch.index ?? 0;
          const partNo = msg.batch.part ?? 0;
          const parts = msg.batch.parts ?? 0;
          const got = msg.batch.samples ?? [];
          if (index !== this.nextIndex || partNo !== expectPart || partNo >= parts) {
            throw protocolError(
              `${this.what}: got batch ${index} part ${partNo}/${parts}, expected batch ` +
                `${this.nextIndex} part ${expectPart}`,
            );
          }
          if (expectPart === 0) samples = got;
          else for (const s of got) samples.push(s);
          if (partNo < parts - 1) {
            expectPart++;
            continue;
          }
          const batch = assembleBatch(index, samples, info, (b, r) => this.ack(b, r));
          samples = [];
          expectPart = 0;
          failures = 0;
          this.nextIndex++;
          this.stats.batches++;
          for (const list of Object.values(batch.fields))
            for (const b of list) this.stats.bytes += b.byteLength;
          yield batch;
          if (this.cursorValue <= batch.index) await this.ack(batch, undefined);
        }
        // The loader ended the call with OK.
        if (this.cursorValue >= info.steps) {
          if (this.pending.size === 0 || flushed) return;
          // Scores acked at the very end were not confirmed: reopen at the
          // end of the epoch once, resend them and let the loader commit.
          flushed = true;
          continue;
        }
        const msg = `${this.what}: loader ended the stream at batch ${this.cursorValue} of ${info.steps}`;
        throw new LoaderCallError('SADP_LOADER_STREAM_ENDED', msg, GrpcStatus.UNAVAILABLE, msg);
      } catch (err) {
        if (signal?.aborted) throw cancelledError(signal, this.what);
        if (!this.retryable(err))
          throw err instanceof LoaderCallError || !isServiceError(err) ? err : this.fail(err);
        failures++;
        lastError = err;
      } finally {
        conn.close();
        if (this.conn === conn) this.conn = undefined;
      }
    }
  }
}
