// `sadp scorer`: runs the scorer gRPC service; its subcommands are small
// clients for operators (create a job, describe it, fetch stats or a plan).
//
// When the server is listening it prints one JSON line to stdout,
// {"event":"listening","service":"scorer","address":...,"port":...}, so
// scripts and tests can start it on port 0 and read the port back. Logs go
// to stderr.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { loadConfig, splitHostPort, type Config } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { readFileSync } from 'node:fs';
import { bearerInterceptor } from '../../common/bearer.js';
import { SadpError, Status, errorMessage, fromGrpcError } from '../../common/errors.js';
import { errorLines } from '../hints.js';
import { channelTls, readTls } from '../../common/tls.js';
import { pb, type sadp } from '../../proto/index.js';
import {
  POLICY_NAMES,
  createScorerClient,
  createScorerServer,
  SCORER_CLIENT_DEFAULTS,
  SCORER_DEFAULTS,
  type ScorerClient,
  type ScorerServer,
} from '../../scorer/index.js';
import { openDataset } from '../../loader/index.js';
import type { S3Options } from '../../storage/index.js';
import {
  addCommonServiceOptions,
  announce,
  resolveConfig,
  runUntilShutdown,
  s3Options,
  startServiceRuntime,
  type CommonServiceFlags,
} from '../service-runtime.js';
import { intArg, numArg } from '../args.js';
import { addS3ConnectionFlags, s3OptionsFromFlags, type S3Flags } from './s3.js';

interface ServeFlags extends CommonServiceFlags {
  listen?: string;
  state?: string;
  auth?: 'none' | 'token';
}

interface ClientFlags {
  address: string;
  config?: string;
  deadlineMs: number;
  authTokenFile?: string;
}

/** Starts a scorer from resolved config; shared by `sadp scorer` and `sadp serve`. */
export function startScorerFromConfig(
  config: Config,
  logger: Logger,
  overrides: { s3?: S3Options; loaderToken?: string } = {},
): Promise<ScorerServer> {
  const { host, port } = splitHostPort(config.scorer.listen);
  return createScorerServer({
    host,
    port,
    stateUrl: config.scorer.state,
    s3: overrides.s3 ?? s3Options(config),
    tls: readTls(config.tls),
    auth: {
      mode: config.scorer.auth,
      adminToken: config.scorer.adminToken,
      loaderToken: overrides.loaderToken ?? config.scorer.loaderToken,
    },
    logger,
  });
}

async function serve(flags: ServeFlags): Promise<void> {
  const config = resolveConfig(flags, {
    scorer: { listen: flags.listen, state: flags.state, auth: flags.auth },
  });
  const runtime = await startServiceRuntime('scorer', config);
  const server = await startScorerFromConfig(config, runtime.logger);
  runtime.lifecycle.add({ name: 'scorer', close: (graceMs) => server.close(graceMs) });
  announce('scorer', {
    address: server.address,
    port: server.port,
    state: server.core.stateUrl,
    metricsPort: runtime.metricsPort,
  });
  await runUntilShutdown(runtime);
}

/**
 * N for a new job: read from the manifest (which must open: it exists, parses
 * and its indexes agree with it), and checked against --size when both are
 * given, so a bad dataset fails here rather than when the first trainer connects.
 */
async function datasetSize(
  o: S3Flags & { dataset: string; size?: number; datasetCheck: boolean },
): Promise<number> {
  if (!o.dataset || !o.datasetCheck) {
    if (o.size === undefined)
      throw new SadpError(
        'SADP_CONFIG_INVALID',
        '--size is required without --dataset (or with --no-dataset-check): give --dataset <manifest URL> (N is read from it) or --size <n>',
        { status: Status.INVALID_ARGUMENT },
      );
    return o.size;
  }
  const dataset = await openDataset(o.dataset, { s3: s3OptionsFromFlags(o) });
  if (o.size !== undefined && o.size !== dataset.size) {
    throw new SadpError(
      'SADP_DATASET_MISMATCH',
      `--size ${o.size} but the manifest ${o.dataset} holds ${dataset.size} samples`,
      { status: Status.INVALID_ARGUMENT },
    );
  }
  return dataset.size;
}

function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new SadpError('SADP_TOKEN_FILE', `cannot read token file ${path}`, {
      status: Status.INVALID_ARGUMENT,
      cause,
    });
  }
  return text.trim();
}

