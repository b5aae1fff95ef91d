// What the range reader counts: its stats (IoStats, PlannerStats), the GETs it
// reports (RangeRequestEvent) and its Prometheus series.
import { counter, gauge } from '../../common/metrics.js';
import type { ReadPlannerMode } from './read-planner.js';

/** What the planner chose, cumulative over every read(), and its current cost model. */
export interface PlannerStats {
  mode: ReadPlannerMode;
  /** The cost model the next plan will use (read-planner.ts): CPU per GET and per byte, */
  perRequestUs: number;
  perByteUs: number;
  /** first-byte latency, the GETs in flight it overlaps across, link time per byte (0, 1, 0 when not modelled). */
  latencyUs: number;
  concurrency: number;
  linkPerByteUs: number;
  /** Gaps below it are read rather than skipped while requests bind (breakEvenGapBytes). */
  breakEvenGapBytes: number;
  /** GETs whose duration fed the estimate. */
  costSamples: number;
  /** GETs allowed in flight now: sized by Little's law between 64 and the reader's concurrency (in-flight-limit.ts). */
  inFlightLimit: number;
  plans: number;
  /** Shards (per plan) read as one span / per-sample ranges / a mix. */
  shardsSpan: number;
  shardsRanges: number;
  shardsMixed: number;
  /** Sum of the plans' modelled time, us. */
  estimatedUs: number;
  /** Sums over the plans: GETs, bytes they request, selected bytes they deliver. */
  requests: number;
  bytesRequested: number;
  bytesSelected: number;
}

export interface IoStats {
  /** GETs issued, retries included. */
  requests: number;
  /** GETs that were retries of a failed or partial attempt. */
  retries: number;
  /**
   * The part of `retries` whose attempt made no progress for `idleTimeoutMs`:
   * a stalled body, or a healthy one queued behind a busy server. Kept apart
   * because only this kind can be caused by load rather than by a fault.
   */
  idleTimeoutRetries: number;
  /** Sum of the lengths of every GET issued (a resumed retry counts only the bytes it asks for). */
  bytesRequested: number;
  /** Body bytes received, partial bodies included. */
  bytesReceived: number;
  /** Sum of the delivered samples' [offset, end) lengths. */
  bytesDelivered: number;
  samplesDelivered: number;
  /** Reads that met a changed shard and were served from the re-indexed dataset. */
  datasetReloads: number;
}

export interface RangeRequestEvent {
  key: string;
  start: number;
  end: number;
  attempt: number;
}

export interface FetchMetrics {
  planShards: ReturnType<typeof counter<'mode' | 'kind'>>;
  planEstimate: ReturnType<typeof counter<'mode'>>;
  planRequests: ReturnType<typeof counter<'mode'>>;
  planBytes: ReturnType<typeof counter<'mode' | 'kind'>>;
  costPerRequest: ReturnType<typeof gauge>;
  costPerByte: ReturnType<typeof gauge>;
  costLatency: ReturnType<typeof gauge>;
  costLinkPerByte: ReturnType<typeof gauge>;
  requests: ReturnType<typeof counter>;
  retries: ReturnType<typeof counter<'reason'>>;
  bytes: ReturnType<typeof counter<'kind'>>;
  samples: ReturnType<typeof counter>;
}

export function fetchMetrics(): FetchMetrics {
  return {
    planShards: counter(
      'sadp_read_plan_shards_total',
      'Shards per read plan, by planner mode and how they were read (span, ranges, mixed)',
      ['mode', 'kind'],
    ),
    planEstimate: counter(
      'sadp_read_plan_estimated_seconds_total',
      'Modelled read time of the plans (the longest of their CPU, latency and link times)',
      ['mode'],
    ),
    planRequests: counter('sadp_read_plan_requests_total', 'GETs planned, by planner mode', ['mode']),
    planBytes: counter(
      'sadp_read_plan_bytes_total',
      'Bytes the plans request and the selected bytes they deliver, by planner mode',
      ['mode', 'kind'],
    ),
    costPerRequest: gauge(
      'sadp_read_cost_per_request_us',
      'Planner cost model: loader CPU microseconds per GET',
    ),
    costPerByte: gauge('sadp_read_cost_per_byte_us', 'Planner cost model: loader CPU microseconds per byte'),
    costLatency: gauge(
      'sadp_read_cost_latency_us',
      'Planner cost model: first-byte latency of one GET, microseconds',
    ),
    costLinkPerByte: gauge(
      'sadp_read_cost_link_per_byte_us',
      'Planner cost model: link microseconds per byte at the aggregate rate',
    ),
    requests: counter(
      'sadp_fetch_requests_total',
      'Byte-range GETs issued by range readers, retries included',
    ),
    retries: counter('sadp_fetch_retries_total', 'Range GETs retried, by reason', ['reason']),
    bytes: counter('sadp_fetch_bytes_total', 'Bytes requested, received and delivered by range readers', [
      'kind',
    ]),
    samples: counter('sadp_fetch_samples_total', 'Samples delivered by range readers'),
  };
}
