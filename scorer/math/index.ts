/**
 * SADP math (arXiv 2510.04098, Section IV): pure, synchronous functions over
 * flat typed arrays; no I/O, no per-example objects. Same input, same bytes
 * out, in every process (IEEE double arithmetic in a fixed order, no Math.pow
 * or other library functions on the data path).
 *
 * - Schedule (Eq. 42): r_k = 2r - r_max + k (2 r_max - 2r) / K with k = epoch + 1,
 *   clipped to [0, 1) and to S_k = (1 - r_k) N >= 1. Its mean over the run is
 *   r + (r_max - r) / K.
 * - Defaults (Table II): r 0.3 -> beta 0.35, r_max 0.6; 0.5 -> 0.3, 0.7;
 *   0.7 -> 0.2, 0.9; 0.9 -> 0.05, 1.0; 0.35 (ImageNet) -> 0.25, 0.55. Other r:
 *   beta interpolated linearly over the CIFAR rows (constant outside
 *   [0.3, 0.9]); r_max = min(1, r + 0.3, 2r) so the first epoch's 2r - r_max >= 0.
 * - Probabilities: capped proportional (Eq. 28/39) by iteration, O(N) per
 *   branch-free pass (typically 3-6 passes; closed form on the remainder after
 *   48); the sort-based closed form (Eq. 13-16) is kept as the test reference.
 * - Smoothing (Eq. 40-41) is solved to its exact fixed point: the gamma for
 *   which the capped probabilities of G + gamma have minimum beta, with every
 *   example getting gamma (examples capped before smoothing can come back
 *   under 1); gamma = 0 when the unsmoothed probabilities already respect
 *   beta. beta N >= S: infeasible, p = S/N for all. Unlike the paper's R_nz,
 *   zero scores are lifted like any other when beta > 0; with beta = 0 they
 *   get p = 0 (never drawn, so no infinite weight) unless every positive score
 *   is already capped at 1, in which case the remaining budget is spread
 *   evenly over them.
 * - Range: any finite scores >= 0. Scores are rescaled by a power of two only
 *   when needed (largest > 2^990 or < 1); scaled scores below 2^-1000 count as
 *   0. Scores spanning 1e-300..1e300 keep full precision. Sum p = S to ~1e-15 N.
 * - Never-scored examples (SADP policies) get the mean of the scored examples'
 *   scores; with nothing scored, p is uniform (the first epoch is uniform).
 * - Draws: example i is selected iff uniform(seed, epoch, i) < p_i, with
 *   Threefry-4x32-20 (Random123) keyed by the 64-bit seed on counter
 *   (floor(i / 2), epoch), one block serving ids 2j and 2j + 1; the uniform
 *   lies in (0, 1) with 52 random bits, so p = 1 is always drawn, p = 0 never,
 *   and p <= 2^-53 never (weights stay below (S/N) 2^53).
 * - Weights: SADP (S/N) / p; full and random 1; InfoBatch 1 / (1 - r).
 * - Policies: full (p = 1); random (p = 1 - r, the nominal r every epoch, no
 *   schedule); infobatch (the nominal r, no schedule; scored examples with
 *   loss strictly below the mean of the scored losses kept with p = 1 - r;
 *   never-scored examples kept, so the first epoch is full; full data from
 *   epoch ceil(7K/8) on, InfoBatch's delta = 0.875: the last 25 of 200
 *   epochs, the last 1 of 10; the plan's pruneRatio is the expected realised
 *   r |below| / N); sadp-loss and sadp (schedule, smoothed capped
 *   probabilities of the loss or of G).
 * - Plans: ids ascending, digest = SHA-256 of ids (u32 LE) then weights (f64
 *   LE); encodePlan/decodePlan give a 192-byte header + that body (layout in
 *   plan-codec.ts), and decoding verifies the digest.
 * - Cost: planEpoch holds a workspace of 12-20 bytes x N (one N at a time;
 *   releasePlanWorkspace frees it) and blocks its thread for the whole plan
 *   (tens of ms at N = 1.28M, a few hundred at 10M): run it in a worker if
 *   the event loop must stay responsive.
 */
export {
  MAX_ITERATIVE_PASSES,
  cappedProbabilities,
  cappedProbabilitiesSorted,
  smoothedProbabilities,
  smoothedProbabilitiesSorted,
} from './capping.js';
export { defaultHyperparameters, pruneRatioAt } from './schedule.js';
export { uniform, threefry4x32 } from './prng.js';
export type { EpochPlan, PlanInput, PolicyName } from './types.js';
export { POLICY_NAMES } from './types.js';
export { planEpoch, infobatchFullEpoch, releasePlanWorkspace } from './plan.js';
export { planDigest, encodePlan, decodePlan } from './plan-codec.js';
