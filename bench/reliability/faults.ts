// Storage-fault benchmark: every fault of the S3 fault proxy (latency, 503
// SlowDown, 500, reset mid-body, truncated body, stalled body), by seeded
// probability and by seeded schedule, each under a four-rank epoch through
// the client SDK; then each failure fault persisting past the retries, with
// the ranks resuming at their cursor once it clears. Every epoch is checked
// against the plan (exactly once, byte-identical to a direct read) and every
// acknowledged score against the scorer's state store.
// Writes bench/results/reliability-faults.json.
//
//   npm run reliability:faults [-- --quick] [-- --seeds 5]
import type { FaultKind } from '../../test/helpers/s3-fault-proxy.js';
import {
  runFaultCase,
  runPersistentFault,
  startFaultEnv,
  type FaultCaseResult,
  type FaultMode,
  type PersistentResult,
} from '../../test/reliability/fault-scenario.js';
import { epochClean } from '../../test/reliability/stack.js';
import { mulberry32 } from '../../test/helpers/random.js';
import { intFlag, parseFlags, progress, table, writeResult } from './report.js';

const FAULTS: FaultKind[] = ['latency', 'slowdown', 'internal-error', 'reset', 'truncate', 'stall'];
const MODES: FaultMode[] = ['probability', 'schedule'];
const PERSISTENT: FaultKind[] = ['slowdown', 'internal-error', 'reset', 'truncate', 'stall'];

const flags = parseFlags();
const seeds = intFlag(flags, 'seeds', flags.quick ? 1 : 5);
const config = {
  seeds,
  probability: 0.2,
  scheduleFaults: 8,
  scheduleWindow: 40,
  readerMaxAttempts: 5,
  readerBackoffMs: [5, 50],
  readerIdleTimeoutMs: 500,
  world: 4,
  batchSize: 16,
};

const cases: FaultCaseResult[] = [];
const persistent: PersistentResult[] = [];
const total = seeds * (FAULTS.length * MODES.length + PERSISTENT.length);
const started = performance.now();
let failed = 0;
for (let seed = 1; seed <= seeds; seed++) {
  const env = await startFaultEnv({ proxySeed: seed, idleTimeoutMs: config.readerIdleTimeoutMs });
  const rand = mulberry32(seed * 31);
  try {
    for (const fault of FAULTS) {
      for (const mode of MODES) {
        // A seeded schedule: which of the first scheduleWindow matching GETs fail.
        const nth = [
          ...new Set(
            Array.from(
              { length: config.scheduleFaults },
              () => 1 + Math.floor(rand() * config.scheduleWindow),
            ),
          ),
        ];
        const r = await runFaultCase(env, {
          fault,
          mode,
          probability: config.probability,
          nth,
          batchSize: config.batchSize,
        });
        cases.push(r);
        const ok = epochClean(r.check) && r.scores.lost === 0 && r.maxAttempt <= r.maxAttemptsAllowed;
        if (!ok) {
          failed++;
          process.stderr.write(`FAILED ${fault}/${mode} seed ${seed}: ${JSON.stringify(r)}\n`);
        }
        progress(
          'faults',
          cases.length + persistent.length,
          total,
          started,
          `${fault}/${mode} seed ${seed}: ${r.injected} injected, ${r.retries} retries, ${ok ? 'ok' : 'FAILED'}`,
        );
      }
    }
    for (const fault of PERSISTENT) {
      const r = await runPersistentFault(env, fault);
      persistent.push(r);
      const ok =
        epochClean(r.check) &&
        r.scores.lost === 0 &&
        r.failures.length > 0 &&
        r.failures.every((f) => f.status === 14 && f.details.includes(r.key));
      if (!ok) {
        failed++;
        process.stderr.write(`FAILED persistent ${fault} seed ${seed}: ${JSON.stringify(r)}\n`);
      }
      progress(
        'faults',
        cases.length + persistent.length,
        total,
        started,
        `persistent ${fault} seed ${seed}: ${r.failures.length} ranks saw UNAVAILABLE, resumed, ${ok ? 'ok' : 'FAILED'}`,
      );
    }
  } finally {
    await env.close();
  }
}

