// One task in a worker thread (one thread per task: the tasks here run once
// per epoch, so a pool would sit idle), keeping the event loop free while
// seconds of arithmetic run. The worker module answers the first message it
// gets with one message and is then terminated.
import { fileURLToPath } from 'node:url';
import { Worker, type Transferable } from 'node:worker_threads';
import type { SadpError } from './errors.js';
import { cancelledError, onAbort } from './signals.js';

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
  /** The error when the worker fails (it threw, or exited without answering). */
  failed: (reason: string, cause: unknown) => SadpError;
  /** Terminates the worker and rejects with SADP_CANCELLED. */
  signal?: AbortSignal;
}

/**
 * Posts `task` to a new worker on `moduleBase` (a module URL without its
 * extension, e.g. `new URL('./plan-worker', import.meta.url)`) and resolves
 * with its answer.
 */
export function runWorkerTask<T>(moduleBase: URL, task: unknown, options: WorkerTaskOptions): Promise<T> {
  const { what, signal } = options;
  if (signal?.aborted) return Promise.reject(cancelledError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const worker = startWorker(moduleBase);
    let settled = false;
    const settle = (): void => {
      settled = true;
      stopListening();
      void worker.terminate();
    };
    const fail = (cause: unknown): void => {
      if (settled) return;
      settle();
      reject(options.failed(String((cause as Error)?.message ?? cause), cause));
    };
    const stopListening = onAbort(signal, () => {
      if (settled) return;
      settle();
      reject(cancelledError(signal, what));
    });
    worker.once('message', (result: T) => {
      if (settled) return;
      settle();
      resolve(result);
    });
    worker.once('error', fail);
    worker.once('exit', (exitCode) => fail(new Error(`exited with code ${exitCode} before answering`)));
    try {
      worker.postMessage(task, options.transfer ?? []);
    } catch (err) {
      fail(err);
    }
  });
}
