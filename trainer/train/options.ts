// Options of `runTraining` / `sadp train`, with every default in one place.
import { invalidArgument } from '../../common/errors.js';
import type { S3Options } from '../../storage/index.js';
import type { BackendPreference } from '../backend.js';
import type { LoaderClientOptions, TlsOptions } from '../client/index.js';
import type { NetworkOptions } from '../snn/index.js';

type ModelKind = 'mlp' | 'cnn';

/** Where the test split for per-epoch accuracy comes from. */
export type EvalSource =
  { kind: 'manifest'; url: string; s3?: S3Options } | { kind: 'fashion-mnist'; dir: string };

export interface TrainOptions {
  /** host:port of the loader. */
  loader: string;
  job: string;
  /** Default 0 and 1. */
  rank?: number;
  worldSize?: number;
  /** Samples per batch. Default 128. */
  batchSize?: number;
  /** Epochs to train (0..epochs-1). Default: the job's K, asked from the loader. */
  epochs?: number;
  /** Default `mlp` (784-256-10 LIF MLP); `cnn` is 2 conv stages + a dense readout. */
  model?: ModelKind;
  /** Spiking network options (time steps, neuron, hidden widths / channels...). */
  network?: NetworkOptions & { hidden?: number[]; channels?: number[] };
  /** TF.js backend. Default `auto` (native, then wasm, then cpu). */
  backend?: BackendPreference;
  /** Peak learning rate of Adam. Default 1e-3. */
  lr?: number;
  /** Floor of the cosine schedule. Default 0. */
  minLr?: number;
  /** Per-epoch test accuracy; none by default. */
  eval?: EvalSource;
  /** Use at most this many test examples. Default all. */
  evalLimit?: number;
  /** Checkpoints go here (one file per rank); resumed from when present. */
  checkpointDir?: string;
  /** Batches between checkpoints (besides each epoch end). Default 50. */
  checkpointEveryBatches?: number;
  /** Seeds weight initialisation and Poisson encoding. Default 1. */
  seed?: number;
  token?: string;
  tls?: true | TlsOptions;
  /** Credit window asked from the loader; default the loader's (4). */
  maxUnackedBatches?: number;
  /** Anything else for the loader client (reconnect, keepalive...). */
  client?: Omit<LoaderClientOptions, 'address' | 'token' | 'tls'>;
  /** Image geometry of the dataset. Default 28 x 28 x 1, 10 classes. */
  image?: { width: number; height: number; channels: number; classes: number };
  signal?: AbortSignal;
}

export interface ResolvedTrainOptions {
  loader: string;
  job: string;
  rank: number;
  worldSize: number;
  batchSize: number;
  epochs: number | undefined;
  model: ModelKind;
  network: NonNullable<TrainOptions['network']>;
  backend: BackendPreference;
  lr: number;
  minLr: number;
  eval: EvalSource | undefined;
  evalLimit: number;
  checkpointDir: string | undefined;
  checkpointEveryBatches: number;
  seed: number;
  image: { width: number; height: number; channels: number; classes: number };
}

/** Every default of TrainOptions, stated once (`sadp train` shows them in its help). */
export const TRAIN_DEFAULTS = {
  rank: 0,
  worldSize: 1,
  batchSize: 128,
  model: 'mlp',
  backend: 'auto',
  lr: 1e-3,
  minLr: 0,
  checkpointEveryBatches: 50,
  seed: 1,
} as const;

function int(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) {
    throw invalidArgument('SADP_TRAIN_OPTION', `train option ${name} must be an integer >= ${min}, got ${v}`);
  }
  return v;
}

export function resolveTrainOptions(o: TrainOptions): ResolvedTrainOptions {
  if (!o.job) throw invalidArgument('SADP_TRAIN_OPTION', 'train option job is required');
  const worldSize = int('worldSize', o.worldSize ?? TRAIN_DEFAULTS.worldSize, 1);
  const rank = int('rank', o.rank ?? TRAIN_DEFAULTS.rank, 0);
  if (rank >= worldSize) {
    throw invalidArgument(
      'SADP_TRAIN_OPTION',
      `train option rank ${rank} must be below worldSize ${worldSize}`,
    );
  }
  const model = o.model ?? TRAIN_DEFAULTS.model;
  if (model !== 'mlp' && model !== 'cnn') {
    throw invalidArgument('SADP_TRAIN_OPTION', `train option model must be mlp or cnn, got ${String(model)}`);
  }
  const lr = o.lr ?? TRAIN_DEFAULTS.lr;
  const minLr = o.minLr ?? TRAIN_DEFAULTS.minLr;
  if (!(lr > 0 && Number.isFinite(lr)) || !(minLr >= 0 && minLr <= lr)) {
    throw invalidArgument(
      'SADP_TRAIN_OPTION',
      `train options need lr > 0 and 0 <= minLr <= lr, got ${lr} and ${minLr}`,
    );
  }
  return {
    loader: o.loader,
    job: o.job,
    rank,
    worldSize,
    batchSize: int('batchSize', o.batchSize ?? TRAIN_DEFAULTS.batchSize, 1),
    epochs: o.epochs === undefined ? undefined : int('epochs', o.epochs, 1),
    model,
    network: o.network ?? {},
    backend: o.backend ?? TRAIN_DEFAULTS.backend,
    lr,
    minLr,
    eval: o.eval,
    evalLimit: o.evalLimit === undefined ? Infinity : int('evalLimit', o.evalLimit, 1),
    checkpointDir: o.checkpointDir,
    checkpointEveryBatches: int(
      'checkpointEveryBatches',
      o.checkpointEveryBatches ?? TRAIN_DEFAULTS.checkpointEveryBatches,
      1,
    ),
    seed: int('seed', o.seed ?? TRAIN_DEFAULTS.seed, 0),
    image: o.image ?? { width: 28, height: 28, channels: 1, classes: 10 },
  };
}
