// Runs a PlanTask in a worker thread (one per plan: plans are computed once
// per epoch, so a pool would sit idle), keeping the event loop free for
// reports and streams while a 10M-example plan is computed.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SadpError, Status } from '../../common/errors.js';
import type { PlanTask, PlanTaskResult } from './plan-task.js';

// The worker is the sibling module, .js when built and .ts under tsx
// (benchmarks), where the thread must register tsx's loader itself.
const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(fromSource ? './plan-worker.ts' : './plan-worker.js', import.meta.url);

function startWorker(): Worker {
  if (!fromSource) return new Worker(workerUrl);
  // Workers do not inherit tsx's ESM hooks on Node 20; its CommonJS hook loads the module.
  const boot = `require('tsx/cjs/api').register(); require(${JSON.stringify(fileURLToPath(workerUrl))});`;
  return new Worker(boot, { eval: true });
}

export function runPlanTask(task: PlanTask, what: string): Promise<PlanTaskResult> {
  return new Promise((resolve, reject) => {
    const worker = startWorker();
    let settled = false;
    const fail = (cause: unknown): void => {
      if (settled) return;
      settled = true;
      reject(
        new SadpError(
          'SADP_PLAN_WORKER_FAILED',
          `${what}: plan worker failed: ${String((cause as Error)?.message ?? cause)}`,
          {
            status: Status.INTERNAL,
            cause,
          },
        ),
      );
    };
    worker.once('message', (result: PlanTaskResult) => {
      settled = true;
      resolve(result);
      void worker.terminate();
    });
    worker.once('error', fail);
    worker.once('exit', (code) => fail(new Error(`exited with code ${code} before answering`)));
    worker.postMessage(task);
  });
}
