// kill -9 benchmark: seeded runs per target (loader, scorer, embedded S3,
// loader and scorer together), each a three-epoch SADP job with four SDK
// ranks against services running as child processes; one or two kills per
// run at seeded points (the n-th batch yielded or the n-th ack written, kind
// and n drawn from the seed), each followed by a restart on the same port and
// state after a seeded pause. With --state s3, also runs where the scorer is
// killed while a score report is proven in flight (its log PUT held at a
// fault proxy). Prints a summary table and writes
// bench/results/reliability-kill.json.
//
//   npm run reliability:kill [-- --runs 20] [-- --quick] [-- --state s3]
//
// --state s3 keeps the scorer's state on the embedded S3 server (as in
// Kubernetes), so killing S3 also fails the scorer's durable writes.
import {
  KILL_TARGETS,
  runKillScenario,
  type KillTarget,
  startKillEnv,
  verifyAfterStop,
  type KillRunResult,
  type RunRecord,
} from '../../test/reliability/kill-scenario.js';
import { epochClean } from '../../test/reliability/stack.js';
import { intFlag, median, parseFlags, progress, table, writeResult } from './report.js';

const flags = parseFlags();
const runs = intFlag(flags, 'runs', flags.quick ? 2 : 20);
const scorerState = flags.values.get('state') === 's3' ? ('s3' as const) : ('local' as const);
const config = {
  runs,
  scorerState,
  epochs: 3,
  world: 4,
  batchSize: 8,
  pruneRatio: 0.4,
  samples: 600,
  maxDownMs: 1_000,
};

const env = await startKillEnv({ samples: config.samples, scorerState, stateProxy: scorerState === 's3' });
const results: KillRunResult[] = [];
const records: RunRecord[] = [];
const started = performance.now();
/** Rows of the table: each target, plus the in-flight scorer kill when the state is on S3. */
const variants: Array<{ label: string; target: KillTarget; reportInFlight: boolean }> = [
  ...KILL_TARGETS.map((target) => ({ label: target, target, reportInFlight: false })),
  ...(scorerState === 's3'
    ? [{ label: 'scorer, report in flight', target: 'scorer' as const, reportInFlight: true }]
    : []),
];
const labelOf = (r: KillRunResult): string =>
  r.heldReport !== undefined ? 'scorer, report in flight' : r.target;
const total = runs * variants.length;
let failed = 0;
try {
  for (const { target, reportInFlight } of variants) {
    for (let seed = 1; seed <= runs; seed++) {
      const { result, record } = await runKillScenario(env, {
        target,
        seed,
        reportInFlight,
        kills: 1 + (seed % 2),
        epochs: config.epochs,
        world: config.world,
        batchSize: config.batchSize,
        pruneRatio: config.pruneRatio,
        maxDownMs: config.maxDownMs,
      });
      results.push(result);
      records.push(record);
      if (reportInFlight && result.heldReport === undefined) {
        failed++;
        process.stderr.write(`FAILED ${target} seed ${seed}: no report was held in flight\n`);
      }
      if (!result.ok) {
        failed++;
        process.stderr.write(`FAILED ${target} seed ${seed}: ${JSON.stringify(result)}\n`);
      }
      progress(
        'kill',
        results.length,
        total,
        started,
        `${target} seed ${seed}: ${result.ok ? 'ok' : 'FAILED'} in ${(result.durationMs / 1000).toFixed(1)} s, ` +
          `kills at ${result.kills.map((k) => `e${k.epoch}/${k.moment}#${k.atBatch}+${k.downMs}ms`).join(',')}`,
      );
    }
  }
} catch (err) {
  // Leave no service process behind (a failed restart, a broken tree).
  await env.remove();
  throw err;
}
await env.stop();
const afterStop = await verifyAfterStop(env, records);
const lostAfterStop = afterStop.reduce((n, c) => n + c.lost, 0);
await env.remove();

const summary = variants.map(({ label: target }) => {
  const mine = results.filter((r) => labelOf(r) === target);
  const epochs = mine.flatMap((r) => r.epochs);
  const sum = (f: (e: (typeof epochs)[number]) => number): number => epochs.reduce((n, e) => n + f(e), 0);
  const kills = mine.flatMap((r) => r.kills);
  return {
    target,
    runs: mine.length,
    kills: kills.length,
    killsAtBatch: kills.filter((k) => k.moment === 'batch').length,
    killsAtAck: kills.filter((k) => k.moment === 'ack').length,
    killsWithReportInFlight: kills.filter((k) => k.moment === 'report-in-flight').length,
    epochs: epochs.length,
    cleanEpochs: epochs.filter(epochClean).length,
    samplesPlanned: sum((e) => e.planned),
    samplesDelivered: sum((e) => e.delivered),
    samplesLost: sum((e) => e.lost),
    samplesDuplicated: sum((e) => e.duplicated),
    paddedRepeats: sum((e) => e.padded),
    corruptSamples: sum((e) => e.corrupt),
    planDigestMismatches: epochs.filter((e) => !e.planDigestOk).length,
    scoresAcknowledged: mine.reduce((n, r) => n + r.scores.acknowledged, 0),
    scoresLost: mine.reduce((n, r) => n + r.scores.lost, 0),
    streamReopens: sum((e) => e.reopens),
    ranksResumed: sum((e) => e.ranksResumed),
    medianRestartMs: Math.round(
      median(kills.flatMap((k) => (k.restartMs === undefined ? [] : [k.restartMs]))),
    ),
    medianRunSeconds: Math.round(median(mine.map((r) => r.durationMs)) / 100) / 10,
    failedRuns: mine.filter((r) => !r.ok).length,
  };
});

process.stdout.write(
  `${table(
    [
      'target',
      'runs',
      'kills',
      'at batch / ack / report in flight',
      'epochs',
      'planned',
      'delivered',
      'lost',
      'dup',
      'padded',
      'scores acked',
      'scores lost',
      'plan mismatches',
      'reopens',
      'ranks resumed after the SDK gave up',
      'restart ms (median)',
      'failed runs',
    ],
    summary.map((s) => [
      s.target,
      s.runs,
      s.kills,
      `${s.killsAtBatch} / ${s.killsAtAck} / ${s.killsWithReportInFlight}`,
      s.epochs,
      s.samplesPlanned,
      s.samplesDelivered,
      s.samplesLost,
      s.samplesDuplicated,
      s.paddedRepeats,
      s.scoresAcknowledged,
      s.scoresLost,
      s.planDigestMismatches,
      s.streamReopens,
      s.ranksResumed,
      s.medianRestartMs,
      s.failedRuns,
    ]),
  )}\nscores lost when re-read after a clean scorer shutdown: ${lostAfterStop}\n`,
);
const path = await writeResult(scorerState === 's3' ? 'kill-s3-state' : 'kill', {
  quick: flags.quick,
  config,
  setup: `sadp s3 serve, sadp scorer (state: ${scorerState === 's3' ? 'S3 prefix on the same embedded server' : 'local directory'}) and sadp loader as child processes; 4 trainer ranks on the client SDK (default reconnect options) in this process; SIGKILL then restart on the same port/state`,
  summary,
  scoresLostAfterCleanShutdown: lostAfterStop,
  runs: results,
});
process.stderr.write(`wrote ${path}\n`);
if (failed > 0 || lostAfterStop > 0) process.exitCode = 1;
