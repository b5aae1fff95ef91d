// Tasks in one long-lived worker thread, keeping the event loop free while
// seconds of arithmetic run. The tasks here run once per epoch (a plan, a
// shuffle) and starting a thread loads its module graph each time (~0.2 s of
// CPU for the scorer's plan worker, much more on a loaded 2-core box), so a
// runner starts its thread on the first task and keeps it, unref'd while
// idle so it never holds the process open. Tasks run in the thread one after
// another, in the order posted. The worker module serves them with
// serveWorkerTasks (worker-serve.ts).
import { fileURLToPath } from 'node:url';
import { Worker, type Transferable } from 'node:worker_threads';
import { SadpError, type StatusCode } from './errors.js';
import { isSadpErrorCode } from './error-codes.js';
import { cancelledError, onAbort } from './signals.js';
import type { WorkerReply, WorkerRequest } from './worker-serve.js';

// Workers are sibling modules, .js when built and .ts under tsx (benchmarks),
// where the thread must register tsx's loader itself.
const fromSource = import.meta.url.endsWith('.ts');

function startWorker(moduleBase: URL): Worker {
  const url = new URL(`${moduleBase.href}${fromSource ? '.ts' : '.js'}`);
  if (!fromSource) return new Worker(url);
  // Workers do not inherit tsx's ESM hooks on Node 20; its CommonJS hook loads the module.
  const boot = `require('tsx/cjs/api').register(); require(${JSON.stringify(fileURLToPath(url))});`;
  return new Worker(boot, { eval: true });
}

export interface WorkerTaskOptions {
  /** Buffers handed to the worker instead of copied. */
  transfer?: Transferable[];
  /** What runs, for the cancellation message. */
  what: string;
  /** The error when the task fails (it threw, or the thread died before answering). */
  failed: (reason: string, cause: unknown) => SadpError;
  /**
   * The error when the task threw a SadpError, given that error rebuilt on
   * this thread (code, status, message); default `failed`.
   */
  thrown?: (err: SadpError) => SadpError;
  /** Rejects the task with SADP_CANCELLED (and stops the thread if it has nothing else to do). */
  signal?: AbortSignal;
}

export interface WorkerTaskRunner {
  /** Posts `task` to the runner's thread (started when missing) and resolves with its answer. */
  run<T>(task: unknown, options: WorkerTaskOptions): Promise<T>;
  /** Threads started so far: 1 until the thread dies, a task is cancelled mid-run with nothing else pending, or close() ran (a task that throws keeps it). */
  readonly threadsStarted: number;
  /** Stops the thread; pending tasks reject with SADP_CANCELLED. Later runs start a new thread. */
  close(): Promise<void>;
}

interface Pending {
  resolve: (value: never) => void;
  reject: (err: unknown) => void;
  options: WorkerTaskOptions;
  stopListening: () => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
}

/**
 * A runner for the worker module at `moduleBase` (a module URL without its
 * extension, e.g. `new URL('./plan-worker', import.meta.url)`).
 */
export function createWorkerTaskRunner(moduleBase: URL): WorkerTaskRunner {
  let thread: Thread | undefined;
  let started = 0;
  let nextId = 1;

  const settle = (t: Thread, id: number): Pending | undefined => {
    const p = t.pending.get(id);
    if (!p) return undefined;
    t.pending.delete(id);
    p.stopListening();
    // Idle: the thread must not keep the process alive.
    if (t.pending.size === 0) t.worker.unref();
    return p;
  };

  /** Forgets `t` and terminates it; its pending tasks reject with `reasonOf(task)`. */
  const stop = (t: Thread, reasonOf: (p: Pending) => unknown): Promise<unknown> => {
    if (thread === t) thread = undefined;
    for (const id of [...t.pending.keys()]) {
      const p = settle(t, id);
      p?.reject(reasonOf(p));
    }
    t.worker.removeAllListeners();
    // A late 'error' after terminate must not become an uncaught exception.
    t.worker.on('error', () => undefined);
    return t.worker.terminate();
  };

  const open = (): Thread => {
    const worker = startWorker(moduleBase);
    started++;
    const t: Thread = { worker, pending: new Map() };
    const die = (cause: unknown): void => {
      const reason = String((cause as Error)?.message ?? cause);
      void stop(t, (p) => p.options.failed(reason, cause));
    };
    worker.on('message', (reply: WorkerReply) => {
      const p = settle(t, reply.id);
      if (!p) return;
      if (reply.ok) {
        p.resolve(reply.result as never);
        return;
      }
      const { thrown, failed } = p.options;
      if (thrown && reply.code !== undefined && isSadpErrorCode(reply.code)) {
        p.reject(thrown(new SadpError(reply.code, reply.error, { status: reply.status as StatusCode })));
      } else p.reject(failed(reply.error, new Error(reply.error)));
    });
    worker.on('error', die);
    // A reply that cannot be deserialized settles nothing: fail every pending task instead of hanging.
    worker.on('messageerror', die);
    worker.on('exit', (exitCode) => die(new Error(`worker exited with code ${exitCode}`)));
    return t;
  };

  return {
    get threadsStarted() {
      return started;
    },
    run<T>(task: unknown, options: WorkerTaskOptions): Promise<T> {
      const { signal, what } = options;
      if (signal?.aborted) return Promise.reject(cancelledError(signal, what));
      const t = (thread ??= open());
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const stopListening = onAbort(signal, () => {
          const p = settle(t, id);
          if (!p) return;
          p.reject(cancelledError(signal, what));
          // Nothing else waits on the thread: stop the work rather than finish it for nobody.
          if (t.pending.size === 0) void stop(t, () => undefined);
        });
        t.pending.set(id, { resolve, reject, options, stopListening });
        t.worker.ref();
        try {
          const request: WorkerRequest = { id, task };
          t.worker.postMessage(request, options.transfer ?? []);
        } catch (err) {
          settle(t, id)?.reject(options.failed(String((err as Error)?.message ?? err), err));
        }
      });
    },
    async close(): Promise<void> {
      if (thread) await stop(thread, (p) => cancelledError(undefined, p.options.what));
    },
  };
}
