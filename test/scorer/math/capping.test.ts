// Capped and smoothed selection probabilities (Eq. 13-16, 28, 39-41): the O(N)
// iteration against the sort-based closed form, the constraints, the smoothing
// fixed point, and what happens at the edges (zeros, ties, 1e-300..1e308).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isSadpError } from '../../../common/errors.js';
import {
  MAX_ITERATIVE_PASSES,
  cappedProbabilities,
  cappedProbabilitiesSorted,
  smoothedProbabilities,
  smoothedProbabilitiesSorted,
} from '../../../scorer/math/index.js';

const RUNS = 300;

function kahanSum(values: Float64Array): number {
  let sum = 0;
  let c = 0;
  for (const v of values) {
    const y = v - c;
    const t = sum + y;
    c = t - sum - y;
    sum = t;
  }
  return sum;
}

/** Scores mixing the hard cases: plain doubles, ties, zeros, 1e-300..1e300, subnormals, MAX_VALUE. */
const scoresArb = fc
  .oneof(
    fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { minLength: 1, maxLength: 120 }),
    fc.array(fc.constantFrom(0, 1, 2, 3, 10), { minLength: 1, maxLength: 120 }),
    fc.array(
      fc.oneof(
        fc.constant(0),
        fc.integer({ min: -300, max: 300 }).map((k) => 10 ** k),
        fc.constantFrom(5e-324, 2.2e-308, Number.MAX_VALUE),
      ),
      { minLength: 1, maxLength: 120 },
    ),
    fc.array(
      fc.double({ min: 0, max: 1, noNaN: true }).map((u) => Math.exp(12 * u * u)),
      { minLength: 1, maxLength: 120 },
    ),
  )
  .map((a) => Float64Array.from(a));

/** (scores, S) with S anywhere in [0, N], including the ends. */
const caseArb = scoresArb.chain((scores) =>
  fc.tuple(
    fc.constant(scores),
    fc.oneof(
      fc.double({ min: 0, max: 1, noNaN: true }).map((f) => f * scores.length),
      fc.constantFrom(0, 1, scores.length).map((s) => Math.min(s, scores.length)),
    ),
  ),
);

function assertProbabilities(p: Float64Array, expectedSize: number, label: string): void {
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    assert.ok(v >= 0 && v <= 1, `${label}: p[${i}] = ${v} outside [0, 1]`);
  }
  const sum = kahanSum(p);
  assert.ok(
    Math.abs(sum - expectedSize) <= 1e-9 * p.length,
    `${label}: sum p = ${sum}, expected S = ${expectedSize}`,
  );
}

function assertClose(a: Float64Array, b: Float64Array, tolerance: number, label: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= tolerance, `${label}: p[${i}] = ${a[i]} vs ${b[i]}`);
  }
}

/** p must be nondecreasing in the score. */
function assertMonotone(scores: Float64Array, p: Float64Array, label: string): void {
  const order = [...scores.keys()].sort((i, j) => scores[i]! - scores[j]!);
  for (let k = 1; k < order.length; k++) {
    const lo = order[k - 1]!;
    const hi = order[k]!;
    assert.ok(
      p[lo]! <= p[hi]! + 1e-12,
      `${label}: score ${scores[lo]} gets ${p[lo]} > ${p[hi]} of score ${scores[hi]}`,
    );
  }
}

