// The scorer's Prometheus metrics, got-or-created in the shared registry so
// several scorers in one process (tests, `sadp serve`) share them.
import { counter, gauge, histogram } from '../../common/metrics.js';

/**
 * Rejection reasons that are the scorer's own condition rather than a bad
 * request: exported at 0 from the start, so dashboards and alerts see a
 * series (and a rate of 0) before the first rejection.
 */
const KNOWN_REJECTIONS = ['SADP_SCORER_OVERLOADED', 'SADP_STATE_WRITE_FAILED', 'SADP_JOB_NOT_FOUND'];

export function scorerMetrics() {
  const metrics = {
    scoresReceived: counter('sadp_scorer_scores_received_total', 'Score entries accepted (durable).', [
      'job',
    ]),
    reportsRejected: counter(
      'sadp_scorer_reports_rejected_total',
      'Score reports rejected, by SADP error code.',
      ['reason'],
    ),
    planComputeSeconds: histogram(
      'sadp_scorer_plan_compute_seconds',
      'Time to compute one epoch plan.',
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      ['policy'],
    ),
    planTasks: counter(
      'sadp_scorer_plan_tasks_total',
      'Epoch plans computed, by where: on the event loop (small jobs) or in the plan thread.',
      ['where'],
    ),
    planThreadsStarted: counter(
      'sadp_scorer_plan_threads_started_total',
      'Plan threads started: one per scorer unless a plan thread failed.',
    ),
    logWriteSeconds: histogram(
      'sadp_scorer_log_write_seconds',
      'Time to make one group of score reports durable.',
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ),
    jobs: gauge('sadp_scorer_jobs', 'Jobs held by this scorer.'),
    selectedExamples: gauge('sadp_scorer_selected_examples', 'Examples selected into an epoch plan.', [
      'job',
      'epoch',
    ]),
  };
  for (const reason of KNOWN_REJECTIONS) metrics.reportsRejected.inc({ reason }, 0);
  return metrics;
}

export type ScorerMetrics = ReturnType<typeof scorerMetrics>;
