// One epoch's plan: which examples are read and with what weight, for every
// policy. Everything is a pure function of the input, so every process that
// holds the same scores derives the same plan (and digest).
import { invalidArgument } from '../../common/errors.js';
import { invalidScore, isValidScore } from '../../common/scores.js';
import { prepare, probabilityOf, smoothScaled } from './capping.js';
import { planDigest } from './plan-codec.js';
import { fillUniforms, prngKey } from './prng.js';
import type { PrngKey } from './prng.js';
import { checkPruneRatio, checkSchedule, pruneRatioAt } from './schedule.js';
import type { EpochPlan, PlanInput, PlanStats } from './types.js';
import { POLICY_NAMES } from './types.js';

const HISTOGRAM_BINS = 20;
const MAX_DATASET_SIZE = 0xffffffff;
/** Uniforms are drawn in chunks of this many ids (even, so chunks start on a Threefry block). */
const CHUNK = 2048;
const uniforms = new Float64Array(CHUNK);

/**
 * Scratch arrays reused across plans of the same N: candidate ids and weights
 * (12 bytes per example), plus rescaled scores (8 more) only when the scores
 * need rescaling or imputation. One N is kept at a time; planning for another
 * N replaces it. releasePlanWorkspace() frees it.
 */
interface Workspace {
  n: number;
  ids: Uint32Array;
  weights: Float64Array;
  scores?: Float64Array;
}
let workspace: Workspace | undefined;

function workspaceFor(n: number): Workspace {
  if (workspace?.n !== n) {
    workspace = undefined; // let the old arrays go before allocating new ones
    workspace = { n, ids: new Uint32Array(n), weights: new Float64Array(n) };
  }
  return workspace;
}

function scoreScratch(ws: Workspace): Float64Array {
  ws.scores ??= new Float64Array(ws.n);
  return ws.scores;
}

/** Drops the planner's scratch arrays (12 to 20 bytes x N). */
export function releasePlanWorkspace(): void {
  workspace = undefined;
}

/** Bin of p in 20 equal bins over [0, 1], the last one including 1. */
function binOf(p: number): number {
  const b = (p * HISTOGRAM_BINS) | 0;
  return b >= HISTOGRAM_BINS ? HISTOGRAM_BINS - 1 : b;
}

/** InfoBatch trains on the full data from epoch ceil(0.875 K) on (its delta = 0.875), as in its reference code. */
export function infobatchFullEpoch(epoch: number, epochs: number): boolean {
  return 8 * epoch >= 7 * epochs;
}

function validate(input: PlanInput): void {
  const { policy, datasetSize: n } = input;
  if (!POLICY_NAMES.includes(policy)) {
    throw invalidArgument(
      'SADP_MATH_BAD_POLICY',
      `policy must be one of ${POLICY_NAMES.join(', ')}, got '${String(policy)}'`,
    );
  }
  if (!Number.isInteger(n) || n < 1 || n > MAX_DATASET_SIZE) {
    throw invalidArgument(
      'SADP_MATH_BAD_DATASET_SIZE',
      `dataset size N must be an integer in [1, 2^32), got ${n}`,
    );
  }
  checkPruneRatio(input.pruneRatio);
  checkSchedule(input.epoch, input.pruneRatio, input.maxPruneRatio, input.epochs);
  if (!(input.smoothing >= 0 && input.smoothing <= 1)) {
    throw invalidArgument(
      'SADP_MATH_BAD_SMOOTHING',
      `smoothing floor beta must be in [0, 1], got ${input.smoothing}`,
    );
  }
  const needs: [string, { length: number }][] = [];
  if (policy === 'sadp') needs.push(['scores', input.scores], ['scored', input.scored]);
  if (policy === 'sadp-loss' || policy === 'infobatch')
    needs.push(['losses', input.losses], ['scored', input.scored]);
  for (const [name, array] of needs) {
    if (array.length !== n) {
      throw invalidArgument(
        'SADP_MATH_BAD_INPUT_LENGTH',
        `${name} has length ${array.length}, expected N = ${n} for policy '${policy}'`,
      );
    }
  }
}