describe('cappedProbabilities (Eq. 28)', () => {
  test('matches the sorted closed form (Proposition 1), sums to S, stays in [0, 1]', () => {
    fc.assert(
      fc.property(caseArb, ([scores, S]) => {
        const iterative = new Float64Array(scores.length);
        const sorted = new Float64Array(scores.length);
        const result = cappedProbabilities(scores, S, iterative);
        cappedProbabilitiesSorted(scores, S, sorted);
        assertProbabilities(iterative, S, 'iterative');
        assertProbabilities(sorted, S, 'sorted');
        assertClose(iterative, sorted, 1e-9, 'iterative vs sorted');
        assertMonotone(scores, iterative, 'iterative');
        // Capped examples have p = 1; an uncapped one can round up to 1 too.
        const ones = iterative.filter((v) => v === 1).length;
        const nearOnes = iterative.filter((v) => v >= 1 - 1e-12).length;
        assert.ok(
          result.cappedCount <= ones && ones <= nearOnes,
          `cappedCount ${result.cappedCount}, ${ones} ones`,
        );
      }),
      { numRuns: RUNS },
    );
  });

  test('uncapped examples get probabilities proportional to their scores', () => {
    const scores = Float64Array.from([1, 2, 3, 4, 100, 200]);
    const p = new Float64Array(6);
    const { cappedCount } = cappedProbabilities(scores, 3, p);
    assert.equal(cappedCount, 2);
    assert.equal(p[4], 1);
    assert.equal(p[5], 1);
    // The remaining budget S - 2 = 1 is shared in proportion to 1:2:3:4.
    for (let i = 0; i < 4; i++)
      assert.ok(Math.abs(p[i]! - (i + 1) / 10) < 1e-15, 'Math.abs(p[i]! - (i + 1) / 10) < 1e-15');
  });

  test('falls back to the closed form when the iteration would take many passes', () => {
    // Geometric scores cap only a few examples per pass.
    const n = 1000;
    const scores = Float64Array.from({ length: n }, (_, i) => 0.5 ** i);
    const iterative = new Float64Array(n);
    const sorted = new Float64Array(n);
    const { passes } = cappedProbabilities(scores, 500, iterative);
    cappedProbabilitiesSorted(scores, 500, sorted);
    assert.equal(passes, MAX_ITERATIVE_PASSES + 1);
    assertProbabilities(iterative, 500, 'geometric');
    assertClose(iterative, sorted, 1e-12, 'geometric');
  });

  test('scores whose sum overflows a double still give the right answer', () => {
    const n = 64;
    const scores = new Float64Array(n).fill(Number.MAX_VALUE);
    const p = new Float64Array(n);
    cappedProbabilities(scores, 16, p);
    for (const v of p) assert.equal(v, 0.25);
    scores[0] = 1e-300;
    cappedProbabilities(scores, 16, p);
    assertProbabilities(p, 16, 'max-value scores');
    assert.ok(p[0]! < 1e-300, 'p[0]! < 1e-300');
  });

  test('zero scores get p = 0 unless every positive score is already capped', () => {
    const p = new Float64Array(6);
    cappedProbabilities(Float64Array.from([0, 0, 1, 1, 2, 4]), 2, p);
    assert.equal(p[0], 0);
    assert.equal(p[1], 0);
    // Four positive scores can absorb at most 4; S = 5 leaves 1 for the two zeros.
    cappedProbabilities(Float64Array.from([0, 0, 1, 1, 2, 4]), 5, p);
    assert.deepEqual([...p], [0.5, 0.5, 1, 1, 1, 1]);
    cappedProbabilities(new Float64Array(4), 1, p.subarray(0, 4));
    assert.deepEqual([...p.subarray(0, 4)], [0.25, 0.25, 0.25, 0.25]);
  });

  test('rejects bad input with a code and the offending index', () => {
    const out = new Float64Array(3);
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => cappedProbabilities(Float64Array.from([1, bad, 2]), 1, out),
        (err: unknown) => isSadpError(err, 'SADP_SCORE_INVALID') && err.message.includes('scores[1]'),
      );
    }
    assert.throws(
      () => cappedProbabilities(Float64Array.from([1, 2, 3]), 4, out),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_EXPECTED_SIZE') && err.message.includes('[0, 3]'),
    );
    assert.throws(
      () => cappedProbabilities(Float64Array.from([1, 2, 3]), 1, new Float64Array(2)),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_OUTPUT'),
    );
  });
});

