// The accuracy benchmark as a library: the CLI (bench/accuracy.ts) and the
// smoke test (test/bench/accuracy-smoke.test.ts) both use it.
export {
  FULL_SETTINGS,
  QUICK_SETTINGS,
  configKey,
  expectedCost,
  planRuns,
  resolveSettings,
  type AccuracyFlags,
  type AccuracyModel,
  type AccuracySettings,
  type RunSpec,
} from './settings.js';
export {
  loadAccuracyData,
  runAccuracyRun,
  warmUp,
  type AccuracyData,
  type EpochRecord,
  type RunHooks,
  type RunResult,
  type Split,
} from './run.js';
export {
  runAccuracyBenchmark,
  type BenchmarkOptions,
  type BenchmarkOutput,
  type RunProgress,
} from './pool.js';
export {
  checkTargets,
  markdownTable,
  markdownTargets,
  summarize,
  writeAccuracyPlot,
  type ConfigSummary,
  type Stat,
  type TargetCheck,
} from './report.js';
