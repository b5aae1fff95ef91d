// Epoch plans: every policy's selection rule and weights, the unbiasedness and
// variance of the weighted estimator, determinism across processes, and the
// plan encoding.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Status, isSadpError, type SadpErrorCode } from '../../../common/errors.js';
import {
  decodePlan,
  defaultHyperparameters,
  encodePlan,
  infobatchFullEpoch,
  planDigest,
  planEpoch,
  pruneRatioAt,
  smoothedProbabilities,
  uniform,
} from '../../../scorer/math/index.js';
import type { EpochPlan, PlanInput } from '../../../scorer/math/index.js';

const run = promisify(execFile);

/** Deterministic lognormal(0, sigma) values drawn with the library's own PRNG (seed 99). */
function lognormal(n: number, sigma: number, stream = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = uniform(99n, stream, 2 * i);
    const u2 = uniform(99n, stream, 2 * i + 1);
    out[i] = Math.exp(sigma * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
  }
  return out;
}

function input(n: number, overrides: Partial<PlanInput> = {}): PlanInput {
  const scores = overrides.scores ?? lognormal(n, 1);
  return {
    policy: 'sadp',
    datasetSize: n,
    pruneRatio: 0.5,
    maxPruneRatio: 0.7,
    smoothing: 0.3,
    epochs: 100,
    epoch: 50,
    seed: 1234n,
    scores,
    losses: scores,
    scored: new Uint8Array(n).fill(1),
    ...overrides,
  };
}

function assertWellFormed(plan: EpochPlan, n: number): void {
  assert.equal(plan.ids.length, plan.weights.length);
  for (let j = 1; j < plan.ids.length; j++)
    assert.ok(plan.ids[j]! > plan.ids[j - 1]!, `ids not ascending at ${j}`);
  if (plan.ids.length > 0)
    assert.ok(plan.ids[plan.ids.length - 1]! < n, 'plan.ids[plan.ids.length - 1]! < n');
  for (const w of plan.weights) assert.ok(Number.isFinite(w) && w > 0, `weight ${w}`);
  assert.equal(plan.digest, planDigest(plan.ids, plan.weights));
  assert.equal(
    plan.stats.histogram.reduce((a, b) => a + b, 0),
    n,
  );
  assert.ok(
    Math.abs(plan.expectedSize - (1 - plan.pruneRatio) * n) < 1e-6 * n,
    'Math.abs(plan.expectedSize - (1 - plan.pruneRatio) * n) < 1e-6 * n',
  );
}

describe('planEpoch: full and random', () => {
  test('full keeps every example with weight 1', () => {
    const plan = planEpoch(input(1000, { policy: 'full' }));
    assertWellFormed(plan, 1000);
    assert.deepEqual([...plan.ids], [...Array(1000).keys()]);
    assert.ok(
      plan.weights.every((w) => w === 1),
      'plan.weights.every((w) => w === 1)',
    );
    assert.equal(plan.stats.histogram[19], 1000);
    assert.equal(plan.pruneRatio, 0);
  });

  test('random draws Bernoulli(1 - r) with the fixed r and weight 1', () => {
    const n = 20_000;
    for (const epoch of [0, 50, 99]) {
      const plan = planEpoch(input(n, { policy: 'random', epoch }));
      assertWellFormed(plan, n);
      assert.equal(plan.pruneRatio, 0.5, 'no schedule');
      const selected = new Set(plan.ids);
      for (let id = 0; id < n; id++) assert.equal(selected.has(id), uniform(1234n, epoch, id) < 0.5);
      assert.ok(
        plan.weights.every((w) => w === 1),
        'plan.weights.every((w) => w === 1)',
      );
      assert.ok(
        Math.abs(plan.ids.length / n - 0.5) < 5 * Math.sqrt(0.25 / n),
        'Math.abs(plan.ids.length / n - 0.5) < 5 * Math.sqrt(0.25 / n)',
      );
    }
  });
});

