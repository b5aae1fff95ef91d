// Capped proportional selection probabilities (Eq. 13-16, 28, 39) and their
// smoothing to a floor beta (Eq. 40-41), on flat Float64Arrays.
//
// Both problems have the same shape. With floor phi and base b (phi = b = 0
// for plain capping; phi = beta, b = min score for smoothing):
//   p_i = 1                         if g_i >= T   (the capped set C)
//   p_i = phi + a (g_i - b)         otherwise (the set R)
//   a   = (S - |C| - phi |R|) / sum_R (g_i - b)
// The capped set is always the top of the score order, so one threshold T
// describes it and no per-example membership flags are needed: a pass reads
// only the scores. Smoothing follows from p_i = lambda (G_i + gamma): with
// min p = beta, lambda (G_i + gamma) = beta + lambda (G_i - G_min), so the
// fixed point of "add gamma, recap, recompute gamma" is this problem with
// phi = beta, b = G_min, and gamma = beta / a - G_min.
//
// Range: scores are multiplied by a power of two (exact) only where needed:
// down when the largest exceeds 2^990 (so sums of up to 2^32 scores cannot
// overflow), up when it is below 1 (so tiny scores keep their digits). Scaled
// scores below 2^-1000 count as 0 (their probability is below 2^-968 of the
// largest), which keeps every sum and threshold out of the subnormal range;
// scores spanning 1e-300..1e300 are kept exactly. The slope a is stored as
// slope * up with `up` a power of two, so a tiny sum_R cannot overflow it.
import { invalidArgument } from '../../common/errors.js';
import { invalidScore, isValidScore } from '../../common/scores.js';

/** Partial sums are flushed every BLOCK elements: error grows with BLOCK + N/BLOCK, not N. */
const BLOCK = 4096;
/**
 * The iteration usually converges in a handful of passes; adversarial score
 * sets (geometric sequences) can cap a few examples per pass. After this many
 * passes the remaining set is sorted and solved in closed form instead, so the
 * worst case is O(N log N), not O(N^2).
 */
export const MAX_ITERATIVE_PASSES = 48;

export interface CappingResult {
  /** Passes over the scores of the Eq. 28 iteration (each computes p for R and caps p >= 1). */
  passes: number;
  /** Examples with p = 1. */
  cappedCount: number;
}

export interface SmoothingResult {
  /** Capping passes of the final solve (the smoothed one when smoothing applied). */
  passes: number;
  /**
   * Capping solves run: the smoothed one (Eq. 40-41 iterated with capping to
   * its fixed point) and, when that shows no offset is needed, the plain one.
   * 1 or 2; 0 when the answer is trivial (S >= N, S = 0, infeasible floor).
   */
  rounds: number;
  /** gamma added to every score (Eq. 40), in score units; 0 when not needed, Infinity when the result is uniform over R. */
  offset: number;
  /** beta N >= S: no probabilities can all reach beta; the result is uniform S/N. */
  floorInfeasible: boolean;
  /** Examples with p = 1. */
  cappedCount: number;
}

/**
 * p(g) = 1 if g >= threshold, else min(1, floor + ((g - base) * up) * slope);
 * g is a scaled score; +-MAX_VALUE as threshold stand for "nothing" and
 * "everything" capped.
 */
export interface Solution {
  threshold: number;
  floor: number;
  slope: number;
  up: number;
  base: number;
  passes: number;
  cappedCount: number;
}

/** Scaled scores prepared for a solve. */
export interface Prepared {
  /** The scores the solvers read: the input itself when it needed no change, else the workspace. */
  g: Float64Array;
  /** Multiplier (a power of two) applied to the raw scores. */
  scale: number;
  /** Smallest and largest scaled score. */
  min: number;
  max: number;
  /**
   * Upper bounds on sum(g) and sum(g - min), within ~1e-12 relative (or the
   * rounding of the difference for tightly clustered scores). Only the first
   * capping pass uses them; every later quantity comes from exact pass sums,
   * so an upper bound is all they need to be: the first threshold can only
   * err high, which caps nothing wrongly.
   */
  sumBound: number;
  shiftedSumBound: number;
}

export interface SmoothedSolution {
  solution: Solution;
  rounds: number;
  /** gamma in scaled units. */
  offset: number;
  floorInfeasible: boolean;
}

const bitsView = new DataView(new ArrayBuffer(8));

