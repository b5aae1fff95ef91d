// Where a plan is computed: on the event loop for small jobs (milliseconds,
// where even a kept thread costs a structured-clone round trip and the first
// plan its start), in the scorer's one long-lived plan thread otherwise, so
// reports and streams keep flowing while a 10M-example plan is computed.
// A plan that fails fails the same way on both: the computation's own
// SadpError (code, status, message) prefixed with what was planned; only a
// thread that dies, or a failure that is no SadpError, is
// SADP_PLAN_WORKER_FAILED.
import { SadpError, Status, errorMessage } from '../../common/errors.js';
import { createWorkerTaskRunner } from '../../common/worker-task.js';
import { computePlanTask, type PlanTask, type PlanTaskResult } from './plan-task.js';

/**
 * Jobs up to this many examples are planned on the loop. planEpoch + encode +
 * snapshot take ~3 ms at 50k and ~6 ms at 100k on the 2-core bench box
 * (bench:plan-loop), far under the 50 ms loop-block bound even under load.
 */
export const PLAN_ON_LOOP_MAX_EXAMPLES = 100_000;

export interface PlanRunnerOptions {
  /** Largest job planned on the loop. Default PLAN_ON_LOOP_MAX_EXAMPLES; 0: always the plan thread. */
  onLoopMaxExamples?: number;
  /** Called with where each plan ran and whether it started a thread (metrics). */
  onTask?: (where: 'loop' | 'thread', threadStarted: boolean) => void;
}

export interface PlanRunner {
  run(task: PlanTask, what: string): Promise<PlanTaskResult>;
  /** Threads started so far (1 while the plan thread never failed). */
  readonly threadsStarted: number;
  close(): Promise<void>;
}

export function createPlanRunner(options: PlanRunnerOptions = {}): PlanRunner {
  const onLoopMax = options.onLoopMaxExamples ?? PLAN_ON_LOOP_MAX_EXAMPLES;
  const runner = createWorkerTaskRunner(new URL('./plan-worker', import.meta.url));
  const failed = (what: string) => (reason: string, cause: unknown) =>
    new SadpError('SADP_PLAN_WORKER_FAILED', `${what}: plan worker failed: ${reason}`, {
      status: Status.INTERNAL,
      cause,
    });
  // The computation's error, named after the job and epoch (on the loop and from the thread alike).
  const thrown = (what: string) => (err: SadpError) =>
    new SadpError(err.code, `${what}: ${err.message}`, { status: err.status, cause: err });
  return {
    get threadsStarted() {
      return runner.threadsStarted;
    },
    async run(task, what) {
      if (task.input.datasetSize <= onLoopMax) {
        options.onTask?.('loop', false);
        try {
          return computePlanTask(task);
        } catch (err) {
          if (err instanceof SadpError) throw thrown(what)(err);
          throw failed(what)(errorMessage(err), err);
        }
      }
      const before = runner.threadsStarted;
      const running = runner.run<PlanTaskResult>(task, {
        what: `${what}: plan`,
        failed: failed(what),
        thrown: thrown(what),
      });
      options.onTask?.('thread', runner.threadsStarted > before);
      return running;
    },
    close: () => runner.close(),
  };
}