type DeliveryTotals = Record<
  'planned' | 'delivered' | 'lost' | 'duplicated' | 'corrupt' | 'scoresAcknowledged' | 'scoresLost',
  number
>;

/** Samples and scores of a row's epochs, summed: what was planned, delivered, lost, duplicated or corrupt. */
function deliveryTotals(runs: ReadonlyArray<Pick<FaultCaseResult, 'check' | 'scores'>>): DeliveryTotals {
  const sum = (f: (c: Pick<FaultCaseResult, 'check' | 'scores'>) => number): number =>
    runs.reduce((n, c) => n + f(c), 0);
  return {
    planned: sum((c) => c.check.planned),
    delivered: sum((c) => c.check.delivered),
    lost: sum((c) => c.check.lost),
    duplicated: sum((c) => c.check.duplicated),
    corrupt: sum((c) => c.check.corrupt),
    scoresAcknowledged: sum((c) => c.scores.acknowledged),
    scoresLost: sum((c) => c.scores.lost),
  };
}

const summary = [
  ...FAULTS.flatMap((fault) =>
    MODES.map((mode) => {
      const mine = cases.filter((c) => c.fault === fault && c.mode === mode);
      const sum = (f: (c: FaultCaseResult) => number): number => mine.reduce((n, c) => n + f(c), 0);
      return {
        fault,
        mode,
        epochs: mine.length,
        injected: sum((c) => c.injected),
        gets: sum((c) => c.storageRequests),
        retries: sum((c) => c.retries),
        maxAttempt: Math.max(...mine.map((c) => c.maxAttempt)),
        ...deliveryTotals(mine),
        streamReopens: sum((c) => c.reopens),
        clean: mine.filter((c) => epochClean(c.check)).length,
      };
    }),
  ),
  ...PERSISTENT.map((fault) => {
    const mine = persistent.filter((p) => p.fault === fault);
    const sum = (f: (c: PersistentResult) => number): number => mine.reduce((n, c) => n + f(c), 0);
    return {
      fault,
      mode: 'persistent',
      epochs: mine.length,
      injected: NaN,
      gets: NaN,
      retries: NaN,
      maxAttempt: NaN,
      ...deliveryTotals(mine),
      streamReopens: NaN,
      clean: mine.filter((c) => epochClean(c.check)).length,
      ranksThatSawUnavailable: sum((c) => c.failures.length),
      unavailableNamedTheObject: sum((c) => c.failures.filter((f) => f.details.includes(c.key)).length),
    };
  }),
];

const dash = (v: number): string | number => (Number.isNaN(v) ? '-' : v);
process.stdout.write(
  `${table(
    [
      'fault',
      'mode',
      'epochs',
      'injected',
      'GETs',
      'retries',
      'max attempt',
      'planned',
      'delivered',
      'lost',
      'dup',
      'corrupt',
      'scores lost',
      'clean',
    ],
    summary.map((s) => [
      s.fault,
      s.mode,
      s.epochs,
      dash(s.injected),
      dash(s.gets),
      dash(s.retries),
      dash(s.maxAttempt),
      s.planned,
      s.delivered,
      s.lost,
      s.duplicated,
      s.corrupt,
      s.scoresLost,
      `${s.clean}/${s.epochs}`,
    ]),
  )}\n`,
);
const path = await writeResult('faults', {
  quick: flags.quick,
  config,
  setup:
    'in-process embedded S3 -> S3 fault proxy -> in-process loader (range reader retries, SDK retries off) with the real scorer; 4 SDK ranks; reader backoff shortened to 5-50 ms and idle timeout to 500 ms to keep the run short',
  summary,
  cases,
  persistent,
});
process.stderr.write(`wrote ${path}\n`);
if (failed > 0) process.exitCode = 1;
