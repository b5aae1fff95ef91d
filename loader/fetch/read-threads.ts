// Read threads: the range reader's GET + cut of one planned range, run in
// worker threads (read-worker.ts) when one core is not enough. Planning,
// priorities, the concurrency bound and every counter stay on the calling
// thread; a worker gets the range, the ETag and the index entries of its
// samples, and hands back the bytes as a transferred ArrayBuffer (no copy)
// with each sample's fields as offsets into it. gRPC framing stays on the
// server's thread. Each worker has its own S3 client (credentials from the
// same options or default chain) and socket pool.
import { Worker } from 'node:worker_threads';
import { SadpError, Status, type SadpErrorCode, type StatusCode } from '../../common/errors.js';
import { cancelledError, onAbort } from '../../common/signals.js';
import type { S3Options } from '../../storage/index.js';
import type { ShardIndex } from '../shards/index.js';
import type { FetchedSample } from './cut.js';
import type { FetchObserver, RetryConfig, RetryReason } from './fetch-range.js';

export interface ThreadSetup {
  /** How workers open s3:// stores (the loader passes its own, one SDK attempt per GET). */
  s3: S3Options | undefined;
  retry: Omit<RetryConfig, 'random'>;
}

export interface ThreadRequest {
  type: 'read';
  id: number;
  /** The shard as a full URL (its store is opened from the directory). */
  label: string;
  /** The shard's key as the reader's request events name it. */
  key: string;
  start: number;
  end: number;
  etag: string;
  ids: number[];
  /** Index entries of `ids`, in order. */
  entries: ShardIndex['samples'];
}

export type ThreadEvent =
  ['request', string, number, number, number] | ['received', number] | ['retry', RetryReason];

type Cut = [id: number, key: string, bytes: number, fields: [string, number, number][]];

export type ThreadReply =
  | { type: 'events'; id: number; events: ThreadEvent[] }
  | {
      type: 'done';
      id: number;
      events: ThreadEvent[];
      bytes: ArrayBuffer;
      cuts: Cut[];
      durationUs: number;
    }
  | {
      type: 'error';
      id: number;
      events: ThreadEvent[];
      error: {
        code: SadpErrorCode;
        message: string;
        status: StatusCode | undefined;
        /** The worker's `cause`, by code and message (errors cross threads as data). */
        cause: { code: SadpErrorCode | undefined; message: string } | undefined;
      };
    };

export interface ThreadRead {
  samples: FetchedSample[];
  /** Time the GET took in the worker (retries included), us. */
  durationUs: number;
}

export interface ReadThreads {
  /** GETs [start, end) of the shard at `label` and cuts `ids` out of it in a worker. */
  read(
    req: Omit<ThreadRequest, 'type' | 'id'>,
    observer: FetchObserver,
    signal: AbortSignal,
  ): Promise<ThreadRead>;
  close(): Promise<void>;
}

interface Pending {
  label: string;
  start: number;
  end: number;
  observer: FetchObserver;
  signal: AbortSignal;
  resolve(r: ThreadRead): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

const WORKER_URL = new URL('./read-worker.js', import.meta.url);

/** The worker's error as a SadpError with the same code, message and status (its cause one level deep). */
function rebuild(e: Extract<ThreadReply, { type: 'error' }>['error']): SadpError {
  let cause: Error | undefined;
  if (e.cause) {
    cause = e.cause.code ? new SadpError(e.cause.code, e.cause.message) : new Error(e.cause.message);
  }
  return new SadpError(e.code, e.message, { status: e.status, cause });
}

export function createReadThreads(threads: number, setup: ThreadSetup): ReadThreads {
  const slots: (Slot | undefined)[] = Array.from({ length: threads }, () => undefined);
  let nextId = 0;
  let closed = false;

  const replay = (p: Pending, events: ThreadEvent[]): void => {
    for (const e of events) {
      if (e[0] === 'request') p.observer.request({ key: e[1], start: e[2], end: e[3], attempt: e[4] });
      else if (e[0] === 'received') p.observer.received(e[1]);
      else p.observer.retry(e[1], undefined);
    }
  };

  const spawn = (k: number): Slot => {
    const worker = new Worker(WORKER_URL, { workerData: setup });
    const slot: Slot = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (m: ThreadReply) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      replay(p, m.events);
      if (m.type === 'events') return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.type === 'error') {
        if (p.signal.aborted) p.reject(cancelledError(p.signal, `read of ${p.label}`));
        else p.reject(rebuild(m.error));
        return;
      }
      const buf = Buffer.from(m.bytes);
      const samples = m.cuts.map(([id, key, bytes, fields]): FetchedSample => {
        const out: Record<string, Uint8Array> = {};
        for (const [ext, from, to] of fields) out[ext] = buf.subarray(from, to);
        return { id, key, fields: out, bytes };
      });
      p.resolve({ samples, durationUs: m.durationUs });
    });
    const fail = (err: Error): void => {
      if (slots[k] === slot) slots[k] = undefined;
      for (const p of slot.pending.values()) {
        p.reject(
          new SadpError(
            'SADP_INTERNAL',
            `${p.label} bytes [${p.start}, ${p.end}): read thread failed: ${err.message}`,
            { status: Status.INTERNAL, cause: err },
          ),
        );
      }
      slot.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`read thread exited with code ${code}`)));
    slots[k] = slot;
    return slot;
  };

  /** The worker with the fewest reads in flight (spawned on first use). */
  const pick = (): Slot => {
    let best: Slot | undefined;
    for (let k = 0; k < slots.length; k++) {
      const s = slots[k] ?? spawn(k);
      if (!best || s.pending.size < best.pending.size) best = s;
    }
    return best as Slot;
  };

  return {
    read(req, observer, signal) {
      if (closed) {
        return Promise.reject(
          new SadpError('SADP_CANCELLED', `read of ${req.label}: the reader is closed`, {
            status: Status.CANCELLED,
          }),
        );
      }
      if (signal.aborted) return Promise.reject(cancelledError(signal, `read of ${req.label}`));
      const slot = pick();
      const id = nextId++;
      observer.request({ key: req.key, start: req.start, end: req.end, attempt: 1 });
      return new Promise<ThreadRead>((resolve, reject) => {
        const settle = onAbort(signal, () =>
          slot.worker.postMessage({ type: 'cancel', id, reason: `read of ${req.label} cancelled` }),
        );
        slot.pending.set(id, {
          label: req.label,
          start: req.start,
          end: req.end,
          observer,
          signal,
          resolve: (r) => {
            settle();
            resolve(r);
          },
          reject: (err) => {
            settle();
            reject(err);
          },
        });
        if (slot.pending.size === 1) slot.worker.ref();
        slot.worker.postMessage({ type: 'read', id, ...req } satisfies ThreadRequest);
      });
    },
    async close() {
      closed = true;
      await Promise.all(slots.map((s) => (s ? s.worker.terminate() : Promise.resolve(0))));
    },
  };
}
