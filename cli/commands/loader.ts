// `sadp loader`: runs the trainer-facing loader gRPC service against a scorer.
// Prints {"event":"listening","service":"loader",...} on stdout when ready.
import { delimiter, resolve } from 'node:path';
import type { Command } from 'commander';
import { splitHostPort, type Config, type ConfigInput } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { channelTls, readTls, type TlsOptions } from '../../common/tls.js';
import { createLoaderServer, loaderConfigSchema, type LoaderServer } from '../../loader/index.js';
import type { z } from 'zod';
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

/**
 * `sadp loader` flags for knobs of the `loader` config section, in help
 * order: the knob (the flag is its kebab-case name) and its help line. Types,
 * defaults and bounds come from the loader's schema (loaderConfigSchema); a
 * flag only overrides the config when given.
 */
const KNOB_FLAGS = [
  ['listen', '<host:port>', 'address to listen on (port 0: any free port)'],
  ['scorer', '<host:port>', 'scorer address'],
  ['inflightBytes', '<n>', 'global bound on fetched-but-unsent sample bytes'],
  ['prefetchBatches', '<n>', 'batches fetched ahead per stream'],
  ['gapBytes', '<n>', 'merge byte ranges of a shard closer than this'],
  [
    'readPlanner',
    '<mode>',
    'auto (minimise modelled read time), min-bytes (pruned bytes within the waste bound), whole-shard or ranges',
  ],
  ['concurrency', '<n>', "most GETs in flight (the reader adapts between 64 and this, by Little's law)"],
  ['readThreads', '<n>', 'worker threads for GETs and tar cutting (0: on the main thread)'],
  ['slabPoolBytes', '<n>', 'bytes of recycled read memory kept free for later reads'],
  ['shuffle', '<mode>', 'global, shard-block or shard-buffer'],
  [
    'scoreDurableTimeoutMs',
    '<ms>',
    'how long scores may fail to reach the scorer before the streams that carried them fail (trainers resend them)',
  ],
  [
    'auth',
    '<mode>',
    'none or token (per-job bearer tokens; under none, jobs created with a token are refused)',
  ],
] as const satisfies ReadonlyArray<readonly [keyof Config['loader'], string, string]>;

type KnobKey = (typeof KNOB_FLAGS)[number][0];

type LoaderFlags = CommonServiceFlags & { [K in KnobKey]?: Config['loader'][K] } & {
  allowLocalRoot: string[];
};

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The `loader` config overrides the given knob flags stand for (unset flags leave config alone). */
export function knobOverrides(flags: { [K in KnobKey]?: Config['loader'][K] }): ConfigInput['loader'] {
  return Object.fromEntries(KNOB_FLAGS.map(([key]) => [key, flags[key]]));
}

/** Adds the knob flags to `cmd`: integers are parsed and bounded as the schema bounds them. */
export function addKnobFlags(cmd: Command): Command {
  const defaults = loaderConfigSchema.parse({});
  for (const [key, arg, help] of KNOB_FLAGS) {
    const flag = `--${kebab(key)}`;
    const text = `${help}; default ${String(defaults[key])}`;
    const field = loaderConfigSchema.shape[key] as unknown as { unwrap(): z.ZodType };
    const inner = field.unwrap() as unknown as {
      type: string;
      minValue?: number | null;
      maxValue?: number | null;
    };
    if (inner.type === 'number') {
      cmd.option(`${flag} ${arg}`, text, intArg(flag, inner.minValue ?? 0, inner.maxValue ?? undefined));
    } else {
      cmd.option(`${flag} ${arg}`, text);
    }
  }
  return cmd;
}

/** The listener's TLS: the config's files, read once (plaintext without cert and key). */
function loaderTls(config: Config): TlsOptions | undefined {
  const { cert, key } = config.tls;
  return cert || key ? readTls(config.tls) : undefined;
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
    scorerTls: channelTls(config.tls),
    s3: overrides.s3 ?? s3Options(config),
    inflightBytes: config.loader.inflightBytes,
    prefetchBatches: config.loader.prefetchBatches,
    maxMessageBytes: config.loader.maxMessageBytes,
    readerOptions: {
      gapBytes: config.loader.gapBytes,
      maxWasteRatio: config.loader.maxWasteRatio,
      planner: config.loader.readPlanner,
      concurrency: config.loader.concurrency,
      slabPoolBytes: config.loader.slabPoolBytes,
      threads: config.loader.readThreads,
      maxAttempts: config.loader.maxAttempts,
    },
    shuffle: config.loader.shuffle,
    scoreDurableTimeoutMs: config.loader.scoreDurableTimeoutMs,
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
    addKnobFlags(
      program
        .command('loader')
        .description(
          'Run the loader gRPC service: streams SADP-selected samples from shards in S3 to trainer ranks and forwards their scores to the scorer.',
        ),
    ).option(
      '--allow-local-root <dir>',
      'a local directory jobs’ datasets may be read from (repeatable); otherwise only object storage (s3://)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    ),
  ).action(async (flags: LoaderFlags) => {
    const config = resolveConfig(flags, {
      loader: { ...knobOverrides(flags), allowLocalRoots: joinRoots(flags.allowLocalRoot) },
    });
    const runtime = await startServiceRuntime('loader', config);
    const server = await startLoaderFromConfig(config, runtime.logger);
    runtime.lifecycle.add({ name: 'loader', close: (graceMs) => server.close(graceMs) });
    announce('loader', { address: server.address, port: server.port, metricsPort: runtime.metricsPort });
    await runUntilShutdown(runtime);
  });
}