/**
 * A client of the scorer presenting, when one is given, a bearer token: the
 * file of --auth-token-file, else the admin token of the config
 * (SADP_SCORER_ADMIN_TOKEN), as on the scorer's own pod.
 */
function connect(flags: ClientFlags): ScorerClient {
  const config = loadConfig({ file: flags.config });
  const token = flags.authTokenFile ? readTokenFile(flags.authTokenFile) : config.scorer.adminToken;
  return createScorerClient({
    address: flags.address,
    tls: channelTls(config.tls),
    callTimeoutMs: flags.deadlineMs,
    ...(token ? { interceptors: [bearerInterceptor(token)] } : {}),
  });
}

/** Runs `fn` with a client closed afterwards; failures name the scorer's address and status. */
async function withClient<T>(flags: ClientFlags, fn: (client: ScorerClient) => Promise<T>): Promise<T> {
  const client = connect(flags);
  try {
    return await fn(client);
  } catch (err) {
    // A scorer answer keeps its own SADP code once; the line names the scorer.
    const cause = err instanceof SadpError && err.cause !== undefined ? err.cause : err;
    if (typeof (cause as { code?: unknown } | null)?.code === 'number')
      throw fromGrpcError(cause, `scorer ${flags.address}`);
    const status = err instanceof SadpError ? `${grpcStatus[err.status]}: ` : '';
    throw new SadpError(
      err instanceof SadpError ? err.code : 'SADP_RPC_FAILED',
      `scorer ${flags.address}: ${status}${errorMessage(err)}`,
      { status: err instanceof SadpError ? err.status : Status.INTERNAL, cause: err },
    );
  } finally {
    client.close();
  }
}

const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};
const jobJson = (job: sadp.v1.Job): unknown =>
  pb.Job.toObject(job, { longs: String, enums: String, defaults: true });

/** Client subcommands report failures as one line on stderr and exit status 1, without a stack. */
function guarded<A extends unknown[]>(
  name: string,
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(errorLines(`sadp scorer ${name}: `, err, errorMessage(err)));
      process.exitCode = 1;
    }
  };
}

function addClientOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--address <host:port>', 'scorer address')
    .option('--config <file>', 'YAML config (for TLS settings); default $SADP_CONFIG')
    .option(
      '--deadline-ms <ms>',
      `per-call deadline; default ${SCORER_CLIENT_DEFAULTS.callTimeoutMs}`,
      intArg('--deadline-ms'),
    )
    .option(
      '--auth-token-file <file>',
      'file holding the bearer token to present (admin for create-job, or a job token); default the config’s scorer.adminToken',
    );
}

