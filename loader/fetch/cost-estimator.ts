// Online estimate of the read planner's cost model from the reader's own
// GETs. Each completed GET gives (bytes, wall time, GETs in flight on
// average over its life); a least-squares line through the recent ones,
// duration = L + bytes x t, gives the first-byte latency L and the per-byte
// time t of one connection.
// With C GETs in flight a window takes about (requests x L + bytes x t) / C,
// so the planner's costs are L / C and t / C, plus the reader's own CPU per
// GET and per byte (measured by bench:get), which a saturated core turns
// into time too.
//
// Until enough GETs of different sizes arrived, the prior stands.
import type { ReadCostModel } from './read-planner.js';

export interface CostEstimatorOptions {
  /** The model before measurements; default DEFAULT_READ_COST. */
  prior?: ReadCostModel;
  /** Observations weighing half as much as the newest after this many more; default 64. */
  halfLife?: number;
  /** Loader CPU per GET and per byte, added to the measured wall-time costs. */
  cpuPerRequestUs?: number;
  cpuPerByteUs?: number;
  /**
   * The reader's bound on GETs in flight. Given, a GET's latency counts as
   * hidden behind that many others (a window issues at least that many), and
   * the latency is the lower of the fitted intercept and the 10th percentile
   * of recent GET durations: on a saturated event loop every GET waits for
   * callbacks, which inflates the intercept without any GET costing more.
   * Without it, latency / GETs in flight on average (the plain fit).
   */
  concurrency?: number;
}

/** A GET in flight, from begin() to end() or cancel(). */
export interface CostProbe {
  readonly startedAt: number;
  readonly inFlightAreaAtStart: number;
}

export interface CostEstimator {
  /** One completed GET: its length, its wall time, and the GETs in flight on average over its life (itself included). */
  observe(bytes: number, durationUs: number, inFlight: number): void;
  /** A GET starts now. */
  begin(): CostProbe;
  /** That GET completed with `bytes`: observed with its duration and the average GETs in flight over its life. */
  end(probe: CostProbe, bytes: number): void;
  /** That GET failed: it leaves the in-flight count unobserved. */
  cancel(probe: CostProbe): void;
  /** The current model. */
  current(): ReadCostModel;
  /** GETs observed. */
  readonly samples: number;
}

/**
 * Before any measurement: S3-like first-byte latency of ~20 ms over 64
 * connections (~310 us per request) and ~1 GB/s in aggregate, plus the
 * loader's CPU (~150 us per GET, ~1.2 us per KB on the lean path): a
 * break-even gap near 200 KB.
 */
export const DEFAULT_READ_COST: ReadCostModel = { perRequestUs: 460, perByteUs: 0.0022 };
export const CPU_PER_REQUEST_US = 150;
export const CPU_PER_BYTE_US = 0.0012;
/** Observations (weighted) needed before the fit replaces the prior. */
const MIN_WEIGHT = 16;
/** GET durations kept for the latency floor. */
const RECENT = 256;

export function createCostEstimator(options: CostEstimatorOptions = {}): CostEstimator {
  const prior = options.prior ?? DEFAULT_READ_COST;
  const decay = Math.pow(0.5, 1 / (options.halfLife ?? 64));
  const cpuReq = options.cpuPerRequestUs ?? CPU_PER_REQUEST_US;
  const cpuByte = options.cpuPerByteUs ?? CPU_PER_BYTE_US;
  // Decayed sums for the weighted least-squares fit.
  let w = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  let sc = 0;
  let samples = 0;
  let model: ReadCostModel = { ...prior };
  // GETs in flight now, and its integral over time (GET x ms): the average
  // over one GET's life is what it shared the link and the CPU with. The
  // count at its end alone misses the burst it started in.
  let inFlight = 0;
  let area = 0;
  let areaAt = performance.now();
  const advance = (now: number): void => {
    area += inFlight * (now - areaAt);
    areaAt = now;
  };

  // Recent GET durations (us), for the latency floor.
  const recent = new Float64Array(RECENT);
  const latencyFloor = (): number => {
    const n = Math.min(samples, RECENT);
    const sorted = recent.slice(0, n).sort();
    return sorted[Math.floor(n / 10)] as number;
  };

  const refit = (): void => {
    if (w < MIN_WEIGHT) return;
    const det = w * sxx - sx * sx;
    // Too little spread in GET sizes to separate latency from bandwidth.
    if (!(det > 1e-6 * w * sxx)) return;
    const t = (w * sxy - sx * sy) / det;
    const latency = (sy - t * sx) / w;
    if (!(t > 0) || !(latency >= 0)) return;
    const inFlight = Math.max(1, sc / w);
    const perRequestUs =
      options.concurrency === undefined
        ? latency / inFlight
        : Math.min(latency, latencyFloor()) / Math.max(inFlight, options.concurrency);
    model = { perRequestUs: perRequestUs + cpuReq, perByteUs: t / inFlight + cpuByte };
  };

  const estimator: CostEstimator = {
    begin() {
      const now = performance.now();
      advance(now);
      inFlight++;
      return { startedAt: now, inFlightAreaAtStart: area };
    },
    end(probe, bytes) {
      const now = performance.now();
      advance(now);
      inFlight = Math.max(0, inFlight - 1);
      const ms = now - probe.startedAt;
      const average = ms > 0 ? (area - probe.inFlightAreaAtStart) / ms : 1;
      estimator.observe(bytes, ms * 1000, Math.max(1, average));
    },
    cancel() {
      advance(performance.now());
      inFlight = Math.max(0, inFlight - 1);
    },
    observe(bytes, durationUs, inFlight) {
      if (!(bytes > 0) || !(durationUs >= 0)) return;
      w = w * decay + 1;
      sx = sx * decay + bytes;
      sy = sy * decay + durationUs;
      sxx = sxx * decay + bytes * bytes;
      sxy = sxy * decay + bytes * durationUs;
      sc = sc * decay + inFlight;
      recent[samples % RECENT] = durationUs;
      samples++;
      refit();
    },
    current: () => model,
    get samples() {
      return samples;
    },
  };
  return estimator;
}
