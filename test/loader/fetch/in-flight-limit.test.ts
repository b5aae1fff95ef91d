// GETs in flight sized by Little's law: the estimator's achieved GET rate and
// first-byte floor (clock injected: no timing), the limit between its floor
// and the configured ceiling, and a range reader that keeps a small
// configured concurrency exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCostEstimator } from '../../../loader/fetch/index.js';
import { createInFlightLimit, IN_FLIGHT_FLOOR, LOOP_BUSY } from '../../../loader/fetch/in-flight-limit.js';

/** Rounds of `n` GETs started together, first bytes after `firstMs`, bodies `bodyMs` later, then `idleMs` idle. */
function drive(n: number, firstMs: number, bodyMs: number, idleMs: number, rounds: number) {
  let t = 0;
  const est = createCostEstimator({ concurrency: 64, now: () => t });
  for (let round = 0; round < rounds; round++) {
    const start = t;
    const probes = Array.from({ length: n }, () => est.begin());
    t = start + firstMs;
    for (const p of probes) est.firstByte(p);
    probes.forEach((p, k) => {
      t = start + firstMs + bodyMs;
      est.end(p, 10_000 + k * 1_000);
    });
    t += idleMs;
  }
  return est;
}

test('the estimator reports GETs per busy second and the least first byte of the recent GETs', () => {
  assert.equal(createCostEstimator().throughput(), undefined, 'nothing measured yet');
  // 32 GETs per round, 50 ms to first byte, 10 ms of body: 32 GETs per 60 busy ms; idle time does not count.
  const est = drive(32, 50, 10, 500, 20);
  const m = est.throughput()!;
  assert.ok(Math.abs(m.getsPerSecond - 32 / 0.06) < 1e-6, String(m.getsPerSecond));
  assert.equal(m.firstByteFloorUs, 50_000);
});

test('the limit is twice the GETs the latency needs, between the floor and the ceiling', () => {
  const limit = createInFlightLimit({ ceiling: 256 });
  assert.equal(limit.current, IN_FLIGHT_FLOOR, 'starts at the floor');
  assert.equal(limit.update(undefined), IN_FLIGHT_FLOOR, 'no measurement: unchanged');
  // 1,000 GETs/s at 50 ms: 50 needed, 100 allowed.
  assert.equal(limit.update({ getsPerSecond: 1_000, firstByteFloorUs: 50_000 }), 100);
  // More rate at the same latency: more in flight, up to the ceiling.
  assert.equal(limit.update({ getsPerSecond: 2_000, firstByteFloorUs: 50_000 }), 200);
  assert.equal(limit.update({ getsPerSecond: 10_000, firstByteFloorUs: 50_000 }), 256);
  // A near store (1 ms): never under the floor, whatever the rate.
  assert.equal(limit.update({ getsPerSecond: 3_000, firstByteFloorUs: 1_000 }), IN_FLIGHT_FLOOR);
  assert.equal(limit.update({ getsPerSecond: Number.NaN, firstByteFloorUs: 1_000 }), IN_FLIGHT_FLOOR);
  // A configured concurrency below the floor is kept exactly (ordering tests run with 1).
  const one = createInFlightLimit({ ceiling: 1 });
  assert.equal(one.current, 1);
  assert.equal(one.update({ getsPerSecond: 1e6, firstByteFloorUs: 1e6 }), 1);
});

test('fed from an estimator, a latency-bound reader raises its limit and a near one stays at the floor', () => {
  // 64 GETs of 50 ms each back to back (latency-bound): 1,280 GETs/s, 50 ms -> 128.
  const far = drive(64, 50, 0, 0, 10).throughput()!;
  assert.equal(createInFlightLimit({ ceiling: 256 }).update(far), 128);
  // 64 GETs of 0.5 ms + 2 ms of body: the link or the CPU binds, not the latency.
  const near = drive(64, 0.5, 2, 0, 10).throughput()!;
  assert.equal(createInFlightLimit({ ceiling: 256 }).update(near), IN_FLIGHT_FLOOR);
});

test('the cost model overlaps the latency across the GETs allowed in flight now, not the ceiling', () => {
  let allowed = 64;
  const est = createCostEstimator({ cpuPerRequestUs: 0, cpuPerByteUs: 0, concurrency: () => allowed });
  assert.equal(est.current().concurrency, 64, 'the prior');
  const feed = (): void => {
    for (let i = 0; i < 64; i++) {
      const bytes = 10_000 + ((i * 7919) % 500_000);
      est.observe(bytes, 20_000 + bytes * 0.02, 4, 20_000);
    }
  };
  feed();
  assert.equal(est.current().concurrency, 64);
  allowed = 200;
  feed();
  assert.equal(est.current().concurrency, 200, 'a raised limit: each GET’s latency is shared by more');
  assert.ok(Math.abs((est.current().latencyUs as number) - 20_000) < 1e-6);
});

test('a reader whose event loop is busy never raises its limit: its first bytes wait for the loop, not the store', () => {
  const limit = createInFlightLimit({ ceiling: 256 });
  const far = { getsPerSecond: 1_000, firstByteFloorUs: 60_000 };
  assert.equal(limit.update(far, LOOP_BUSY), IN_FLIGHT_FLOOR, 'busy: stays at the floor');
  assert.equal(limit.update(far, 0.95), IN_FLIGHT_FLOOR);
  assert.equal(limit.update(far, LOOP_BUSY - 0.01), 120, 'waiting on the store: raised');
  // Busy again: it may fall to what is needed, never rise.
  assert.equal(limit.update({ getsPerSecond: 2_000, firstByteFloorUs: 60_000 }, 1), 120);
  assert.equal(limit.update({ getsPerSecond: 500, firstByteFloorUs: 60_000 }, 1), IN_FLIGHT_FLOOR);
});

test('a limit that is not adaptive (a reader with read threads) stays at its floor whatever it is fed', () => {
  const limit = createInFlightLimit({ ceiling: 256, adaptive: false });
  // 2,000 GETs/s over 50 ms first bytes would need 200 in flight.
  assert.equal(limit.update({ getsPerSecond: 2_000, firstByteFloorUs: 50_000 }, 0), 64);
  assert.equal(limit.current, 64);
  const adaptive = createInFlightLimit({ ceiling: 256 });
  assert.equal(adaptive.update({ getsPerSecond: 2_000, firstByteFloorUs: 50_000 }, 0), 200);
});
