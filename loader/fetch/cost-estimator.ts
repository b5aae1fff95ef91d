// Online estimate of the read planner's cost model from the reader's own
// GETs. Each completed GET gives (bytes, wall time, time to its first byte,
// GETs in flight on average over its life); a least-squares line through the
// recent ones, duration = L + bytes x t, gives the per-byte time t of one
// connection, and t / (GETs in flight) the link's aggregate time per byte
// (connections share the link). The first-byte latency is the 10th
// percentile of recent times to first byte (the fitted intercept when that
// is lower), overlapping across the reader's `concurrency` GETs. The CPU
// terms are the reader's own cost per GET and per byte (measured by
// bench:get). read-planner.ts takes the longest of the three times, so an
// overlapped latency no longer reads as a cheap request that pays for
// megabytes of pruned bytes.
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
   * The reader's bound on GETs in flight (a number, or a function for a bound
   * that adapts): the latency overlaps across that many. Without it, across
   * the GETs in flight on average.
   */
  concurrency?: number | (() => number);
  /** Milliseconds clock for begin/end (tests inject one); default performance.now. */
  now?: () => number;
}

/** A GET in flight, from begin() to end() or cancel(). */
export interface CostProbe {
  readonly startedAt: number;
  readonly inFlightAreaAtStart: number;
  /** When its first bytes arrived (performance.now()), once they did. */
  firstByteAt: number | undefined;
}

export interface CostEstimator {
  /**
   * One completed GET: its length, its wall time, the GETs in flight on
   * average over its life (itself included) and, when known, the time to
   * its first byte (else its wall time stands for it).
   */
  observe(bytes: number, durationUs: number, inFlight: number, firstByteUs?: number): void;
  /** A GET starts now. */
  begin(): CostProbe;
  /** That GET's first bytes arrived now (later calls are ignored). */
  firstByte(probe: CostProbe): void;
  /** That GET completed with `bytes`: observed with its duration and the average GETs in flight over its life. */
  end(probe: CostProbe, bytes: number): void;
  /** That GET failed: it leaves the in-flight count unobserved. */
  cancel(probe: CostProbe): void;
  /** The current model. */
  current(): ReadCostModel;
  /**
   * What the reader achieved recently, for sizing its GETs in flight
   * (in-flight-limit.ts); undefined until MIN_WEIGHT GETs completed.
   */
  throughput(): ReaderThroughput | undefined;
  /** GETs observed. */
  readonly samples: number;
}

/** GETs completed per second of time with a GET in flight, and the least time to first byte of the recent GETs. */
export interface ReaderThroughput {
  getsPerSecond: number;
  /** The least time to first byte among the recent GETs (us): the latency without queueing. */
  firstByteFloorUs: number;
}

export const CPU_PER_REQUEST_US = 150;
export const CPU_PER_BYTE_US = 0.0012;
/**
 * Before any measurement: the loader's CPU on the lean path (~150 us per
 * GET, ~1.2 us per KB), S3-like first-byte latency of ~20 ms over 64
 * connections (~310 us per GET) and a 1 Gbit/s share of the link (0.008 us
 * per byte). Cautious on purpose: a loader plans its first windows with it,
 * and on such a link a pruned 110 KB sample costs more time than a GET, so
 * the prior reads per-sample ranges until measurements say otherwise.
 */
