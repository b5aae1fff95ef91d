// Bad-input benchmark: the CI fuzzers at volume. Mutated tar shards through
// the offset scanner (whole and chunked) and the indexer, mutated manifests
// and shard indexes through openDataset, and over gRPC: model-checked
// ReportScores requests, raw garbage requests, random OpenEpoch fields and
// invalid acks. Any input that escapes as something other than a SadpError
// with a documented code (or the right gRPC status), hangs, or changes state
// it should not, fails the run with the shrunk counterexample.
// Writes bench/results/reliability-fuzz.json.
//
//   npm run reliability:fuzz [-- --quick] [-- --seed 1]
import { join } from 'node:path';
import { openStore } from '../../storage/index.js';
import { connectLoader, startStack, SAMPLES } from '../../test/loader/service/helpers.js';
import {
  fuzzDatasetJson,
  fuzzIndexShard,
  fuzzTarScanner,
  startFuzzFixture,
  type FuzzStats,
} from '../../test/reliability/fuzz.js';
import {
  fuzzBadAcks,
  fuzzGarbageRequests,
  fuzzOpenEpoch,
  fuzzReportScores,
  type GrpcFuzzStats,
} from '../../test/reliability/grpc-fuzz.js';
import { sleep } from '../../test/reliability/stack.js';
import { call } from '../../test/scorer/service/helpers.js';
import { intFlag, parseFlags, progress, table, writeResult } from './report.js';

const flags = parseFlags();
const seed = intFlag(flags, 'seed', 1);
const scale = flags.quick ? 0.1 : 1;
const runs = {
  tarScanner: Math.round(50_000 * scale),
  indexShard: Math.round(10_000 * scale),
  openDataset: Math.round(5_000 * scale),
  reportScores: Math.round(3_000 * scale),
  garbage: Math.round(2_000 * scale),
  openEpoch: Math.round(1_000 * scale),
  badAcks: Math.round(400 * scale),
};

interface Row {
  target: string;
  inputs: number;
  outcomes: Record<string, number>;
  maxMs?: number;
  seconds: number;
}
const rows: Row[] = [];
const started = performance.now();
const steps = Object.keys(runs).length;
const step = async <T extends FuzzStats | GrpcFuzzStats>(
  name: string,
  fn: () => Promise<T>,
): Promise<void> => {
  const t0 = performance.now();
  const s = await fn();
  const outcomes = 'statuses' in s ? s.statuses : { parsed: s.parsed, ...s.errors };
  rows.push({
    target: s.target,
    inputs: s.inputs,
    outcomes,
    ...('maxMs' in s ? { maxMs: Math.round(s.maxMs) } : {}),
    seconds: (performance.now() - t0) / 1000,
  });
  progress('fuzz', rows.length, steps, started, `${name}: ${s.inputs} inputs, ${JSON.stringify(outcomes)}`);
};

const fx = await startFuzzFixture();
try {
  await step('TarScanner', () => fuzzTarScanner(fx, { numRuns: runs.tarScanner, seed }));
  await step('indexShard', () => fuzzIndexShard(fx, { numRuns: runs.indexShard, seed }));
  await step('openDataset', () => fuzzDatasetJson(fx, { numRuns: runs.openDataset, seed }));
} finally {
  await fx.close();
}

const stack = await startStack();
try {
  const loader = await stack.startLoader({ scoreFlushMs: 20 });
  const loaderClient = connectLoader(loader.address);
  const state = openStore(join(stack.dir, 'scorer'));
  const reportJob = await stack.createJob({ epochs: 1 });
  await step('ReportScores', () =>
    fuzzReportScores(stack.scorerRpc, state, reportJob, SAMPLES, { numRuns: runs.reportScores, seed }),
  );
  await step('garbage', () => fuzzGarbageRequests(stack.scorer.address, { numRuns: runs.garbage, seed }));
  const openJob = await stack.createJob({ epochs: 2 });
  await step('OpenEpoch', () => fuzzOpenEpoch(loaderClient, openJob, { numRuns: runs.openEpoch, seed }));
  const ackJob = await stack.createJob({ epochs: 1 });
  await step('bad acks', () =>
    fuzzBadAcks(loaderClient, stack.dataset, ackJob, { numRuns: runs.badAcks, seed, world: 2, batchSize: 8 }),
  );
  await sleep(200);
  const job = await call(stack.scorerRpc, 'describeJob', { jobId: ackJob });
  if (Number(job.scoresReceived) !== 0)
    throw new Error(`invalid acks reached the scorer: ${job.scoresReceived} scores`);
  loaderClient.close();
} finally {
  await stack.close();
}

process.stdout.write(
  `${table(
    ['target', 'inputs', 'outcomes', 'slowest input (ms)', 'seconds'],
    rows.map((r) => [r.target, r.inputs, JSON.stringify(r.outcomes), r.maxMs ?? '-', r.seconds.toFixed(1)]),
  )}\n`,
);
const path = await writeResult('fuzz', {
  quick: flags.quick,
  seed,
  runs,
  setup:
    'fast-check properties; storage inputs are real shards (the writer, GNU tar --format=gnu and --format=pax) and a real dataset manifest + indexes, mutated; gRPC against the in-process scorer and loader',
  results: rows,
});
process.stderr.write(`wrote ${path}\n`);