/**
 * The plan of one epoch. Selection: example i is selected iff
 * uniform(seed, epoch, i) < p_i. Weights: (S/N) / p_i for the SADP policies
 * (so the weighted mean loss is unbiased for the full-data mean), 1 for
 * full/random, 1 / (1 - r) for InfoBatch's kept low-loss examples.
 */
export function planEpoch(input: PlanInput): EpochPlan {
  const started = performance.now();
  validate(input);
  const key = prngKey(input.seed);
  let body: PlanBody;
  switch (input.policy) {
    case 'full':
      body = fullPlan(input.epoch, input.datasetSize);
      break;
    case 'random':
      body = randomPlan(input, key);
      break;
    case 'infobatch':
      body = infobatchFullEpoch(input.epoch, input.epochs)
        ? fullPlan(input.epoch, input.datasetSize)
        : infobatchPlan(input, key);
      break;
    case 'sadp':
      body = sadpPlan(input, input.scores, 'scores', key);
      break;
    case 'sadp-loss':
      body = sadpPlan(input, input.losses, 'losses', key);
      break;
  }
  const digest = planDigest(body.ids, body.weights);
  return { ...body, digest, stats: { ...body.stats, computeMs: performance.now() - started } };
}

/** A plan before its digest and timing. */
interface PlanBody extends Omit<EpochPlan, 'digest' | 'stats'> {
  stats: Omit<PlanStats, 'computeMs'>;
}

function stats(
  minProbability: number,
  maxProbability: number,
  maxWeight: number,
  histogram: Uint32Array,
  extra: { cappingPasses: number; smoothingOffset: number; floorInfeasible: boolean } = {
    cappingPasses: 0,
    smoothingOffset: 0,
    floorInfeasible: false,
  },
): Omit<PlanStats, 'computeMs'> {
  return { minProbability, maxProbability, maxWeight, histogram, ...extra };
}

function fullPlan(epoch: number, n: number): PlanBody {
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  const histogram = new Uint32Array(HISTOGRAM_BINS);
  histogram[HISTOGRAM_BINS - 1] = n;
  return {
    epoch,
    pruneRatio: 0,
    expectedSize: n,
    ids,
    weights: new Float64Array(n).fill(1),
    stats: stats(1, 1, 1, histogram),
  };
}

/** Uniform Bernoulli(S/N) with the nominal r every epoch (no schedule: the paper's Random Pruning baseline). */
function randomPlan(input: PlanInput, key: PrngKey): PlanBody {
  const n = input.datasetSize;
  const expectedSize = Math.max(1, (1 - input.pruneRatio) * n);
  const p = expectedSize / n;
  const { ids } = workspaceFor(n);
  let m = 0;
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    fillUniforms(uniforms, start, end - start, input.epoch, key);
    for (let i = start; i < end; i++) {
      ids[m] = i;
      m += +(uniforms[i - start]! < p);
    }
  }
  const histogram = new Uint32Array(HISTOGRAM_BINS);
  histogram[binOf(p)] = n;
  return {
    epoch: input.epoch,
    pruneRatio: 1 - p,
    expectedSize,
    ids: ids.slice(0, m),
    weights: new Float64Array(m).fill(1),
    stats: stats(p, p, m > 0 ? 1 : 0, histogram),
  };
}

/**
 * InfoBatch (Qin et al., ICLR 2024) with a fixed r: scored examples whose loss
 * is below the mean of the scored losses are kept with probability 1 - r and
 * weight 1 / (1 - r); everything else (including never-scored examples, so
 * the first epoch is full) is kept with weight 1.
 */
