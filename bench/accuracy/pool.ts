// Runs the benchmark grid: in this process (jobs = 1) or spread over child
// processes, one run at a time each. The wasm backend is single-threaded in
// Node, so one process per core is how a run grid uses a multi-core machine;
// every run still times only its own training.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SadpError, Status, type SadpErrorCode } from '../../common/errors.js';
import { onAbort } from '../../common/signals.js';
import { selectBackend, type BackendSelection } from '../../trainer/index.js';
import { loadAccuracyData, runAccuracyRun, warmUp, type EpochRecord, type RunResult } from './run.js';
import { expectedCost, planRuns, type AccuracySettings, type RunSpec } from './settings.js';

/** Parent -> child. */
export type ToWorker = { type: 'init'; settings: AccuracySettings } | { type: 'run'; spec: RunSpec };

/** Child -> parent. */
export type FromWorker =
  | { type: 'ready'; backend: BackendSelection }
  | { type: 'epoch'; spec: RunSpec; record: EpochRecord }
  | { type: 'result'; result: RunResult }
  | { type: 'error'; message: string; code?: SadpErrorCode };

interface RunProgress {
  /** Runs finished, of `total`. */
  done: number;
  total: number;
  result: RunResult;
  elapsedSeconds: number;
  /** From the expected work of the remaining runs at the rate so far. */
  etaSeconds: number;
}

export interface BenchmarkOptions {
  /** Processes training at once. Default 1 (in this process). */
  jobs?: number;
  signal?: AbortSignal;
  onRunDone?: (progress: RunProgress) => void;
  onEpoch?: (event: { spec: RunSpec; record: EpochRecord }) => void;
}

export interface BenchmarkOutput {
  backend: BackendSelection;
  jobs: number;
  /** In grid order. */
  runs: RunResult[];
  wallSeconds: number;
}

/** Trains every run of the grid and returns the results in grid order. */
export async function runAccuracyBenchmark(
  s: AccuracySettings,
  options: BenchmarkOptions = {},
): Promise<BenchmarkOutput> {
  const specs = planRuns(s);
  const jobs = Math.max(1, Math.min(options.jobs ?? 1, specs.length));
  const started = performance.now();
  const totalCost = specs.reduce((a, spec) => a + expectedCost(spec, s), 0);
  // Work done so far in full-run units: finished runs at their expected cost,
  // runs in flight by the samples of their finished epochs (so the ETA does
  // not count the other jobs' half-done runs as nothing).
  const inFlight = new Map<number, number>();
  let finishedCost = 0;
  const results: RunResult[] = [];
  const onEpoch = (event: { spec: RunSpec; record: EpochRecord }): void => {
    const done = (inFlight.get(event.spec.index) ?? 0) + event.record.samples / (s.trainSize * s.epochs);
    inFlight.set(event.spec.index, Math.min(done, expectedCost(event.spec, s)));
    options.onEpoch?.(event);
  };
  const finished = (result: RunResult): void => {
    results.push(result);
    inFlight.delete(result.index);
    finishedCost += expectedCost(result, s);
    const doneCost = finishedCost + [...inFlight.values()].reduce((a, b) => a + b, 0);
    const elapsedSeconds = (performance.now() - started) / 1000;
    options.onRunDone?.({
      done: results.length,
      total: specs.length,
      result,
      elapsedSeconds,
      etaSeconds: (elapsedSeconds * Math.max(0, totalCost - doneCost)) / doneCost,
    });
  };
  const tracked = { ...options, onEpoch };
  const backend =
    jobs === 1
      ? await runHere(s, specs, finished, tracked)
      : await runForked(s, specs, jobs, finished, tracked);
  results.sort((a, b) => a.index - b.index);
  return { backend, jobs, runs: results, wallSeconds: (performance.now() - started) / 1000 };
}

async function runHere(
  s: AccuracySettings,
  specs: RunSpec[],
  finished: (r: RunResult) => void,
  o: BenchmarkOptions,
): Promise<BackendSelection> {
  const backend = await selectBackend(s.backend);
  const data = await loadAccuracyData(s);
  await warmUp(s, data);
  const hooks = o.onEpoch ? { onEpoch: o.onEpoch } : undefined;
  for (const spec of specs) finished(await runAccuracyRun(spec, s, data, { hooks, signal: o.signal }));
  return backend;
}

function workerEntry(): { path: string; execArgv: string[] } {
  // From source (tsx) the child needs tsx too; from dist/ it runs the compiled .js.
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
  return { path: fileURLToPath(url), execArgv: fromSource ? ['--import', 'tsx'] : [] };
}

async function runForked(
  s: AccuracySettings,
  specs: RunSpec[],
  jobs: number,
  finished: (r: RunResult) => void,
  o: BenchmarkOptions,
): Promise<BackendSelection> {
  const { path, execArgv } = workerEntry();
  const children: ChildProcess[] = [];
  const queue = [...specs];
  let backend: BackendSelection | undefined;
  let stopListening = (): void => undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      let failed = false;
      const fail = (err: unknown): void => {
        if (failed) return;
        failed = true;
        reject(err instanceof Error ? err : new Error(String(err)));
      };
      const aborted = (): void => fail(o.signal?.reason ?? new Error('aborted'));
      if (o.signal?.aborted) return aborted();
      stopListening = onAbort(o.signal, aborted);
      const next = (child: ChildProcess): void => {
        const spec = queue.shift();
        if (spec === undefined) {
          child.disconnect(); // the child exits when its channel closes
          if (--running === 0) resolve();
          return;
        }
        child.send({ type: 'run', spec } satisfies ToWorker);
      };
      for (let i = 0; i < jobs; i++) {
        const child = fork(path, [], { execArgv, serialization: 'advanced', stdio: 'inherit' });
        children.push(child);
        running++;
        child.on('message', (raw) => {
          const msg = raw as FromWorker;
          switch (msg.type) {
            case 'ready':
              backend ??= msg.backend;
              next(child);
              break;
            case 'epoch':
              o.onEpoch?.({ spec: msg.spec, record: msg.record });
              break;
            case 'result':
              finished(msg.result);
              next(child);
              break;
            case 'error':
              fail(
                new SadpError(
                  msg.code ?? 'SADP_BENCH_WORKER',
                  `benchmark worker ${child.pid}: ${msg.message}`,
                ),
              );
              break;
          }
        });
        child.on('error', fail);
        child.on('exit', (code, signal) => {
          if (child.connected || queue.length > 0 || code !== 0) {
            fail(
              new SadpError(
                'SADP_BENCH_WORKER',
                `benchmark worker ${child.pid} exited (code ${code}, signal ${signal}) before the grid was done`,
                { status: Status.INTERNAL },
              ),
            );
          }
        });
        child.send({ type: 'init', settings: s } satisfies ToWorker);
      }
    });
  } finally {
    stopListening();
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill();
  }
  if (!backend) throw new SadpError('SADP_BENCH_WORKER', 'no benchmark worker reported its backend');
  return backend;
}