describe('smoothedProbabilities (Eq. 40-41)', () => {
  const smoothCaseArb = fc.tuple(
    caseArb,
    fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1)),
  );

  test('matches the sorted reference, sums to S, respects the floor when feasible', () => {
    fc.assert(
      fc.property(smoothCaseArb, ([[scores, S], beta]) => {
        const n = scores.length;
        const iterative = new Float64Array(n);
        const sorted = new Float64Array(n);
        const result = smoothedProbabilities(scores, S, beta, iterative);
        const reference = smoothedProbabilitiesSorted(scores, S, beta, sorted);
        assertProbabilities(iterative, S, 'iterative');
        assertClose(iterative, sorted, 1e-9, 'iterative vs sorted');
        assert.equal(result.floorInfeasible, reference.floorInfeasible);
        assertMonotone(scores, iterative, 'smoothed');
        if (S >= n || S === 0) return;
        if (beta * n < S) {
          assert.equal(result.floorInfeasible, false);
          for (let i = 0; i < n; i++)
            assert.ok(iterative[i]! >= beta - 1e-12, `p[${i}] = ${iterative[i]} < beta ${beta}`);
        } else if (beta > 0) {
          assert.equal(result.floorInfeasible, true);
          for (let i = 0; i < n; i++) assert.equal(iterative[i], S / n);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('is the fixed point: capped probabilities of G + gamma, with minimum beta', () => {
    // gamma is reported in score units: keep scores where G + gamma is representable to full precision.
    const moderate = fc.array(fc.oneof(fc.constant(0), fc.double({ min: 1e-6, max: 1e6, noNaN: true })), {
      minLength: 2,
      maxLength: 100,
    });
    fc.assert(
      fc.property(
        moderate,
        fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        fc.double({ min: 0, max: 0.99, noNaN: true }),
        (raw, fraction, betaFraction) => {
          const scores = Float64Array.from(raw);
          const n = scores.length;
          const S = Math.max(1, fraction * n);
          if (S >= n) return;
          const beta = (betaFraction * S) / n; // beta N < S: always feasible
          const p = new Float64Array(n);
          const { offset, floorInfeasible } = smoothedProbabilities(scores, S, beta, p);
          assert.equal(floorInfeasible, false);
          assert.ok(offset >= 0, 'offset >= 0');
          if (!Number.isFinite(offset)) return;
          const shifted = scores.map((g) => g + offset);
          const reference = new Float64Array(n);
          cappedProbabilitiesSorted(shifted, S, reference);
          assertClose(p, reference, 1e-7, 'p vs cap(G + gamma)');
          if (offset > 0)
            assert.ok(Math.abs(Math.min(...p) - beta) < 1e-9, `min p ${Math.min(...p)} != beta ${beta}`);
          else assert.ok(Math.min(...p) >= beta - 1e-12, 'Math.min(...p) >= beta - 1e-12');
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('an example capped before smoothing can come back under 1', () => {
    // Plain capping caps the three big scores and leaves 2/7 for the others,
    // below beta = 0.45; the smoothed fixed point lifts the small ones to beta
    // and the big ones share what is left.
    const scores = Float64Array.from([1e6, 1e6, 1e6, 1, 1, 1, 1, 1, 1, 1]);
    const plain = new Float64Array(10);
    cappedProbabilities(scores, 5, plain);
    assert.deepEqual([...plain.subarray(0, 3)], [1, 1, 1]);
    const p = new Float64Array(10);
    const result = smoothedProbabilities(scores, 5, 0.45, p);
    assert.equal(result.cappedCount, 0);
    for (let i = 3; i < 10; i++) assert.ok(Math.abs(p[i]! - 0.45) < 1e-12, 'Math.abs(p[i]! - 0.45) < 1e-12');
    for (let i = 0; i < 3; i++)
      assert.ok(Math.abs(p[i]! - (5 - 7 * 0.45) / 3) < 1e-9, 'Math.abs(p[i]! - (5 - 7 * 0.45) / 3) < 1e-9');
  });

  test('zero scores are lifted to beta; beta = 0 leaves them at 0', () => {
    const scores = Float64Array.from([0, 0, 1, 2, 3, 4, 5, 6]);
    const p = new Float64Array(8);
    smoothedProbabilities(scores, 4, 0.2, p);
    assert.ok(
      Math.abs(p[0]! - 0.2) < 1e-12 && p[0] === p[1],
      'Math.abs(p[0]! - 0.2) < 1e-12 && p[0] === p[1]',
    );
    smoothedProbabilities(scores, 4, 0, p);
    assert.equal(p[0], 0);
  });

  test('no offset when the unsmoothed probabilities already respect the floor', () => {
    const scores = Float64Array.from([5, 6, 7, 8]);
    const p = new Float64Array(4);
    const plain = new Float64Array(4);
    const result = smoothedProbabilities(scores, 2, 0.2, p);
    cappedProbabilities(scores, 2, plain);
    assert.equal(result.offset, 0);
    assert.deepEqual([...p], [...plain]);
  });

  test('an infeasible floor gives uniform S/N', () => {
    const p = new Float64Array(5);
    const result = smoothedProbabilities(Float64Array.from([0, 1, 2, 3, 100]), 2, 0.5, p);
    assert.equal(result.floorInfeasible, true);
    assert.deepEqual([...p], [0.4, 0.4, 0.4, 0.4, 0.4]);
  });

  test('rejects beta outside [0, 1]', () => {
    assert.throws(
      () => smoothedProbabilities(Float64Array.from([1, 2]), 1, 1.5, new Float64Array(2)),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_SMOOTHING') && err.message.includes('1.5'),
    );
  });
});