/** floor(log2 x) for a positive normal x; -1023 for subnormals. */
function exponentOf(x: number): number {
  bitsView.setFloat64(0, x);
  return ((bitsView.getUint32(0) >>> 20) & 0x7ff) - 1023;
}

/** 2^k for an integer k in [-1022, 1023], built from its bits (exact, no Math.pow). */
function pow2(k: number): number {
  bitsView.setUint32(0, (k + 1023) << 20);
  bitsView.setUint32(4, 0);
  return bitsView.getFloat64(0);
}

const MAX_SCALED_EXPONENT = 990;
/** Scaled scores below this are 0: keeps sums, differences and thresholds normal. */
const FLUSH_BELOW = 2 ** -1000;
const TINY_SUM = 2 ** -900;

/** The power of two the raw scores are multiplied by, from the largest score. */
function scoreScale(max: number): number {
  if (!(max > 0)) return 1;
  const e = exponentOf(max);
  if (e > MAX_SCALED_EXPONENT) return pow2(MAX_SCALED_EXPONENT - e);
  if (e < 0) return pow2(Math.min(-e, 1000));
  return 1;
}

/** A power of two bringing a tiny positive sum near 1, so numerator / (sum * up) stays finite. */
function normalizer(sum: number): number {
  return sum >= TINY_SUM ? 1 : pow2(Math.min(1000, -exponentOf(sum)));
}

function badScore(what: string, id: number, value: number | undefined): Error {
  return invalidScore(`${what}[${id}] = ${String(value)}`);
}

function checkExpectedSize(expectedSize: number, n: number): void {
  if (!(expectedSize >= 0 && expectedSize <= n)) {
    throw invalidArgument(
      'SADP_MATH_BAD_EXPECTED_SIZE',
      `expected size S must be in [0, N] = [0, ${n}], got ${expectedSize}`,
    );
  }
}

function checkOut(out: Float64Array, n: number): void {
  if (out.length !== n) {
    throw invalidArgument('SADP_MATH_BAD_OUTPUT', `output array has length ${out.length}, expected N = ${n}`);
  }
}

function flush(v: number): number {
  return v >= FLUSH_BELOW ? v : 0;
}

/**
 * Validates the scores (those with scored[i] !== 0 when `scored` is given)
 * and prepares them for the solvers. One read-only pass when nothing needs
 * changing (the usual case); otherwise a second pass writes the scaled,
 * flushed scores into `scratch()` (length N, may be `values`), with
 * never-scored examples set to the mean of the scored ones (all 1 when none
 * is scored: uniform).
 */
export function prepare(
  values: Float64Array,
  scored: Uint8Array | undefined,
  n: number,
  scratch: () => Float64Array,
  what: string,
): Prepared {
  let max = 0;
  let min = Infinity;
  let minPositive = Infinity;
  let count = 0;
  let sum = 0;
  for (let start = 0; start < n; start += BLOCK) {
    const end = Math.min(n, start + BLOCK);
    let local = 0;
    for (let i = start; i < end; i++) {
      if (scored !== undefined && scored[i] === 0) continue;
      const v = values[i]!;
      if (!isValidScore(v)) throw badScore(what, i, v);
      if (v > max) max = v;
      if (v < min) min = v;
      if (v > 0 && v < minPositive) minPositive = v;
      local += v;
      count++;
    }
    sum += local;
  }
  if (count === 0) {
    const ones = scratch().fill(1);
    return { g: ones, scale: 1, min: 1, max: 1, sumBound: n, shiftedSumBound: 0 };
  }
  const scale = scoreScale(max);
  let g = values;
  if (count < n || scale !== 1 || minPositive * scale < FLUSH_BELOW) {
    const dst = scratch();
    g = dst;
    sum = 0;
    for (let start = 0; start < n; start += BLOCK) {
      const end = Math.min(n, start + BLOCK);
      let local = 0;
      for (let i = start; i < end; i++) {
        if (scored !== undefined && scored[i] === 0) continue;
        const scaled = values[i]! * scale;
        const v = scaled * +(scaled >= FLUSH_BELOW);
        dst[i] = v;
        local += v;
      }
      sum += local;
    }
    if (count < n) {
      // The mean of the scored examples lies between their min and max, so those stay.
      const mean = sum / count;
      for (let i = 0; i < n; i++) if (scored![i] === 0) dst[i] = mean;
      sum += mean * (n - count);
    }
  }
  const base = flush(min * scale);
  // Blocked summation errs by at most (BLOCK + N / BLOCK) ulps of the sum; be generous.
  const slack = (BLOCK + n / BLOCK + 64) * Number.EPSILON * (sum + n * base);
  return {
    g,
    scale,
    min: base,
    max: flush(max * scale),
    sumBound: sum + slack,
    shiftedSumBound: Math.max(0, sum - n * base) + 2 * slack,
  };
}