describe('planEpoch: infobatch', () => {
  const n = 4000;
  const losses = lognormal(n, 1, 5);
  let mean = 0;
  for (const v of losses) mean += v / n;

  test('keeps below-mean examples with probability 1 - r and weight 1 / (1 - r), the rest with weight 1', () => {
    const r = 0.3;
    const plan = planEpoch(
      input(n, { policy: 'infobatch', pruneRatio: r, maxPruneRatio: r, losses, epoch: 10 }),
    );
    assertWellFormed(plan, n);
    const weightOf = new Map([...plan.ids].map((id, j) => [id, plan.weights[j]!]));
    let below = 0;
    for (let id = 0; id < n; id++) {
      if (losses[id]! < mean) {
        below++;
        const kept = uniform(1234n, 10, id) < 1 - r;
        assert.equal(weightOf.has(id), kept, `example ${id}`);
        if (kept) assert.equal(weightOf.get(id), 1 / (1 - r));
      } else {
        assert.equal(weightOf.get(id), 1, `example ${id} above the mean must be kept with weight 1`);
      }
    }
    assert.ok(Math.abs(plan.pruneRatio - (r * below) / n) < 1e-12, 'reports the expected realised ratio');
    assert.ok(
      Math.abs(plan.expectedSize - (n - r * below)) < 1e-9,
      'Math.abs(plan.expectedSize - (n - r * below)) < 1e-9',
    );
  });

  test('never-scored examples are kept, so the first epoch is full', () => {
    const plan = planEpoch(input(n, { policy: 'infobatch', losses, epoch: 0, scored: new Uint8Array(n) }));
    assert.equal(plan.ids.length, n);
    assert.ok(
      plan.weights.every((w) => w === 1),
      'plan.weights.every((w) => w === 1)',
    );
  });

  test('trains on the full data in the last 12.5 % of epochs', () => {
    for (const K of [1, 8, 10, 16, 100, 200]) {
      let full = 0;
      for (let e = 0; e < K; e++) if (infobatchFullEpoch(e, K)) full++;
      assert.equal(full, K - Math.ceil(0.875 * K), `K = ${K}`);
    }
    const at = (epoch: number): EpochPlan =>
      planEpoch(input(n, { policy: 'infobatch', losses, epochs: 16, epoch }));
    assert.ok(at(13).ids.length < n, 'at(13).ids.length < n');
    for (const epoch of [14, 15]) {
      const plan = at(epoch);
      assert.equal(plan.ids.length, n);
      assert.ok(
        plan.weights.every((w) => w === 1),
        'plan.weights.every((w) => w === 1)',
      );
    }
  });
});