function infobatchPlan(input: PlanInput, key: PrngKey): PlanBody {
  const n = input.datasetSize;
  const { losses, scored } = input;
  const r = input.pruneRatio;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (scored[i] === 0) continue;
    const v = losses[i]!;
    if (!isValidScore(v)) throw invalidScore(`losses[${i}] = ${v}`);
    sum += v;
    count++;
  }
  const mean = count > 0 ? sum / count : Infinity;
  const keep = 1 - r;
  const keptWeight = 1 / keep;
  const { ids, weights } = workspaceFor(n);
  let m = 0;
  let below = 0;
  let keptBelow = 0;
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    fillUniforms(uniforms, start, end - start, input.epoch, key);
    for (let i = start; i < end; i++) {
      // Never-scored losses may hold anything: mask them out without reading them as a number.
      const isBelow = scored[i] === 0 ? 0 : +(losses[i]! < mean);
      const kept = +(uniforms[i - start]! < keep);
      ids[m] = i;
      weights[m] = isBelow === 1 ? keptWeight : 1;
      m += 1 - isBelow + isBelow * kept;
      below += isBelow;
      keptBelow += isBelow * kept;
    }
  }
  const histogram = new Uint32Array(HISTOGRAM_BINS);
  histogram[binOf(keep)]! += below;
  histogram[HISTOGRAM_BINS - 1]! += n - below;
  const expectedSize = n - r * below;
  return {
    epoch: input.epoch,
    pruneRatio: (r * below) / n,
    expectedSize,
    ids: ids.slice(0, m),
    weights: weights.slice(0, m),
    stats: stats(
      below > 0 ? keep : 1,
      below < n ? 1 : keep,
      keptBelow > 0 ? keptWeight : m > 0 ? 1 : 0,
      histogram,
    ),
  };
}

/**
 * SADP: schedule r_k (Eq. 42), S_k = max(1, (1 - r_k) N), smoothed capped
 * probabilities of the scores (never-scored examples get the mean of the
 * scored ones), Bernoulli draws, w = (S/N) / p. The draw loop is branch-free
 * for the same reason as the capping passes: every candidate is written and
 * the write position advances by the 0/1 outcome.
 */
function sadpPlan(input: PlanInput, values: Float64Array, what: string, key: PrngKey): PlanBody {
  const n = input.datasetSize;
  const pruneRatio = pruneRatioAt(input.epoch, input.pruneRatio, input.maxPruneRatio, input.epochs, n);
  const expectedSize = Math.min(n, Math.max(1, (1 - pruneRatio) * n));
  const ws = workspaceFor(n);
  const prepared = prepare(values, input.scored, n, () => scoreScratch(ws), what);
  const { g } = prepared;
  const { solution, offset, floorInfeasible } = smoothScaled(prepared, expectedSize, input.smoothing);
  const { threshold, floor, slope, up, base } = solution;
  const { ids, weights } = ws;
  const ratio = expectedSize / n;
  // One extra bin catches p = 1 without a branch; it is folded into the last bin.
  const bins = new Uint32Array(HISTOGRAM_BINS + 1);
  let m = 0;
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    fillUniforms(uniforms, start, end - start, input.epoch, key);
    for (let i = start; i < end; i++) {
      const v = g[i]!;
      // Same arithmetic as probabilityOf (see there), inlined for speed.
      const capped = +(v >= threshold);
      const keep = 1 - capped;
      let p = capped + keep * (floor + (v - base) * keep * up * slope);
      if (p > 1) p = 1;
      bins[(p * HISTOGRAM_BINS) | 0]!++;
      ids[m] = i;
      weights[m] = p; // turned into (S/N) / p below, for the selected ones only
      m += +(uniforms[i - start]! < p);
    }
  }
  const histogram = bins.slice(0, HISTOGRAM_BINS);
  histogram[HISTOGRAM_BINS - 1]! += bins[HISTOGRAM_BINS]!;
  const selectedWeights = new Float64Array(m);
  let maxW = 0;
  for (let j = 0; j < m; j++) {
    const w = ratio / weights[j]!;
    selectedWeights[j] = w;
    if (w > maxW) maxW = w;
  }
  return {
    epoch: input.epoch,
    pruneRatio,
    expectedSize,
    ids: ids.slice(0, m),
    weights: selectedWeights,
    // p is nondecreasing in the score: its extremes are those of the extreme scores.
    stats: stats(
      probabilityOf(solution, prepared.min),
      probabilityOf(solution, prepared.max),
      maxW,
      histogram,
      {
        cappingPasses: solution.passes,
        smoothingOffset: offset / prepared.scale,
        floorInfeasible,
      },
    ),
  };
}