/** A solution whose uncapped part is phi + a (g - base) with a = numerator / sum. */
function proportional(
  threshold: number,
  floor: number,
  numerator: number,
  sum: number,
  base: number,
  passes: number,
  cappedCount: number,
): Solution {
  const up = normalizer(sum);
  return { threshold, floor, slope: numerator / (sum * up), up, base, passes, cappedCount };
}

/** A solution whose uncapped part is the constant `value`. */
function constant(threshold: number, value: number, passes: number, cappedCount: number): Solution {
  return { threshold, floor: value, slope: 0, up: 1, base: 0, passes, cappedCount };
}

/**
 * The Eq. 28 iteration generalised to a floor: start with R = everything;
 * each pass computes the threshold T for the current R, caps every g >= T and
 * sums the rest. Since T only decreases, {g < T} is exactly the next R: no
 * membership flags. The pass is branch-free (a comparison turned into 0/1):
 * a data-dependent branch here mispredicts on every capped example and costs
 * 3-5x. `sumAll` is an upper bound on sum(g - base) over all n.
 */
function solveIterative(
  g: Float64Array,
  n: number,
  expectedSize: number,
  floor: number,
  base: number,
  sumAll: number,
): Solution {
  let previous = Number.MAX_VALUE;
  let r = n;
  let c = expectedSize;
  let sum = sumAll;
  // sumAll is only an upper bound: a pass that caps nothing under it proves nothing.
  let exact = false;
  let passes = 0;
  for (;;) {
    const numerator = c - floor * r;
    if (!(sum > 0 && numerator > 0)) {
      // Everything left in R sits at `base` (or exactly at the floor): spread c evenly.
      return constant(previous, r > 0 ? Math.max(floor, c / r) : 0, passes, n - r);
    }
    if (passes >= MAX_ITERATIVE_PASSES) return finishSorted(g, n, previous, r, c, floor, base, passes);
    const threshold = base + ((1 - floor) * sum) / numerator;
    passes++;
    let kept = 0;
    let total = 0;
    for (let start = 0; start < n; start += BLOCK) {
      const end = Math.min(n, start + BLOCK);
      let local = 0;
      for (let i = start; i < end; i++) {
        const v = g[i]!;
        const inR = +(v < threshold);
        kept += inR;
        local += inR * (v - base);
      }
      total += local;
    }
    if (kept === r) {
      if (exact) return proportional(previous, floor, numerator, total, base, passes, n - r);
      exact = true;
      sum = total;
      continue;
    }
    const nextC = c - (r - kept);
    if (!(nextC - floor * kept > 0)) {
      // Capped examples had p >= 1, so what is left covers the floor of the
      // rest exactly or with room to spare; short of it only by rounding
      // (examples at p = 1 - ulp counted as capped). The rest sits at the floor.
      return constant(threshold, floor, passes, n - kept);
    }
    c = nextC;
    r = kept;
    sum = total;
    exact = true;
    previous = threshold;
  }
}

/** Fallback after MAX_ITERATIVE_PASSES: closed form on what is left of R. */
function finishSorted(
  g: Float64Array,
  n: number,
  previous: number,
  r: number,
  c: number,
  floor: number,
  base: number,
  passes: number,
): Solution {
  const rest = new Float64Array(r);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const v = g[i]!;
    if (v < previous) rest[k++] = v;
  }
  rest.sort();
  const s = solveSortedCore(rest, c, floor, base, n - r);
  return { ...s, threshold: s.cappedCount > n - r ? rest[n - s.cappedCount]! : previous, passes: passes + 1 };
}

/**
 * Proposition 1 (Eq. 13-16) generalised to a floor, on ascending `x`: the
 * number M of capped examples is the smallest M for which the largest
 * uncapped example gets p < 1. Prefix sums are Kahan-compensated. Returns
 * the solution with cappedCount = alreadyCapped + M and threshold unset.
 */
