// The accuracy benchmark as a library: the CLI (bench/accuracy.ts) and the
// smoke test (test/bench/accuracy-smoke.test.ts) both use it.
export { QUICK_SETTINGS, planRuns, resolveSettings, type AccuracySettings } from './settings.js';
export { loadAccuracyData, runAccuracyRun, type AccuracyData, type RunResult } from './run.js';
export { runAccuracyBenchmark } from './pool.js';
export { checkTargets, markdownTable, markdownTargets, summarize, writeAccuracyPlot } from './report.js';
