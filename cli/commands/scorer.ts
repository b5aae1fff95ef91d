// `sadp scorer`: runs the scorer gRPC service; its subcommands are small
// clients for operators (create a job, describe it, fetch stats or a plan).
//
// When the server is listening it prints one JSON line to stdout,
// {"event":"listening","service":"scorer","address":...,"port":...}, so
// scripts and tests can start it on port 0 and read the port back. Logs go
// to stderr.
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { loadConfig, splitHostPort, type Config } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { readFileSync } from 'node:fs';
import { bearerInterceptor } from '../../common/bearer.js';
import { SadpError, Status, errorMessage } from '../../common/errors.js';
import { channelCredentials, serverCredentials } from '../../common/tls.js';
import { pb, ScorerClient, type sadp } from '../../proto/index.js';
import {
  POLICY_NAMES,
  bigIntToU64,
  createScorerServer,
  policyToEnum,
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
    credentials: serverCredentials(config.tls),
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
 * A client of the scorer presenting, when one is given, a bearer token: the
 * file of --auth-token-file, else the admin token of the config
 * (SADP_SCORER_ADMIN_TOKEN), as on the scorer's own pod.
 */
function connect(flags: ClientFlags): ScorerClient {
  const config = loadConfig({ file: flags.config });
  const token = flags.authTokenFile ? readTokenFile(flags.authTokenFile) : config.scorer.adminToken;
  return new ScorerClient(
    flags.address,
    channelCredentials(config.tls),
    token ? { interceptors: [bearerInterceptor(token)] } : {},
  );
}

/**
 * N for a new job: read from the manifest (which must open: it exists, parses
 * and its indexes agree with it), and checked against --size when both are
 * given, so a bad dataset fails here rather than when the first trainer connects.
 */
async function datasetSize(o: {
  config?: string;
  dataset: string;
  size?: number;
  datasetCheck: boolean;
  endpoint?: string;
}): Promise<number> {
  if (!o.dataset || !o.datasetCheck) {
    if (o.size === undefined)
      throw new Error('--size is required without --dataset (or with --no-dataset-check)');
    return o.size;
  }
  const config = loadConfig({ file: o.config });
  const dataset = await openDataset(o.dataset, { s3: s3Options(config, o.endpoint) });
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

function unary<Req, Res>(
  flags: ClientFlags,
  call: (
    client: ScorerClient,
    req: Req,
    options: Partial<grpc.CallOptions>,
    cb: grpc.requestCallback<Res>,
  ) => void,
  req: Req,
): Promise<Res> {
  const client = connect(flags);
  return new Promise<Res>((resolve, reject) => {
    call(client, req, { deadline: Date.now() + flags.deadlineMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  }).catch((err: unknown) => {
    throw new Error(`${flags.address}: ${errorMessage(err)}`, { cause: err });
  });
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
      process.stderr.write(`sadp scorer ${name}: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    }
  };
}

function addClientOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--address <host:port>', 'scorer address')
    .option('--config <file>', 'YAML config (for TLS settings); default $SADP_CONFIG')
    .option('--deadline-ms <ms>', 'per-call deadline', intArg('--deadline-ms'), 30_000)
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
      .option('--listen <host:port>', 'address to listen on (port 0: any free port); default 127.0.0.1:50051')
      .option(
        '--state <dir|s3://bucket/prefix>',
        'where jobs, score logs, snapshots and plans live; default .sadp/scorer',
      )
      .option(
        '--auth <mode>',
        'none, or token: callers need the admin token (SADP_SCORER_ADMIN_TOKEN) to create jobs, and it, the loader token (SADP_SCORER_LOADER_TOKEN) or the job’s token for everything else',
      ),
  ).action((flags: ServeFlags) => serve(flags));

  addClientOptions(
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
      .requiredOption('--prune-ratio <r>', 'average pruning ratio r in [0, 1)', numArg('--prune-ratio'))
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
      .option('--endpoint <url>', 'S3 endpoint for reading the manifest; default the config’s s3.endpoint')
      .option(
        '--token <token>',
        'bearer token trainers must present to the loader (stored hashed; the loader must run with --auth token)',
      ),
  ).action(
    guarded(
      'create-job',
      async (
        o: ClientFlags & {
          job: string;
          size?: number;
          datasetCheck: boolean;
          endpoint?: string;
          policy: string;
          pruneRatio: number;
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
        const size = await datasetSize(o);
        const spec = pb.JobSpec.create({
          jobId: o.job,
          datasetSize: size,
          policy: policyToEnum(o.policy),
          pruneRatio: o.pruneRatio,
          ...(o.maxPruneRatio === undefined ? {} : { maxPruneRatio: o.maxPruneRatio }),
          ...(o.smoothing === undefined ? {} : { smoothing: o.smoothing }),
          epochs: o.epochs,
          seed: bigIntToU64(seed),
          datasetUrl: o.dataset,
          token: o.token ?? '',
        });
        const job = await unary<sadp.v1.CreateJobRequest.$Properties, sadp.v1.Job>(
          o,
          (c, req, opts, cb) => c.createJob(req, new grpc.Metadata(), opts, cb),
          { spec },
        );
        printJson(jobJson(job));
      },
    ),
  );

  addClientOptions(
    scorer.command('describe').description('Print a job as JSON.').requiredOption('--job <id>', 'job id'),
  ).action(
    guarded('describe', async (o: ClientFlags & { job: string }) => {
      const job = await unary<sadp.v1.DescribeJobRequest.$Properties, sadp.v1.Job>(
        o,
        (c, req, opts, cb) => c.describeJob(req, new grpc.Metadata(), opts, cb),
        { jobId: o.job },
      );
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
      const stats = await unary<sadp.v1.GetStatsRequest.$Properties, sadp.v1.JobStats>(
        o,
        (c, req, opts, cb) => c.getStats(req, new grpc.Metadata(), opts, cb),
        { jobId: o.job, epoch: o.epoch },
      );
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
      const client = connect(o);
      try {
        const ids: number[] = [];
        const weights: number[] = [];
        let first: sadp.v1.PlanChunk | undefined;
        let chunks = 0;
        const stream = client.getPlan({ jobId: o.job, epoch: o.epoch }, new grpc.Metadata(), {
          deadline: Date.now() + o.deadlineMs,
        });
        for await (const chunk of stream as AsyncIterable<sadp.v1.PlanChunk>) {
          first ??= chunk;
          chunks++;
          for (const id of chunk.ids) ids.push(id);
          for (const w of chunk.weights) weights.push(w);
        }
        if (!first) throw new Error('the scorer sent no chunks');
        const digest = createHash('sha256')
          .update(new Uint8Array(Uint32Array.from(ids).buffer))
          .update(new Uint8Array(Float64Array.from(weights).buffer))
          .digest('hex');
        printJson({
          jobId: o.job,
          epoch: first.epoch,
          datasetSize: first.datasetSize,
          pruneRatio: first.pruneRatio,
          expectedSize: first.expectedSize,
          selectedCount: first.selectedCount,
          chunks,
          digest: first.digest,
          digestVerified: digest === first.digest && ids.length === first.selectedCount,
          ...(o.ids ? { ids, weights } : {}),
        });
      } catch (err) {
        throw new Error(`${o.address}: ${errorMessage(err)}`, { cause: err });
      } finally {
        client.close();
      }
    }),
  );
}