export function registerScorerCommand(program: Command): void {
  const scorer = addCommonServiceOptions(
    program
      .command('scorer')
      .description(
        'Run the scorer gRPC service: keeps per-example scores durable in a state store and serves each epoch’s SADP plan.',
      )
      .option(
        '--listen <host:port>',
        `address to listen on (port 0: any free port); default ${SCORER_DEFAULTS.listen}`,
      )
      .option(
        '--state <dir|s3://bucket/prefix>',
        `where jobs, score logs, snapshots and plans live; default ${SCORER_DEFAULTS.state}`,
      )
      .option(
        '--auth <mode>',
        'none, or token: callers need the admin token (SADP_SCORER_ADMIN_TOKEN) to create jobs, and it, the loader token (SADP_SCORER_LOADER_TOKEN) or the job’s token for everything else',
      ),
  ).action((flags: ServeFlags) => serve(flags));

  const createJob = addClientOptions(
    scorer
      .command('create-job')
      .description('Create a job (idempotent for an identical spec); prints the job as JSON.')
      .requiredOption('--job <id>', 'job id: 1-128 characters of [A-Za-z0-9._-]')
      .option(
        '--size <n>',
        'dataset size N; default the manifest’s sample count (checked against it when both are given)',
        intArg('--size'),
      )
      .option('--policy <name>', `one of ${POLICY_NAMES.join(', ')}`, 'sadp')
      .option(
        '--prune-ratio <r>',
        'average pruning ratio r in [0, 1); required except for --policy full',
        numArg('--prune-ratio'),
      )
      .option(
        '--max-prune-ratio <rmax>',
        'last epoch’s pruning ratio; default from the paper’s Table II',
        numArg('--max-prune-ratio'),
      )
      .option('--smoothing <beta>', 'probability floor beta; default from Table II', numArg('--smoothing'))
      .requiredOption('--epochs <k>', 'epochs K of the run', intArg('--epochs'))
      .option('--seed <s>', 'u64 seed of the plans', '0')
      .option(
        '--dataset <url>',
        'dataset manifest URL the loaders read; opened and checked here (exists, parses, its indexes agree) before the job is created',
        '',
      )
      .option('--no-dataset-check', 'do not open the manifest here (then --size is required)')
      .option(
        '--token <token>',
        'bearer token trainers must present to the loader (stored hashed; the loader must run with --auth token)',
      ),
  );
  addS3ConnectionFlags(createJob).action(
    guarded(
      'create-job',
      async (
        o: ClientFlags &
          S3Flags & {
            job: string;
            size?: number;
            datasetCheck: boolean;
            policy: string;
            pruneRatio?: number;
            maxPruneRatio?: number;
            smoothing?: number;
            epochs: number;
            seed: string;
            dataset: string;
            token?: string;
          },
      ) => {
        let seed: bigint;
        try {
          seed = BigInt(o.seed);
        } catch {
          throw new Error(`--seed must be an unsigned 64-bit integer, got ${o.seed}`);
        }
        if (o.pruneRatio === undefined && o.policy !== 'full') {
          throw new SadpError(
            'SADP_CONFIG_INVALID',
            `--prune-ratio is required for --policy ${o.policy} (only --policy full keeps every example)`,
            { status: Status.INVALID_ARGUMENT },
          );
        }
        const size = await datasetSize(o);
        const job = await withClient(o, (client) =>
          client.createJob({
            jobId: o.job,
            datasetSize: size,
            policy: o.policy,
            pruneRatio: o.pruneRatio ?? 0,
            maxPruneRatio: o.maxPruneRatio,
            smoothing: o.smoothing,
            epochs: o.epochs,
            seed,
            datasetUrl: o.dataset,
            token: o.token ?? '',
          }),
        );
        printJson(jobJson(job));
      },
    ),
  );

  addClientOptions(
    scorer.command('describe').description('Print a job as JSON.').requiredOption('--job <id>', 'job id'),
  ).action(
    guarded('describe', async (o: ClientFlags & { job: string }) => {
      const job = await withClient(o, (client) => client.describeJob(o.job));
      printJson(jobJson(job));
    }),
  );

  addClientOptions(
    scorer
      .command('stats')
      .description('Print the statistics of an epoch’s plan as JSON (the plan must have been computed).')
      .requiredOption('--job <id>', 'job id')
      .requiredOption('--epoch <e>', 'epoch, from 0', intArg('--epoch')),
  ).action(
    guarded('stats', async (o: ClientFlags & { job: string; epoch: number }) => {
      const stats = await withClient(o, (client) => client.getStats(o.job, o.epoch));
      printJson(pb.JobStats.toObject(stats, { longs: Number, defaults: true }));
    }),
  );

  addClientOptions(
    scorer
      .command('plan')
      .description(
        'Fetch an epoch’s plan (computing it if needed), check its digest, and print a summary as JSON.',
      )
      .requiredOption('--job <id>', 'job id')
      .requiredOption('--epoch <e>', 'epoch, from 0', intArg('--epoch'))
      .option('--ids', 'include the selected ids and weights in the output'),
  ).action(
    guarded('plan', async (o: ClientFlags & { job: string; epoch: number; ids?: boolean }) => {
      // The client reassembles the chunks and rejects a plan whose digest differs (SADP_PLAN_CORRUPT).
      const plan = await withClient(o, (client) => client.getPlan(o.job, o.epoch));
      printJson({
        jobId: o.job,
        epoch: plan.epoch,
        datasetSize: plan.datasetSize,
        pruneRatio: plan.pruneRatio,
        expectedSize: plan.expectedSize,
        selectedCount: plan.ids.length,
        chunks: plan.chunks,
        digest: plan.digest,
        digestVerified: true,
        ...(o.ids ? { ids: Array.from(plan.ids), weights: Array.from(plan.weights) } : {}),
      });
    }),
  );
}