describe('planEpoch: sadp and sadp-loss', () => {
  const n = 5000;

  test('selects i iff uniform(seed, epoch, i) < p_i and weights it (S/N) / p_i', () => {
    const inp = input(n);
    const plan = planEpoch(inp);
    assertWellFormed(plan, n);
    const rk = pruneRatioAt(inp.epoch, inp.pruneRatio, inp.maxPruneRatio, inp.epochs, n);
    assert.equal(plan.pruneRatio, rk);
    const S = (1 - rk) * n;
    assert.ok(Math.abs(plan.expectedSize - S) < 1e-9, 'Math.abs(plan.expectedSize - S) < 1e-9');
    const p = new Float64Array(n);
    const smoothing = smoothedProbabilities(inp.scores, S, inp.smoothing, p);
    const weightOf = new Map([...plan.ids].map((id, j) => [id, plan.weights[j]!]));
    for (let id = 0; id < n; id++) {
      assert.equal(weightOf.has(id), uniform(inp.seed, inp.epoch, id) < p[id]!, `example ${id}`);
      const w = weightOf.get(id);
      if (w !== undefined)
        assert.ok(Math.abs(w - S / n / p[id]!) <= 1e-12 * w, 'Math.abs(w - S / n / p[id]!) <= 1e-12 * w');
    }
    assert.equal(plan.stats.minProbability, Math.min(...p));
    assert.equal(plan.stats.maxProbability, Math.max(...p));
    assert.equal(plan.stats.maxWeight, Math.max(...plan.weights));
    assert.equal(plan.stats.smoothingOffset, smoothing.offset);
    assert.equal(plan.stats.cappingPasses, smoothing.passes);
    assert.ok(
      plan.stats.minProbability >= inp.smoothing - 1e-12,
      'plan.stats.minProbability >= inp.smoothing - 1e-12',
    );
  });

  test('the first epoch, with nothing scored, is uniform: every weight is 1', () => {
    const plan = planEpoch(input(n, { epoch: 0, scored: new Uint8Array(n) }));
    assertWellFormed(plan, n);
    assert.ok(
      plan.weights.every((w) => w === 1),
      'plan.weights.every((w) => w === 1)',
    );
    assert.equal(plan.stats.minProbability, plan.stats.maxProbability);
  });

  test('never-scored examples get the mean score of the scored ones', () => {
    const scores = lognormal(n, 1);
    const scored = new Uint8Array(n);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < n; i += 3) {
      scored[i] = 1;
      sum += scores[i]!;
      count++;
    }
    const garbage = scores.map((v, i) => (scored[i] ? v : Number.NaN));
    const imputed = scores.map((v, i) => (scored[i] ? v : sum / count));
    const partial = planEpoch(input(n, { scores: garbage, scored }));
    const reference = planEpoch(input(n, { scores: imputed }));
    assert.deepEqual([...partial.ids], [...reference.ids]);
    partial.weights.forEach((w, j) =>
      assert.ok(
        Math.abs(w - reference.weights[j]!) <= 1e-9 * w,
        'Math.abs(w - reference.weights[j]!) <= 1e-9 * w',
      ),
    );
  });

  test('sadp-loss is SADP on the losses', () => {
    const scores = lognormal(n, 1, 1);
    const losses = lognormal(n, 1, 2);
    const onLosses = planEpoch(input(n, { policy: 'sadp-loss', scores, losses }));
    const onScores = planEpoch(input(n, { policy: 'sadp', scores: losses, losses: scores }));
    assert.equal(onLosses.digest, onScores.digest);
    assert.notEqual(onLosses.digest, planEpoch(input(n, { policy: 'sadp', scores, losses })).digest);
  });

  test('zero scores: never drawn when beta = 0, drawn at p = beta otherwise; weights stay finite', () => {
    const scores = lognormal(n, 2);
    for (let i = 0; i < n; i += 2) scores[i] = 0;
    const unsmoothed = planEpoch(input(n, { scores, smoothing: 0 }));
    assertWellFormed(unsmoothed, n);
    assert.ok(
      unsmoothed.ids.every((id) => id % 2 === 1),
      'unsmoothed.ids.every((id) => id % 2 === 1)',
    );
    const smoothed = planEpoch(input(n, { scores, smoothing: 0.2 }));
    assertWellFormed(smoothed, n);
    const zeros = [...smoothed.ids].filter((id) => id % 2 === 0).length;
    assert.ok(
      Math.abs(zeros / (n / 2) - 0.2) < 5 * Math.sqrt(0.16 / (n / 2)),
      `zero-score fraction ${zeros / (n / 2)}`,
    );
    assert.ok(
      Math.abs(smoothed.stats.maxWeight - smoothed.expectedSize / n / 0.2) < 1e-9,
      'Math.abs(smoothed.stats.maxWeight - smoothed.expectedSize / n / 0.2) < 1e-9',
    );
  });

  test('an infeasible floor gives uniform probabilities and weight 1', () => {
    const plan = planEpoch(input(n, { smoothing: 0.9, epoch: 99 }));
    assert.equal(plan.stats.floorInfeasible, true);
    assert.equal(plan.stats.smoothingOffset, Number.POSITIVE_INFINITY);
    assert.ok(
      plan.weights.every((w) => w === 1),
      'plan.weights.every((w) => w === 1)',
    );
  });

  test('the last epoch of r = 0.9, r_max = 1 still expects at least one example', () => {
    const plan = planEpoch(
      input(10, { pruneRatio: 0.9, maxPruneRatio: 1, smoothing: 0.05, epochs: 10, epoch: 9 }),
    );
    assert.ok(plan.expectedSize >= 1, 'plan.expectedSize >= 1');
    assert.ok(plan.pruneRatio < 1, 'plan.pruneRatio < 1');
  });
});

