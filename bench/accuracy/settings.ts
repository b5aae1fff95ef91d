// Settings of the accuracy benchmark: what is trained, on how much data, and
// which (policy, r, seed) runs make up the grid. Defaults are sized for the
// full run to take ~20 CPU-minutes on the wasm backend (about 10 minutes of
// wall time with two jobs on an idle 2-core machine); --quick is a smoke run.
import { invalidArgument } from '../../common/errors.js';
import { FASHION_MNIST_DIR } from '../../common/datasets/fashion-mnist.js';
import { POLICY_NAMES, defaultHyperparameters, type PolicyName } from '../../scorer/index.js';
import type { BackendPreference } from '../../trainer/index.js';
import type { ShuffleMode } from '../../loader/index.js';

type AccuracyModel = 'mlp' | 'cnn';

export interface AccuracySettings {
  /** Training set: the first N examples of the Fashion-MNIST train split (its file order is already shuffled). */
  trainSize: number;
  /** Final accuracy on the first M examples of the test split. */
  testSize: number;
  /** Per-epoch accuracy on the first this-many test examples; 0 turns the per-epoch curve off. */
  epochEvalSize: number;
  /** K, the same for every run. */
  epochs: number;
  /** Seeds 1..n by default; each seeds weight init, the plan draws and the shuffle. */
  seeds: number[];
  /** Nominal pruning ratios r run for every policy except `full` (which runs once per seed). */
  ratios: number[];
  policies: PolicyName[];
  model: AccuracyModel;
  /** MLP hidden widths. */
  hidden: number[];
  /** CNN conv channels. */
  channels: number[];
  /** T of the spiking network. */
  timeSteps: number;
  batchSize: number;
  /** Adam's peak rate, cosine-annealed to `minLr` over the run's actual steps. */
  lr: number;
  minLr: number;
  backend: BackendPreference;
  datasetDir: string;
  /** The loader's epoch order (`global` by default, as the loader's default). */
  shuffle: ShuffleMode;
  /** Consecutive training examples per shard, for the shard-aware orders. */
  shardSamples: number;
  /** Shards per block / buffer of the shard-aware orders (the loader's default, 4). */
  shuffleBlockShards: number;
}

const FULL_SETTINGS: AccuracySettings = {
  trainSize: 20_000,
  testSize: 10_000,
  epochEvalSize: 2_000,
  epochs: 10,
  seeds: [1, 2, 3],
  ratios: [0.3, 0.5, 0.7],
  policies: ['full', 'random', 'infobatch', 'sadp', 'sadp-loss'],
  model: 'mlp',
  hidden: [256],
  channels: [16, 32],
  timeSteps: 4,
  batchSize: 128,
  lr: 1e-3,
  minLr: 0,
  backend: 'auto',
  datasetDir: FASHION_MNIST_DIR,
  shuffle: 'global',
  shardSamples: 250,
  shuffleBlockShards: 4,
};

export const QUICK_SETTINGS: AccuracySettings = {
  ...FULL_SETTINGS,
  trainSize: 2_000,
  testSize: 2_000,
  epochEvalSize: 0,
  epochs: 3,
  seeds: [1],
  ratios: [0.5],
};

export interface RunSpec {
  /** Position in the grid (0-based), stable across job counts. */
  index: number;
  policy: PolicyName;
  /** Nominal r (0 for `full`). */
  pruneRatio: number;
  seed: number;
}

/** `policy` for full data, `policy@r` otherwise. */
export function configKey(policy: PolicyName, pruneRatio: number): string {
  return policy === 'full' ? 'full' : `${policy}@${pruneRatio}`;
}

/**
 * The grid, seed-major (every config of seed 1, then seed 2, ...) so that a
 * change of machine load during the run falls on all configs alike.
 */
export function planRuns(s: AccuracySettings): RunSpec[] {
  const configs: { policy: PolicyName; pruneRatio: number }[] = [];
  if (s.policies.includes('full')) configs.push({ policy: 'full', pruneRatio: 0 });
  for (const r of s.ratios) {
    for (const policy of s.policies) if (policy !== 'full') configs.push({ policy, pruneRatio: r });
  }
  const runs: RunSpec[] = [];
  for (const seed of s.seeds) for (const c of configs) runs.push({ index: runs.length, ...c, seed });
  return runs;
}

/**
 * Expected share of a full-data run's training work, for ETAs only: SADP's
 * schedule averages r + (r_max - r) / K; InfoBatch prunes only its
 * below-mean examples (about half) and trains the last eighth in full.
 */
export function expectedCost(spec: RunSpec, s: AccuracySettings): number {
  const r = spec.pruneRatio;
  switch (spec.policy) {
    case 'full':
      return 1;
    case 'random':
      return 1 - r;
    case 'infobatch':
      return 1 - (r / 2) * (7 / 8);
    case 'sadp':
    case 'sadp-loss':
      return Math.max(0.01, 1 - r - (defaultHyperparameters(r).maxPruneRatio - r) / s.epochs);
  }
}

