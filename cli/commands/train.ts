// `sadp train`: one trainer rank. Streams its batches from a loader, trains a
// spiking MLP or CNN with TF.js on the importance-weighted loss, reports the
// spike-aware scores back with each ack, and prints one summary line per
// epoch (JSON lines with --json). SIGINT/SIGTERM stop after the current
// batch and leave a checkpoint at the cursor reached when --checkpoint-dir
// is set; rerunning the same command resumes there.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SadpError, Status } from '../../common/errors.js';
import { readTls } from '../../common/tls.js';
import { LOADER_DEFAULTS } from '../../loader/index.js';
import {
  AUTO_BACKEND_ORDER,
  NETWORK_DEFAULTS,
  TRAIN_DEFAULTS,
  type BackendPreference,
} from '../../trainer/index.js';
import { createTrainReporter, runTraining, type EvalSource, type TrainOptions } from '../../trainer/index.js';
import { intArg, numArg } from '../args.js';
import { addS3Flags, runAction, s3OptionsFromFlags, type S3Flags } from './s3.js';

interface TrainFlags extends S3Flags {
  loader: string;
  job: string;
  rank: number;
  worldSize: number;
  batchSize: number;
  epochs?: number;
  model: string;
  backend: string;
  lr?: number;
  minLr?: number;
  timeSteps?: number;
  hidden?: string;
  eval?: string;
  evalFashionMnist?: string;
  evalLimit?: number;
  checkpointDir?: string;
  checkpointEvery?: number;
  token?: string;
  tokenFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  seed?: number;
  maxUnacked?: number;
  json?: boolean;
}

function tokenOf(flags: TrainFlags): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    throw new SadpError('SADP_TRAIN_OPTION', '--token and --token-file are exclusive', {
      status: Status.INVALID_ARGUMENT,
    });
  }
  if (flags.tokenFile === undefined) return flags.token;
  try {
    return readFileSync(flags.tokenFile, 'utf8').trim();
  } catch (cause) {
    throw new SadpError('SADP_TRAIN_OPTION', `cannot read --token-file ${flags.tokenFile}`, {
      status: Status.INVALID_ARGUMENT,
      cause,
    });
  }
}

function trainOptionsFromFlags(flags: TrainFlags, signal?: AbortSignal): TrainOptions {
  if (flags.eval !== undefined && flags.evalFashionMnist !== undefined) {
    throw new SadpError('SADP_TRAIN_OPTION', '--eval and --eval-fashion-mnist are exclusive', {
      status: Status.INVALID_ARGUMENT,
    });
  }
  let evalSource: EvalSource | undefined;
  if (flags.eval !== undefined)
    evalSource = { kind: 'manifest', url: flags.eval, s3: s3OptionsFromFlags(flags) };
  if (flags.evalFashionMnist !== undefined)
    evalSource = { kind: 'fashion-mnist', dir: flags.evalFashionMnist };
  const tls = readTls({ ca: flags.tlsCa, cert: flags.tlsCert, key: flags.tlsKey });
  const hidden = flags.hidden?.split(',').map((h) => intArg('--hidden', 1)(h.trim()));
  return {
    loader: flags.loader,
    job: flags.job,
    rank: flags.rank,
    worldSize: flags.worldSize,
    batchSize: flags.batchSize,
    epochs: flags.epochs,
    model: flags.model as TrainOptions['model'],
    network: { timeSteps: flags.timeSteps, hidden },
    backend: flags.backend as BackendPreference,
    lr: flags.lr,
    minLr: flags.minLr,
    eval: evalSource,
    evalLimit: flags.evalLimit,
    checkpointDir: flags.checkpointDir,
    checkpointEveryBatches: flags.checkpointEvery,
    seed: flags.seed,
    token: tokenOf(flags),
    tls,
    maxUnackedBatches: flags.maxUnacked,
    signal,
  };
}

async function train(flags: TrainFlags): Promise<void> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`${sig}: stopping after the current batch (again to exit now)\n`);
    controller.abort(
      new SadpError('SADP_CANCELLED', `training stopped by ${sig}`, { status: Status.CANCELLED }),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const reporter = createTrainReporter({ json: flags.json });
  try {
    await runTraining(trainOptionsFromFlags(flags, controller.signal), reporter);
  } finally {
    reporter.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerTrainCommand(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'train a spiking network on the batches a loader streams (one rank), reporting spike-aware scores back',
    )
    .option('--loader <host:port>', 'loader service address', LOADER_DEFAULTS.listen)
    .requiredOption('--job <id>', 'job id (created at the scorer)')
    .option('--rank <n>', 'this trainer rank', intArg('--rank'), TRAIN_DEFAULTS.rank)
    .option(
      '--world-size <n>',
      'trainer ranks in the job',
      intArg('--world-size', 1),
      TRAIN_DEFAULTS.worldSize,
    )
    .option('--batch-size <n>', 'samples per batch', intArg('--batch-size', 1), TRAIN_DEFAULTS.batchSize)
    .option(
      '--epochs <k>',
      "epochs to train (default: the job's, asked from the loader)",
      intArg('--epochs', 1),
    )
    .option('--model <kind>', 'mlp (784-256-10 LIF) or cnn (2 conv stages)', TRAIN_DEFAULTS.model)
    .option(
      '--backend <name>',
      `TF.js backend: auto or ${AUTO_BACKEND_ORDER.join(', ')}`,
      TRAIN_DEFAULTS.backend,
    )
    .option(
      '--lr <rate>',
      `peak Adam learning rate, cosine-annealed over the actual steps (default ${TRAIN_DEFAULTS.lr})`,
      numArg('--lr', 0),
    )
    .option(
      '--min-lr <rate>',
      `floor of the cosine schedule (default ${TRAIN_DEFAULTS.minLr})`,
      numArg('--min-lr', 0),
    )
    .option(
      '--time-steps <T>',
      `SNN time steps (default ${NETWORK_DEFAULTS.timeSteps})`,
      intArg('--time-steps', 1),
    )
    .option(
      '--hidden <widths>',
      `MLP hidden widths, comma-separated (default ${NETWORK_DEFAULTS.mlpHidden.join(',')})`,
    )
    .option('--eval <manifest-url>', 'test split built by `sadp shards build`: per-epoch accuracy')
    .option(
      '--eval-fashion-mnist <dir>',
      'Fashion-MNIST idx files (e.g. /usr/share/datasets/fashion-mnist): test accuracy',
    )
    .option('--eval-limit <n>', 'evaluate on at most n test examples', intArg('--eval-limit', 1))
    .option('--checkpoint-dir <dir>', 'write checkpoints here and resume from them')
    .option(
      '--checkpoint-every <n>',
      `batches between checkpoints (default ${TRAIN_DEFAULTS.checkpointEveryBatches}; also every epoch end)`,
      intArg('--checkpoint-every', 1),
    )
    .option('--token <token>', "the job's bearer token")
    .option('--token-file <file>', "read the job's bearer token from a file (keeps it out of `ps`)")
    .option('--tls-ca <file>', "PEM CA of the loader's certificate (enables TLS)")
    .option('--tls-cert <file>', 'PEM client certificate (mutual TLS)')
    .option('--tls-key <file>', 'PEM client key (mutual TLS)')
    .option('--seed <n>', `weight initialisation seed (default ${TRAIN_DEFAULTS.seed})`, intArg('--seed'))
    .option(
      '--max-unacked <n>',
      "credit window asked from the loader (default: the loader's)",
      intArg('--max-unacked', 1),
    )
    .option('--json', 'one JSON object per line on stdout (progress as JSON on stderr)');
  addS3Flags(cmd).action(runAction(train));
}