describe('the weighted estimator', () => {
  // N examples with values x correlated with the score; r = r_max so S is the same every epoch.
  const n = 200;
  const epochs = 2500;
  const scores = lognormal(n, 1.5, 3);
  const x = scores.map((g, i) => g * (0.5 + uniform(5n, 0, i)));
  const meanX = x.reduce((a, b) => a + b, 0) / n;

  function estimates(policy: 'sadp' | 'random'): { mean: number; variance: number } {
    const values: number[] = [];
    for (let epoch = 0; epoch < epochs; epoch++) {
      const plan = planEpoch(
        input(n, { policy, scores, pruneRatio: 0.7, maxPruneRatio: 0.7, smoothing: 0.02, epochs, epoch }),
      );
      let sum = 0;
      plan.ids.forEach((id, j) => (sum += plan.weights[j]! * x[id]!));
      values.push(sum / plan.expectedSize);
    }
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1);
    return { mean, variance };
  }

  /** Eq. 12: Var = (1/N^2) sum (1 - p_i) x_i^2 / p_i. */
  function theoreticalVariance(p: Float64Array): number {
    let v = 0;
    for (let i = 0; i < n; i++) v += ((1 - p[i]!) * x[i]! ** 2) / p[i]!;
    return v / n ** 2;
  }

  test('is unbiased, with the variance of Eq. 12, below uniform sampling for skewed scores', () => {
    const S = 0.3 * n;
    const p = new Float64Array(n);
    smoothedProbabilities(scores, S, 0.02, p);
    const sadp = estimates('sadp');
    const random = estimates('random');
    const sadpTheory = theoreticalVariance(p);
    const randomTheory = theoreticalVariance(new Float64Array(n).fill(S / n));
    assert.ok(
      Math.abs(sadp.mean - meanX) < 5 * Math.sqrt(sadp.variance / epochs),
      `SADP mean ${sadp.mean} vs ${meanX}`,
    );
    assert.ok(
      Math.abs(random.mean - meanX) < 5 * Math.sqrt(random.variance / epochs),
      `random mean ${random.mean}`,
    );
    assert.ok(
      Math.abs(sadp.variance / sadpTheory - 1) < 0.2,
      `SADP variance ${sadp.variance} vs Eq. 12 ${sadpTheory}`,
    );
    assert.ok(
      Math.abs(random.variance / randomTheory - 1) < 0.2,
      `random variance ${random.variance} vs ${randomTheory}`,
    );
    assert.ok(sadpTheory < 0.5 * randomTheory, `theory: SADP ${sadpTheory} vs uniform ${randomTheory}`);
    assert.ok(
      sadp.variance < random.variance,
      `measured: SADP ${sadp.variance} vs uniform ${random.variance}`,
    );
  });
});

describe('determinism', () => {
  test('another process derives the same plan from the same scores', async () => {
    const n = 50_000;
    const inp = input(n, { scores: lognormal(n, 2), seed: 0xfeedfacecafebeefn, epoch: 42 });
    const dir = await mkdtemp(join(tmpdir(), 'sadp-math-'));
    try {
      const file = join(dir, 'scores.f64');
      await writeFile(file, new Uint8Array(inp.scores.buffer));
      // From source (tsx) the child needs the same loader; from dist/ it runs plain node.
      const fromSource = import.meta.url.endsWith('.ts');
      const moduleUrl = new URL(`../../../scorer/math/index.${fromSource ? 'ts' : 'js'}`, import.meta.url)
        .href;
      const script = `
        const { readFileSync } = await import('node:fs');
        const { planEpoch } = await import(${JSON.stringify(moduleUrl)});
        const scores = new Float64Array(new Uint8Array(readFileSync(${JSON.stringify(file)})).buffer);
        const n = scores.length;
        const plan = planEpoch({ policy: 'sadp', datasetSize: n, pruneRatio: 0.5, maxPruneRatio: 0.7, smoothing: 0.3,
          epochs: 100, epoch: 42, seed: 0xfeedfacecafebeefn, scores, losses: scores, scored: new Uint8Array(n).fill(1) });
        process.stdout.write(plan.digest + ' ' + plan.ids.length);`;
      const args = [...(fromSource ? ['--import', 'tsx'] : []), '--input-type=module', '-e', script];
      const { stdout } = await run(process.execPath, args, { timeout: 30_000 });
      const plan = planEpoch(inp);
      assert.equal(stdout, `${plan.digest} ${plan.ids.length}`);
      assert.equal(planEpoch(inp).digest, plan.digest);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the digest is SHA-256 over ids (u32 LE) then weights (f64 LE)', async () => {
    const { createHash } = await import('node:crypto');
    const ids = Uint32Array.from([1, 5, 0x01020304]);
    const weights = Float64Array.from([1, 0.5, 3.25]);
    const bytes = Buffer.alloc(3 * 12);
    ids.forEach((id, j) => bytes.writeUInt32LE(id, 4 * j));
    weights.forEach((w, j) => bytes.writeDoubleLE(w, 12 + 8 * j));
    assert.equal(planDigest(ids, weights), createHash('sha256').update(bytes).digest('hex'));
  });
});

describe('encodePlan / decodePlan', () => {
  const n = 3000;

  test('round-trips plans exactly, stats included', () => {
    const plans = [
      planEpoch(input(n)),
      planEpoch(input(n, { smoothing: 0.9, epoch: 99 })), // infeasible: offset Infinity, flag set
      planEpoch(input(n, { policy: 'full' })),
      planEpoch(input(n, { policy: 'infobatch', epoch: 3 })),
      planEpoch(input(1, { policy: 'sadp', pruneRatio: 0.5, maxPruneRatio: 0.5, seed: 3n })),
    ];
    assert.ok(plans[1]!.stats.floorInfeasible, 'plans[1]!.stats.floorInfeasible');
    for (const plan of plans) {
      const bytes = encodePlan(plan);
      assert.equal(bytes.length, 192 + 12 * plan.ids.length);
      assert.deepEqual(decodePlan(bytes), plan);
      assert.deepEqual(decodePlan(bytes.slice()), plan, 'decodes from an unaligned copy too');
      // A Node Buffer inside a larger shared pool (what storage reads return).
      const pooled = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from(bytes)]).subarray(3);
      assert.deepEqual(decodePlan(pooled), plan, 'decodes from a Buffer view into a shared pool');
    }
    const empty = { ...plans[0]!, ids: new Uint32Array(0), weights: new Float64Array(0) };
    empty.digest = planDigest(empty.ids, empty.weights);
    assert.deepEqual(decodePlan(encodePlan(empty)), empty);
  });

  test('rejects corrupted bytes with DATA_LOSS and says where', () => {
    const bytes = encodePlan(planEpoch(input(n)));
    const flipped = bytes.slice();
    flipped[200] = flipped[200]! ^ 1;
    const corrupt = (code: SadpErrorCode, fragment: string) => (err: unknown) =>
      isSadpError(err, code) && err.status === Status.DATA_LOSS && err.message.includes(fragment);
    assert.throws(() => decodePlan(flipped), corrupt('SADP_PLAN_CORRUPT', 'SHA-256'));
    assert.throws(
      () => decodePlan(bytes.subarray(0, bytes.length - 1)),
      corrupt('SADP_PLAN_CORRUPT', 'bytes'),
    );
    assert.throws(() => decodePlan(bytes.subarray(0, 100)), corrupt('SADP_PLAN_CORRUPT', 'header'));
    const badMagic = bytes.slice();
    badMagic[0] = 0;
    assert.throws(() => decodePlan(badMagic), corrupt('SADP_PLAN_CORRUPT', 'offset 0'));
  });
});