export const DEFAULT_READ_COST: ReadCostModel = {
  perRequestUs: CPU_PER_REQUEST_US,
  perByteUs: CPU_PER_BYTE_US,
  latencyUs: 20_000,
  concurrency: 64,
  linkPerByteUs: 0.008,
};
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
  const c = options.concurrency;
  const bound: (() => number) | undefined = typeof c === 'number' ? () => c : c;
  let model: ReadCostModel = bound === undefined ? { ...prior } : { ...prior, concurrency: bound() };
  // GETs in flight now, and its integral over time (GET x ms): the average
  // over one GET's life is what it shared the link and the CPU with. The
  // count at its end alone misses the burst it started in.
  const clock = options.now ?? (() => performance.now());
  let inFlight = 0;
  let area = 0;
  let areaAt = clock();
  // Time with at least one GET in flight (ms), and decayed sums of the bytes
  // GETs delivered and of that busy time between their ends: the aggregate
  // rate the reader achieved, whatever bound it (link, CPU, latency).
  let busy = 0;
  let busyAtEnd = 0;
  let busyBytes = 0;
  let busyMs = 0;
  // The busy time at each of the last RECENT + 1 GET ends: the GETs completed
  // per busy second over the last RECENT of them (no decay weighting, which
  // skews a rate measured from bursts of ends).
  const busyAtEnds = new Float64Array(RECENT + 1);
  let ends = 0;
  const advance = (now: number): void => {
    area += inFlight * (now - areaAt);
    if (inFlight > 0) busy += now - areaAt;
    areaAt = now;
  };

  // Recent times to first byte (us), for the latency floor. A refit runs per
  // GET but the planner reads the model once per window, so a refit keeps the
  // recent first bytes as they were (a copy) and the sort for their floor runs
  // when the model is read.
  const recent = new Float64Array(RECENT);
  const atFit = new Float64Array(RECENT);
  let atFitCount = 0;
  let fitLatency = 0;
  let floorPending = false;
  const withLatencyFloor = (m: ReadCostModel): ReadCostModel => {
    const sorted = atFit.subarray(0, atFitCount).sort();
    return { ...m, latencyUs: Math.min(fitLatency, sorted[Math.floor(atFitCount / 10)] as number) };
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
    // The fitted per-byte time, or the achieved aggregate rate when slower:
    // bytes cost at least what they took (on a CPU-bound reader the fit
    // sees little per-byte time), which keeps pruned bytes dear.
    const achieved = busyBytes > 0 ? (busyMs * 1000) / busyBytes : 0;
    // On a saturated event loop every GET waits for callbacks, which inflates
    // the intercept without any GET costing more: the floor of recent first
    // bytes bounds it (applied in withLatencyFloor when the model is read).
    atFitCount = Math.min(samples, RECENT);
    atFit.set(recent.subarray(0, atFitCount));
    fitLatency = latency;
    floorPending = true;
    model = {
      perRequestUs: cpuReq,
      perByteUs: cpuByte,
      latencyUs: latency,
      concurrency: Math.max(inFlight, bound?.() ?? 1),
      linkPerByteUs: Math.max(t / inFlight, achieved),
    };
  };

  const estimator: CostEstimator = {
    begin() {
      const now = clock();
      advance(now);
      inFlight++;
      return { startedAt: now, inFlightAreaAtStart: area, firstByteAt: undefined };
    },
    firstByte(probe) {
      probe.firstByteAt ??= clock();
    },
    end(probe, bytes) {
      const now = clock();
      advance(now);
      inFlight = Math.max(0, inFlight - 1);
      busyBytes = busyBytes * decay + bytes;
      busyAtEnds[ends % (RECENT + 1)] = busy;
      ends++;
      busyMs = busyMs * decay + (busy - busyAtEnd);
      busyAtEnd = busy;
      const ms = now - probe.startedAt;
      const average = ms > 0 ? (area - probe.inFlightAreaAtStart) / ms : 1;
      const firstByte =
        probe.firstByteAt === undefined ? undefined : (probe.firstByteAt - probe.startedAt) * 1000;
      estimator.observe(bytes, ms * 1000, Math.max(1, average), firstByte);
    },
    cancel() {
      advance(clock());
      inFlight = Math.max(0, inFlight - 1);
    },
    observe(bytes, durationUs, inFlight, firstByteUs) {
      if (!(bytes > 0) || !(durationUs >= 0)) return;
      w = w * decay + 1;
      sx = sx * decay + bytes;
      sy = sy * decay + durationUs;
      sxx = sxx * decay + bytes * bytes;
      sxy = sxy * decay + bytes * durationUs;
      sc = sc * decay + inFlight;
      recent[samples % RECENT] = firstByteUs ?? durationUs;
      samples++;
      refit();
    },
    current() {
      if (floorPending) {
        model = withLatencyFloor(model);
        floorPending = false;
      }
      return model;
    },
    throughput() {
      const n = Math.min(ends - 1, RECENT);
      if (n < MIN_WEIGHT || samples === 0) return undefined;
      const last = (ends - 1) % (RECENT + 1);
      const first = (ends - 1 - n) % (RECENT + 1);
      const ms = (busyAtEnds[last] as number) - (busyAtEnds[first] as number);
      if (!(ms > 0)) return undefined;
      let floor = Infinity;
      const m = Math.min(samples, RECENT);
      for (let i = 0; i < m; i++) floor = Math.min(floor, recent[i] as number);
      return { getsPerSecond: (n * 1000) / ms, firstByteFloorUs: floor };
    },
    get samples() {
      return samples;
    },
  };
  return estimator;
}
