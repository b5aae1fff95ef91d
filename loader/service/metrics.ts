// The loader's Prometheus metrics (prefix sadp_loader_), got-or-created in the
// shared registry so several loaders in one process add up instead of
// clashing. Gauges move by inc/dec for the same reason.
import { counter, gauge, histogram } from '../../common/metrics.js';

export type LoaderMetrics = ReturnType<typeof loaderMetrics>;

export function loaderMetrics() {
  return {
    bytesFetched: counter('sadp_loader_bytes_fetched_total', 'Body bytes received from object storage'),
    bytesSkipped: counter(
      'sadp_loader_bytes_never_fetched_total',
      'Dataset bytes not selected by an epoch plan, counted once per job and epoch: I/O saved by pruning',
    ),
    bytesSelected: counter(
      'sadp_loader_bytes_selected_total',
      'Bytes of the samples selected by an epoch plan, counted once per job and epoch',
    ),
    storageRequests: counter(
      'sadp_loader_storage_requests_total',
      'Byte-range GETs issued, retries included',
    ),
    storageRetries: counter(
      'sadp_loader_storage_retries_total',
      'Byte-range GETs that retried a failed or partial attempt',
    ),
    samplesSent: counter(
      'sadp_loader_samples_sent_total',
      'Samples written to trainers, padded repeats included',
    ),
    batchesSent: counter('sadp_loader_batches_sent_total', 'Batches written to trainers'),
    batchLatency: histogram(
      'sadp_loader_batch_latency_seconds',
      'From the moment a trainer granted credit for a batch to its last part being written to the socket',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    inflightBytes: gauge('sadp_loader_inflight_bytes', 'Sample bytes reserved from the in-flight budget'),
    activeStreams: gauge('sadp_loader_active_streams', 'Open StreamEpoch calls'),
    streamsEnded: counter('sadp_loader_streams_ended_total', 'StreamEpoch calls ended, by gRPC status name', [
      'status',
    ]),
    epoch: gauge('sadp_loader_epoch', 'Latest epoch opened, per job', ['job']),
    subsetSize: gauge('sadp_loader_subset_size', 'Examples selected in the latest epoch opened, per job', [
      'job',
    ]),
    scoresForwarded: counter('sadp_loader_scores_forwarded_total', 'Score entries accepted by the scorer'),
    scoresBuffered: gauge(
      'sadp_loader_scores_buffered',
      'Score entries received from trainers, not yet at the scorer',
    ),
    scoresDropped: counter(
      'sadp_loader_scores_dropped_total',
      'Score entries that never reached the scorer (rejected, or buffered at shutdown)',
    ),
    scoreReports: counter(
      'sadp_loader_score_reports_total',
      'ReportScores calls by outcome (ok, retry, rejected, gave_up)',
      ['outcome'],
    ),
    scoresNotDurable: counter(
      'sadp_loader_scores_not_durable_total',
      'Score entries given up after scoreDurableTimeoutMs of scorer failures; their trainers keep and resend them',
    ),
    boundaryStall: histogram(
      'sadp_loader_boundary_stall_seconds',
      'From the last ack of epoch k seen by this loader to the first batch of epoch k+1 being ready',
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    ),
    warmBatches: counter(
      'sadp_loader_warm_batches_total',
      'Batches of the next epoch prefetched at the epoch boundary, by fate (used, expired)',
      ['fate'],
    ),
  };
}