describe('input validation', () => {
  test('names the bad field', () => {
    const n = 10;
    const cases: [Partial<PlanInput>, SadpErrorCode, string][] = [
      [{ policy: 'nope' as PlanInput['policy'] }, 'SADP_MATH_BAD_POLICY', 'nope'],
      [{ datasetSize: 0 }, 'SADP_MATH_BAD_DATASET_SIZE', 'N'],
      [{ epoch: 100 }, 'SADP_MATH_BAD_EPOCH', '[0, 100)'],
      [{ scores: new Float64Array(9) }, 'SADP_MATH_BAD_INPUT_LENGTH', 'scores'],
      [{ scored: new Uint8Array(11) }, 'SADP_MATH_BAD_INPUT_LENGTH', 'scored'],
      [
        { scores: Float64Array.from({ length: n }, (_, i) => (i === 5 ? -1 : 1)) },
        'SADP_SCORE_INVALID',
        'scores[5]',
      ],
      [
        {
          policy: 'sadp-loss',
          losses: Float64Array.from({ length: n }, (_, i) => (i === 7 ? Number.NaN : 1)),
        },
        'SADP_SCORE_INVALID',
        'losses[7]',
      ],
      [{ smoothing: -0.1 }, 'SADP_MATH_BAD_SMOOTHING', '-0.1'],
      [{ seed: -5n }, 'SADP_MATH_BAD_SEED', '-5'],
    ];
    for (const [overrides, code, fragment] of cases) {
      assert.throws(
        () => planEpoch(input(n, overrides)),
        (err: unknown) => isSadpError(err, code) && err.message.includes(fragment),
        `${code} for ${JSON.stringify(Object.keys(overrides))}`,
      );
    }
  });

  test('uses the paper defaults the caller passes (smoke check of the contract)', () => {
    const { smoothing, maxPruneRatio } = defaultHyperparameters(0.3);
    const plan = planEpoch(input(1000, { pruneRatio: 0.3, smoothing, maxPruneRatio }));
    assert.ok(
      plan.stats.minProbability >= smoothing - 1e-12,
      'plan.stats.minProbability >= smoothing - 1e-12',
    );
  });
});
