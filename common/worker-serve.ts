// The worker side of worker-task.ts: answers each task posted to this thread
// with the handler's result, or with the error it threw (the thread lives on
// for the next task); a SadpError keeps its code and status across, so the
// caller can raise what the same task raises on its own thread. Kept apart
// so a worker's module graph stays small.
import { parentPort, type Transferable } from 'node:worker_threads';

export interface WorkerRequest {
  id: number;
  task: unknown;
}

export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  /** `code` and `status` when the task threw a SadpError (`error` is then its message). */
  | { id: number; ok: false; error: string; code?: string; status?: number };

/** The code and status of a SadpError (duck-typed: errors.ts stays out of the worker's graph). */
function sadpFields(err: unknown): { code?: string; status?: number } {
  if (!(err instanceof Error)) return {};
  const { code, status } = err as { code?: unknown; status?: unknown };
  return typeof code === 'string' && code.startsWith('SADP_') && typeof status === 'number'
    ? { code, status }
    : {};
}

export interface WorkerAnswer<R> {
  result: R;
  /** Buffers of `result` moved to the caller instead of copied. */
  transfer?: Transferable[];
}

/** Serves tasks on this worker thread's parent port; throws outside a worker thread. */
export function serveWorkerTasks<T, R>(name: string, handle: (task: T) => WorkerAnswer<R>): void {
  const port = parentPort;
  if (!port) throw new Error(`${name} runs only as a worker thread`);
  port.on('message', ({ id, task }: WorkerRequest) => {
    let answer: WorkerAnswer<R>;
    try {
      answer = handle(task as T);
    } catch (err) {
      const reply: WorkerReply = {
        id,
        ok: false,
        error: String((err as Error)?.message ?? err),
        ...sadpFields(err),
      };
      port.postMessage(reply);
      return;
    }
    const reply: WorkerReply = { id, ok: true, result: answer.result };
    port.postMessage(reply, answer.transfer ?? []);
  });
}
