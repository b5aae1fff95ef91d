// How many GETs the reader keeps in flight: what the link needs, by Little's
// law. A reader that completes R GETs per second over a store whose first
// byte takes L (without queueing) needs about R x L GETs in flight to keep
// that rate; twice that leaves room to grow, so a reader bound by latency
// keeps raising its limit (each raise lifts R) until something else binds:
// its CPU, the link, the store, or the configured ceiling. Past what the link
// needs, more GETs only queue: each one's first byte waits longer and the
// awaited batch's GETs share the link with more prefetch GETs (on bench:loader's
// shaped link a fixed 256 in flight made auto's quick epochs 1.24-1.63x slower
// than 64 at r >= 0.3, medians of 5 runs each).
// The floor keeps the limit that served every link before it adapted (64),
// so a CPU-bound loader never has fewer in flight than it used to. A loader
// whose event loop is busy (utilization at or over LOOP_BUSY since the last
// resize) never raises its limit: its first bytes wait for the loop, not for
// the store, and more GETs would only queue more bytes in memory (in
// bench:loader a CPU-bound loader on loopback read 50-75 ms first bytes and
// went to 256 in flight, its RSS peak from ~530 to 609-661 MiB). Memory is not this limit's
// concern: the loader's byte budget reserves every window's bytes before any
// of its GETs starts, and the slab pool's free memory has its own bound.
import type { ReaderThroughput } from './cost-estimator.js';

/** The limit before any measurement, and the least it adapts to (capped by the ceiling). */
export const IN_FLIGHT_FLOOR = 64;
/** GETs in flight per GET the latency needs (BBR's in-flight cap is twice the bandwidth-delay product). */
const IN_FLIGHT_GAIN = 2;
/** Event-loop utilization from which the reader counts as CPU-bound: its limit may fall, not rise. */
export const LOOP_BUSY = 0.9;

export interface InFlightLimitOptions {
  /** The configured bound (the reader's `concurrency`): never more in flight. */
  ceiling: number;
  /** Default min(IN_FLIGHT_FLOOR, ceiling). */
  floor?: number;
  /** Default IN_FLIGHT_GAIN. */
  gain?: number;
  /**
   * False: the limit stays at the floor. For a reader whose GETs run in
   * read threads: they report no first byte (whole durations, queueing and
   * cutting included, would stand in for latency) and the threads' load is
   * not in the event loop's utilization, so neither input can be trusted.
   */
  adaptive?: boolean;
}

export interface InFlightLimit {
  /** GETs allowed in flight now. */
  readonly current: number;
  /**
   * Resizes from what the reader achieved and how busy its event loop was
   * meanwhile (0..1; default 0); returns the new limit.
   */
  update(measured: ReaderThroughput | undefined, loopUtilization?: number): number;
}

export function createInFlightLimit(options: InFlightLimitOptions): InFlightLimit {
  const ceiling = options.ceiling;
  const floor = Math.min(options.floor ?? IN_FLIGHT_FLOOR, ceiling);
  const gain = options.gain ?? IN_FLIGHT_GAIN;
  const adaptive = options.adaptive ?? true;
  let current = floor;
  return {
    get current() {
      return current;
    },
    update(measured, loopUtilization = 0) {
      if (!measured || !adaptive) return current;
      const needed = Math.ceil((gain * measured.getsPerSecond * measured.firstByteFloorUs) / 1e6);
      if (!Number.isFinite(needed)) return current;
      const next = Math.min(ceiling, Math.max(floor, needed));
      if (next < current || loopUtilization < LOOP_BUSY) current = next;
      return current;
    },
  };
}