function solveSortedCore(
  x: Float64Array,
  c: number,
  floor: number,
  base: number,
  alreadyCapped: number,
): Solution {
  const m = x.length;
  const prefix = new Float64Array(m + 1);
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < m; i++) {
    const y = x[i]! - base - compensation;
    const t = sum + y;
    compensation = t - sum - y;
    sum = t;
    prefix[i + 1] = sum;
  }
  for (let capped = 0; capped < m; capped++) {
    const k = m - capped;
    const numerator = c - capped - floor * k;
    const p = prefix[k]!;
    // Budget left only for the floor (numerator falls with M, so the optimum
    // has numerator >= 0: this M is it, up to rounding).
    if (!(numerator > 0)) return constant(Number.NaN, floor, 1, alreadyCapped + capped);
    if (!(p > 0)) {
      const even = (c - capped) / k;
      if (even < 1) return constant(Number.NaN, even, 1, alreadyCapped + capped);
      continue;
    }
    // Largest uncapped p < 1, compared in normalised units so a tiny sum cannot overflow.
    const up = normalizer(p);
    if ((x[k - 1]! - base) * up * numerator < (1 - floor) * (p * up)) {
      return proportional(Number.NaN, floor, numerator, p, base, 1, alreadyCapped + capped);
    }
  }
  return constant(Number.NaN, 0, 1, alreadyCapped + m);
}

function solveSorted(sorted: Float64Array, expectedSize: number, floor: number, base: number): Solution {
  const n = sorted.length;
  const s = solveSortedCore(sorted, expectedSize, floor, base, 0);
  return { ...s, threshold: s.cappedCount > 0 ? sorted[n - s.cappedCount]! : Number.MAX_VALUE };
}

/**
 * p of one scaled score. Branch-free like the loops that use it: the score's
 * distance above base is zeroed for capped scores before it is multiplied, so
 * a capped score far above the threshold cannot overflow the product and
 * 0 * Infinity never happens.
 */
export function probabilityOf(solution: Solution, g: number): number {
  const { threshold, floor, slope, up, base } = solution;
  const capped = +(g >= threshold);
  const keep = 1 - capped;
  const p = capped + keep * (floor + (g - base) * keep * up * slope);
  return p > 1 ? 1 : p;
}

function writeProbabilities(g: Float64Array, solution: Solution, out: Float64Array): void {
  const { threshold, floor, slope, up, base } = solution;
  const n = g.length;
  for (let i = 0; i < n; i++) {
    const v = g[i]!;
    const capped = +(v >= threshold);
    const keep = 1 - capped;
    const p = capped + keep * (floor + (v - base) * keep * up * slope);
    out[i] = p > 1 ? 1 : p;
  }
}

function allOnes(n: number): Solution {
  return constant(-Number.MAX_VALUE, 1, 0, n);
}
function allZeros(): Solution {
  return constant(Number.MAX_VALUE, 0, 0, 0);
}

/**
 * Smoothed capped probabilities of prepared scores. `sorted` (ascending copy of
 * g) selects the closed-form solver; otherwise the iteration.
 *
 * The floor problem is solved first: its gamma = beta / a - G_min is > 0
 * exactly when the unsmoothed probabilities violate the floor (the minimum of
 * cap(G + gamma) grows with gamma), which is the usual case, so one solve
 * suffices; gamma <= 0 means smoothing is not needed and the plain solve runs.
 */
export function smoothScaled(
  prepared: Prepared,
  expectedSize: number,
  smoothing: number,
  sorted?: Float64Array,
): SmoothedSolution {
  const { g } = prepared;
  const n = g.length;
  if (expectedSize >= n) return { solution: allOnes(n), rounds: 0, offset: 0, floorInfeasible: false };
  if (!(expectedSize > 0)) return { solution: allZeros(), rounds: 0, offset: 0, floorInfeasible: false };
  const solve = (floor: number, base: number, sumAll: number): Solution =>
    sorted === undefined
      ? solveIterative(g, n, expectedSize, floor, base, sumAll)
      : solveSorted(sorted, expectedSize, floor, base);
  if (!(smoothing > 0))
    return { solution: solve(0, 0, prepared.sumBound), rounds: 1, offset: 0, floorInfeasible: false };
  if (smoothing * n >= expectedSize) {
    const uniform = constant(Number.MAX_VALUE, expectedSize / n, 0, 0);
    return { solution: uniform, rounds: 0, offset: Infinity, floorInfeasible: true };
  }
  const smoothed = solve(smoothing, prepared.min, prepared.shiftedSumBound);
  if (smoothed.slope > 0) {
    // a = slope * up; gamma = beta / a - G_min, divided in two steps so it cannot overflow.
    const offset = smoothing / smoothed.slope / smoothed.up - prepared.min;
    if (offset > 0) return { solution: smoothed, rounds: 1, offset, floorInfeasible: false };
  }
  const plain = solve(0, 0, prepared.sumBound);
  if (smoothed.slope === 0 && probabilityOf(plain, prepared.min) < smoothing) {
    // R ended up all at G_min (everything else capped): uniform over R, gamma unbounded.
    return { solution: smoothed, rounds: 2, offset: Infinity, floorInfeasible: false };
  }
  return { solution: plain, rounds: 2, offset: 0, floorInfeasible: false };
}