function bad(flag: string, message: string): never {
  throw invalidArgument('SADP_BENCH_BAD_FLAG', `--${flag} ${message}`);
}

function count(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) bad(flag, `must be an integer >= ${min}, got '${value}'`);
  return n;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Raw flag values as parsed by node:util parseArgs (strings; `quick` boolean). */
export interface AccuracyFlags {
  quick?: boolean;
  'train-size'?: string;
  'test-size'?: string;
  'epoch-eval-size'?: string;
  epochs?: string;
  seeds?: string;
  ratios?: string;
  policies?: string;
  model?: string;
  hidden?: string;
  channels?: string;
  'time-steps'?: string;
  'batch-size'?: string;
  lr?: string;
  backend?: string;
  'dataset-dir'?: string;
  shuffle?: string;
  'shard-samples'?: string;
}

/** Quick or full defaults overridden by the given flags; throws SADP_BENCH_BAD_FLAG naming the flag. */
export function resolveSettings(flags: AccuracyFlags): AccuracySettings {
  const s: AccuracySettings = { ...(flags.quick ? QUICK_SETTINGS : FULL_SETTINGS) };
  if (flags['train-size'] !== undefined) s.trainSize = count('train-size', flags['train-size'], 1);
  if (flags['test-size'] !== undefined) s.testSize = count('test-size', flags['test-size'], 1);
  if (flags['epoch-eval-size'] !== undefined)
    s.epochEvalSize = count('epoch-eval-size', flags['epoch-eval-size'], 0);
  if (flags.epochs !== undefined) s.epochs = count('epochs', flags.epochs, 1);
  if (flags.seeds !== undefined) {
    // "3" means seeds 1..3; "4,7" lists them.
    const parts = list(flags.seeds);
    s.seeds =
      parts.length === 1
        ? Array.from({ length: count('seeds', parts[0]!, 1) }, (_, i) => i + 1)
        : parts.map((p) => count('seeds', p, 0));
    if (new Set(s.seeds).size !== s.seeds.length) bad('seeds', `lists a seed twice: ${flags.seeds}`);
  }
  if (flags.ratios !== undefined) {
    s.ratios = list(flags.ratios).map((v) => {
      const r = Number(v);
      if (!(r > 0 && r < 1)) bad('ratios', `must be numbers in (0, 1), got '${v}'`);
      return r;
    });
  }
  if (flags.policies !== undefined) {
    s.policies = list(flags.policies).map((p) => {
      if (!(POLICY_NAMES as readonly string[]).includes(p)) {
        bad('policies', `must be among ${POLICY_NAMES.join(', ')}, got '${p}'`);
      }
      return p as PolicyName;
    });
  }
  if (flags.model !== undefined) {
    if (flags.model !== 'mlp' && flags.model !== 'cnn')
      bad('model', `must be mlp or cnn, got '${flags.model}'`);
    s.model = flags.model;
  }
  if (flags.hidden !== undefined) s.hidden = list(flags.hidden).map((v) => count('hidden', v, 1));
  if (flags.channels !== undefined) s.channels = list(flags.channels).map((v) => count('channels', v, 1));
  if (flags['time-steps'] !== undefined) s.timeSteps = count('time-steps', flags['time-steps'], 1);
  if (flags['batch-size'] !== undefined) s.batchSize = count('batch-size', flags['batch-size'], 1);
  if (flags.lr !== undefined) {
    const lr = Number(flags.lr);
    if (!(lr > 0 && Number.isFinite(lr))) bad('lr', `must be a number > 0, got '${flags.lr}'`);
    s.lr = lr;
  }
  if (flags.backend !== undefined) s.backend = flags.backend as BackendPreference; // selectBackend names a bad one
  if (flags['dataset-dir'] !== undefined) s.datasetDir = flags['dataset-dir'];
  if (flags.shuffle !== undefined) {
    if (!['global', 'shard-block', 'shard-buffer'].includes(flags.shuffle))
      bad('shuffle', `must be global, shard-block or shard-buffer, got '${flags.shuffle}'`);
    s.shuffle = flags.shuffle as ShuffleMode;
  }
  if (flags['shard-samples'] !== undefined)
    s.shardSamples = count('shard-samples', flags['shard-samples'], 1);
  if (s.policies.length === 0) bad('policies', 'must name at least one policy');
  if (s.seeds.length === 0) bad('seeds', 'must name at least one seed');
  if (s.policies.some((p) => p !== 'full') && s.ratios.length === 0) {
    bad('ratios', 'must name at least one ratio for the pruning policies');
  }
  return s;
}
