// `sadp loader`: runs the trainer-facing loader gRPC service against a scorer.
// Prints {"event":"listening","service":"loader",...} on stdout when ready.
import { delimiter, resolve } from 'node:path';
import type { Command } from 'commander';
import { splitHostPort, type Config } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { channelCredentials, readPem } from '../../common/tls.js';
import { createLoaderServer, type LoaderServer, type LoaderTlsOptions } from '../../loader/index.js';
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
import { intArg } from '../args.js';

interface LoaderFlags extends CommonServiceFlags {
  listen?: string;
  scorer?: string;
  inflightBytes?: number;
  prefetchBatches?: number;
  gapBytes?: number;
  readPlanner?: 'auto' | 'min-bytes' | 'whole-shard' | 'ranges';
  concurrency?: number;
  readThreads?: number;
  shuffle?: 'global' | 'shard-block' | 'shard-buffer';
  auth?: 'none' | 'token';
  allowLocalRoot: string[];
}

function loaderTls(config: Config): LoaderTlsOptions | undefined {
  const { cert, key, ca, requireClientCert } = config.tls;
  if (!cert || !key) return undefined;
  return {
    cert: readPem(cert, 'certificate'),
    key: readPem(key, 'key'),
    ...(ca ? { ca: readPem(ca, 'CA') } : {}),
    requireClientCert,
  };
}

/** Starts a loader from resolved config; shared by `sadp loader` and `sadp serve`. */
export async function startLoaderFromConfig(
  config: Config,
  logger: Logger,
  overrides: {
    scorerAddress?: string;
    s3?: S3Options;
    scorerToken?: string;
    /** `sadp serve` (embedded, single machine) reads local datasets by default. */
    embedded?: boolean;
  } = {},
): Promise<LoaderServer> {
  const { host, port } = splitHostPort(config.loader.listen);
  const localRoots = (config.loader.allowLocalRoots ?? '').split(delimiter).filter((r) => r !== '');
  return createLoaderServer({
    host,
    port,
    scorerAddress: overrides.scorerAddress ?? config.loader.scorer,
    // The scorer is dialled with the CA and, when configured, this service's
    // certificate: a scorer with requireClientCert (one shared mutual-TLS
    // config) refuses a loader that presents none.
    scorerCredentials: channelCredentials({ ca: config.tls.ca, cert: config.tls.cert, key: config.tls.key }),
    s3: overrides.s3 ?? s3Options(config),
    inflightBytes: config.loader.inflightBytes,
    prefetchBatches: config.loader.prefetchBatches,
    maxMessageBytes: config.loader.maxMessageBytes,
    readerOptions: {
      gapBytes: config.loader.gapBytes,
      maxWasteRatio: config.loader.maxWasteRatio,
      planner: config.loader.readPlanner,
      concurrency: config.loader.concurrency,
      threads: config.loader.readThreads,
      maxAttempts: config.loader.maxAttempts,
    },
    shuffle: config.loader.shuffle,
    auth: config.loader.auth,
    scorerToken: overrides.scorerToken ?? config.loader.scorerToken,
    // Service mode: object storage plus the operator's local roots only.
    datasetAccess: overrides.embedded && localRoots.length === 0 ? 'any' : { localRoots },
    tls: loaderTls(config),
    logger,
  });
}

/** Repeated --allow-local-root flags as the config's path-delimited list (undefined: leave config alone). */
export function joinRoots(roots: readonly string[]): string | undefined {
  return roots.length > 0 ? roots.map((r) => resolve(r)).join(delimiter) : undefined;
}

export function registerLoaderCommand(program: Command): void {
  addCommonServiceOptions(
    program
      .command('loader')
      .description(
        'Run the loader gRPC service: streams SADP-selected samples from shards in S3 to trainer ranks and forwards their scores to the scorer.',
      )
      .option('--listen <host:port>', 'address to listen on (port 0: any free port); default 127.0.0.1:50052')
      .option('--scorer <host:port>', 'scorer address; default 127.0.0.1:50051')
      .option(
        '--inflight-bytes <n>',
        'global bound on fetched-but-unsent sample bytes',
        intArg('--inflight-bytes'),
      )
      .option('--prefetch-batches <n>', 'batches fetched ahead per stream', intArg('--prefetch-batches'))
      .option('--gap-bytes <n>', 'merge byte ranges of a shard closer than this', intArg('--gap-bytes'))
      .option(
        '--read-planner <mode>',
        'auto (minimise modelled read time), min-bytes (pruned bytes within the waste bound), whole-shard or ranges',
      )
      .option('--concurrency <n>', 'concurrent GETs', intArg('--concurrency'))
      .option(
        '--read-threads <n>',
        'worker threads for GETs and tar cutting (0: on the main thread)',
        intArg('--read-threads'),
      )
      .option('--shuffle <mode>', 'global, shard-block or shard-buffer')
      .option(
        '--auth <mode>',
        'none or token (per-job bearer tokens; under none, jobs created with a token are refused)',
      )
      .option(
        '--allow-local-root <dir>',
        'a local directory jobs’ datasets may be read from (repeatable); otherwise only object storage (s3://)',
        (v: string, acc: string[]) => [...acc, v],
        [] as string[],
      ),
  ).action(async (flags: LoaderFlags) => {
    const config = resolveConfig(flags, {
      loader: {
        listen: flags.listen,
        scorer: flags.scorer,
        inflightBytes: flags.inflightBytes,
        prefetchBatches: flags.prefetchBatches,
        gapBytes: flags.gapBytes,
        readPlanner: flags.readPlanner,
        concurrency: flags.concurrency,
        readThreads: flags.readThreads,
        shuffle: flags.shuffle,
        auth: flags.auth,
        allowLocalRoots: joinRoots(flags.allowLocalRoot),
      },
    });
    const runtime = await startServiceRuntime('loader', config);
    const server = await startLoaderFromConfig(config, runtime.logger);
    runtime.lifecycle.add({ name: 'loader', close: (graceMs) => server.close(graceMs) });
    announce('loader', { address: server.address, port: server.port, metricsPort: runtime.metricsPort });
    await runUntilShutdown(runtime);
  });
}
