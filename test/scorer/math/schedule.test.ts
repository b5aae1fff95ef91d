// Paper defaults (Table II) and the dynamic pruning schedule (Eq. 42).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isSadpError } from '../../../common/errors.js';
import { defaultHyperparameters, pruneRatioAt } from '../../../scorer/math/index.js';

describe('defaultHyperparameters (Table II)', () => {
  test('returns the paper values for the table rows and the ImageNet setting', () => {
    const rows: [number, number, number][] = [
      [0.3, 0.35, 0.6],
      [0.5, 0.3, 0.7],
      [0.7, 0.2, 0.9],
      [0.9, 0.05, 1.0],
      [0.35, 0.25, 0.55],
    ];
    for (const [r, beta, rmax] of rows) {
      assert.deepEqual(defaultHyperparameters(r), { smoothing: beta, maxPruneRatio: rmax }, `r = ${r}`);
    }
  });

  test('other ratios: beta between its neighbouring rows, r_max = min(1, r + 0.3, 2r)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 0.999, noNaN: true }), (r) => {
        fc.pre([0.3, 0.35, 0.5, 0.7, 0.9].every((row) => Math.abs(row - r) > 1e-6));
        const { smoothing, maxPruneRatio } = defaultHyperparameters(r);
        assert.equal(maxPruneRatio, Math.min(1, r + 0.3, 2 * r));
        // The first epoch's ratio 2r - r_max is never negative, so clipping cannot move the mean.
        assert.ok(2 * r - maxPruneRatio >= -1e-15, '2 * r - maxPruneRatio >= -1e-15');
        assert.ok(smoothing >= 0.05 && smoothing <= 0.35, `beta ${smoothing}`);
      }),
    );
    const at = (r: number): number => defaultHyperparameters(r).smoothing;
    assert.ok(at(0.4) < at(0.3) && at(0.4) > at(0.5), 'at(0.4) < at(0.3) && at(0.4) > at(0.5)');
    assert.ok(at(0.6) < at(0.5) && at(0.6) > at(0.7), 'at(0.6) < at(0.5) && at(0.6) > at(0.7)');
    assert.ok(at(0.8) < at(0.7) && at(0.8) > at(0.9), 'at(0.8) < at(0.7) && at(0.8) > at(0.9)');
    assert.equal(at(0.1), at(0.3));
    assert.equal(at(0.95), at(0.9));
  });

  test('rejects r outside [0, 1)', () => {
    for (const r of [-0.1, 1, 1.5, Number.NaN]) {
      assert.throws(
        () => defaultHyperparameters(r),
        (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_PRUNE_RATIO') && err.message.includes(String(r)),
      );
    }
  });
});

describe('pruneRatioAt (Eq. 42)', () => {
  const r = 0.5;
  const rmax = 0.7;
  const K = 200;

  test('follows Eq. 42 with k = epoch + 1: ends at r_max, steps by 2 (r_max - r) / K', () => {
    assert.ok(
      Math.abs(pruneRatioAt(K - 1, r, rmax, K) - rmax) < 1e-15,
      'Math.abs(pruneRatioAt(K - 1, r, rmax, K) - rmax) < 1e-15',
    );
    assert.ok(
      Math.abs(pruneRatioAt(0, r, rmax, K) - (2 * r - rmax + (2 * rmax - 2 * r) / K)) < 1e-15,
      'Math.abs(pruneRatioAt(0, r, rmax, K) - (2 * r - rmax + (2 * rmax - 2 * r) / K)) < 1e-15',
    );
    for (let e = 1; e < K; e++) {
      const step = pruneRatioAt(e, r, rmax, K) - pruneRatioAt(e - 1, r, rmax, K);
      assert.ok(Math.abs(step - (2 * (rmax - r)) / K) < 1e-12, `step at epoch ${e}: ${step}`);
    }
  });

  test('averages r + (r_max - r) / K over the run for every table setting', () => {
    for (const ratio of [0.3, 0.35, 0.5, 0.7]) {
      const { maxPruneRatio } = defaultHyperparameters(ratio);
      for (const epochs of [10, 100, 200]) {
        let sum = 0;
        for (let e = 0; e < epochs; e++) sum += pruneRatioAt(e, ratio, maxPruneRatio, epochs);
        const expected = ratio + (maxPruneRatio - ratio) / epochs;
        assert.ok(Math.abs(sum / epochs - expected) < 1e-12, `r ${ratio}, K ${epochs}: mean ${sum / epochs}`);
      }
    }
  });

  test('stays in [0, 1), nondecreasing, and keeps S_k = (1 - r_k) N >= 1', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 2_000_000 }),
        (ratio, t, epochs, n) => {
          const rmax = ratio + t * (1 - ratio);
          let previous = -1;
          for (let e = 0; e < epochs; e++) {
            const rk = pruneRatioAt(e, ratio, rmax, epochs, n);
            assert.ok(rk >= 0 && rk < 1, `r_k = ${rk}`);
            assert.ok(rk >= previous, 'rk >= previous');
            assert.ok((1 - rk) * n >= 1 - 1e-9, `S = ${(1 - rk) * n} at N = ${n}`);
            previous = rk;
          }
        },
      ),
      { numRuns: 200 },
    );
    // r = 0.9, r_max = 1 would prune everything in the last epoch.
    assert.ok(pruneRatioAt(99, 0.9, 1, 100) < 1, 'pruneRatioAt(99, 0.9, 1, 100) < 1');
    assert.equal(pruneRatioAt(99, 0.9, 1, 100, 1000), 1 - 1 / 1000);
    // Schedule starting below 0 is clipped.
    assert.equal(pruneRatioAt(0, 0.1, 0.6, 100), 0);
  });

  test('rejects an epoch outside [0, K) and r_max outside [r, 1]', () => {
    assert.throws(
      () => pruneRatioAt(200, r, rmax, K),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_EPOCH') && err.message.includes('[0, 200)'),
    );
    assert.throws(
      () => pruneRatioAt(-1, r, rmax, K),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_EPOCH'),
    );
    assert.throws(
      () => pruneRatioAt(0, r, 0.4, K),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_MAX_PRUNE_RATIO'),
    );
    assert.throws(
      () => pruneRatioAt(0, r, rmax, 0),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_EPOCHS'),
    );
  });
});
