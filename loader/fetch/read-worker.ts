// A read thread: GET + cut of one planned range at a time, off the loader's
// event loop (read-threads.ts is the other side). It runs the same fetchRange
// (retries with resume, idle timer, ETag pin) and cutSample as the main
// thread, so errors carry the same codes and messages; the fetched bytes go
// back as a transferred ArrayBuffer with the cut fields as offsets into it.
import { parentPort, workerData } from 'node:worker_threads';
import { SadpError, errorMessage, isSadpError, type SadpErrorCode } from '../../common/errors.js';
import { isSadpErrorCode } from '../../common/error-codes.js';
import {
  createS3Client,
  openStore,
  splitObjectUrl,
  type ObjectStore,
  type S3Client,
} from '../../storage/index.js';
import type { ShardIndex } from '../shards/index.js';
import { cutSample } from './cut.js';
import { fetchRange, type FetchObserver } from './fetch-range.js';
import type { ThreadEvent, ThreadReply, ThreadRequest, ThreadSetup } from './read-threads.js';

const setup = workerData as ThreadSetup;
const port = parentPort;
if (!port) throw new Error('read-worker.js runs as a worker thread');

let client: S3Client | undefined;
const stores = new Map<string, ObjectStore>();
const running = new Map<number, AbortController>();

function storeOf(dir: string): ObjectStore {
  let store = stores.get(dir);
  if (!store) {
    const s3 = dir.startsWith('s3://') ? (client ??= createS3Client(setup.s3)) : undefined;
    store = openStore(dir, { client: s3 });
    stores.set(dir, store);
  }
  return store;
}

async function run(req: ThreadRequest): Promise<void> {
  const controller = new AbortController();
  running.set(req.id, controller);
  const events: ThreadEvent[] = [];
  const observer: FetchObserver = {
    // The main thread counted attempt 1 when it posted the request.
    request: (r) => {
      if (r.attempt > 1) events.push(['request', req.key, r.start, r.end, r.attempt]);
    },
    received: (n) => events.push(['received', n]),
    // Before the backoff: the main thread hears of a retry while it waits.
    retry: (reason) => {
      events.push(['retry', reason]);
      port?.postMessage({ type: 'events', id: req.id, events: events.splice(0) } satisfies ThreadReply);
    },
  };
  try {
    const { dir, key } = splitObjectUrl(req.label);
    const began = performance.now();
    const buf = await fetchRange(
      { store: storeOf(dir), key, label: req.label, start: req.start, end: req.end, etag: req.etag },
      { ...setup.retry, random: Math.random },
      observer,
      controller.signal,
    );
    const durationUs = (performance.now() - began) * 1000;
    const cuts: [number, string, number, [string, number, number][]][] = [];
    for (let i = 0; i < req.ids.length; i++) {
      const id = req.ids[i] as number;
      const index = { firstId: id, samples: [req.entries[i]] } as unknown as ShardIndex;
      const s = cutSample(buf, req.start, index, id, req.label);
      const fields: [string, number, number][] = [];
      for (const [ext, v] of Object.entries(s.fields)) {
        const at = v.byteOffset - buf.byteOffset;
        fields.push([ext, at, at + v.byteLength]);
      }
      cuts.push([id, s.key, s.bytes, fields]);
    }
    // Small buffers live in Node's shared pool: transfer only a buffer that owns its memory.
    const owned = buf.byteOffset === 0 && buf.buffer.byteLength === buf.byteLength;
    const bytes = (
      owned ? buf.buffer : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
    ) as ArrayBuffer;
    const reply: ThreadReply = { type: 'done', id: req.id, events, bytes, cuts, durationUs };
    port?.postMessage(reply, [bytes]);
  } catch (err) {
    const cause = err instanceof Error && err.cause !== undefined ? describe(err.cause) : undefined;
    const error = isSadpError(err)
      ? { code: err.code, message: err.message, status: err.status, cause }
      : {
          code: 'SADP_INTERNAL' as const,
          message: `read thread: ${errorMessage(err)}`,
          status: undefined,
          cause,
        };
    port?.postMessage({ type: 'error', id: req.id, events, error } satisfies ThreadReply);
  } finally {
    running.delete(req.id);
  }
}

/** An error's cause as it crosses the thread boundary: its code and message. */
function describe(cause: unknown): { code: SadpErrorCode | undefined; message: string } {
  const code = (cause as { code?: unknown } | undefined)?.code;
  return {
    code: typeof code === 'string' && isSadpErrorCode(code) ? code : undefined,
    message: errorMessage(cause),
  };
}

port.on('message', (m: ThreadRequest | { type: 'cancel'; id: number; reason: string }) => {
  if (m.type === 'cancel') {
    running.get(m.id)?.abort(new SadpError('SADP_CANCELLED', m.reason));
    return;
  }
  void run(m);
});