function checkSmoothing(smoothing: number): void {
  if (!(smoothing >= 0 && smoothing <= 1)) {
    throw invalidArgument(
      'SADP_MATH_BAD_SMOOTHING',
      `smoothing floor beta must be in [0, 1], got ${smoothing}`,
    );
  }
}

/**
 * Eq. 28 / 39: p_i = G_i (S - N + |R|) / sum_R G, capping p >= 1 and
 * repeating until nothing is capped. O(N) per pass, no allocation (unless
 * the pass limit forces the sorted fallback). `out` may alias `scores`.
 * When every uncapped score is 0 the remaining budget is spread evenly over them.
 */
export function cappedProbabilities(
  scores: Float64Array,
  expectedSize: number,
  out: Float64Array,
): CappingResult {
  const n = scores.length;
  checkOut(out, n);
  checkExpectedSize(expectedSize, n);
  const prepared = prepare(scores, undefined, n, () => out, 'scores');
  const solution =
    expectedSize >= n
      ? allOnes(n)
      : expectedSize > 0
        ? solveIterative(prepared.g, n, expectedSize, 0, 0, prepared.sumBound)
        : allZeros();
  writeProbabilities(prepared.g, solution, out);
  return { passes: solution.passes, cappedCount: solution.cappedCount };
}

/** Proposition 1 (Eq. 13-16) by sorting: O(N log N). The reference for cappedProbabilities. */
export function cappedProbabilitiesSorted(
  scores: Float64Array,
  expectedSize: number,
  out: Float64Array,
): void {
  const n = scores.length;
  checkOut(out, n);
  checkExpectedSize(expectedSize, n);
  const { g } = prepare(scores, undefined, n, () => out, 'scores');
  const sorted = Float64Array.from(g).sort();
  const solution =
    expectedSize >= n ? allOnes(n) : expectedSize > 0 ? solveSorted(sorted, expectedSize, 0, 0) : allZeros();
  writeProbabilities(g, solution, out);
}

function smoothedInto(
  scores: Float64Array,
  expectedSize: number,
  smoothing: number,
  out: Float64Array,
  useSort: boolean,
): SmoothingResult {
  const n = scores.length;
  checkOut(out, n);
  checkExpectedSize(expectedSize, n);
  checkSmoothing(smoothing);
  const prepared = prepare(scores, undefined, n, () => out, 'scores');
  const sorted = useSort ? Float64Array.from(prepared.g).sort() : undefined;
  const s = smoothScaled(prepared, expectedSize, smoothing, sorted);
  writeProbabilities(prepared.g, s.solution, out);
  return {
    passes: s.solution.passes,
    rounds: s.rounds,
    offset: s.offset / prepared.scale,
    floorInfeasible: s.floorInfeasible,
    cappedCount: s.solution.cappedCount,
  };
}

/**
 * Eq. 40-41 iterated to its fixed point: if the smallest capped probability is
 * below beta, find gamma such that the capped probabilities of G + gamma have
 * minimum exactly beta (every example, capped or not, gets the offset, so
 * examples capped before smoothing can come back under 1). Zero scores are
 * lifted like any other. When beta N >= S the floor is infeasible and p = S/N.
 */
export function smoothedProbabilities(
  scores: Float64Array,
  expectedSize: number,
  smoothing: number,
  out: Float64Array,
): SmoothingResult {
  return smoothedInto(scores, expectedSize, smoothing, out, false);
}

/** smoothedProbabilities by sorting (Proposition 1 with a floor): the test reference. */
export function smoothedProbabilitiesSorted(
  scores: Float64Array,
  expectedSize: number,
  smoothing: number,
  out: Float64Array,
): SmoothingResult {
  return smoothedInto(scores, expectedSize, smoothing, out, true);
}
