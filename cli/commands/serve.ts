// `sadp serve`: the embedded default in one process — optionally the embedded
// S3 server, then the scorer, then a loader wired to that scorer. Kubernetes
// runs the same pieces as separate `sadp scorer` / `sadp loader` processes.
import type { Command } from 'commander';
import {
  EMBEDDED_S3_DEFAULTS,
  s3OptionsForEmbedded,
  startEmbeddedS3,
  type S3Options,
} from '../../storage/index.js';
import { LOADER_DEFAULTS } from '../../loader/index.js';
import { SCORER_DEFAULTS } from '../../scorer/index.js';
import { randomBytes } from 'node:crypto';
import { joinRoots, startLoaderFromConfig } from './loader.js';
import { startScorerFromConfig } from './scorer.js';
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

interface ServeFlags extends CommonServiceFlags {
  embeddedS3?: boolean;
  s3DataDir?: string;
  s3Port?: number;
  bucket: string[];
  scorerListen?: string;
  loaderListen?: string;
  state?: string;
  auth?: 'none' | 'token';
  allowLocalRoot: string[];
}

export function registerServeCommand(program: Command): void {
  addCommonServiceOptions(
    program
      .command('serve')
      .description(
        'Run scorer + loader (and optionally the embedded S3 server) in one process: the single-machine default.',
      )
      .option('--embedded-s3', 'start the embedded S3-compatible server (s3rver) on loopback and use it')
      .option(
        '--s3-data-dir <dir>',
        `data directory of the embedded S3 server; default ${EMBEDDED_S3_DEFAULTS.dataDir}`,
      )
      .option(
        '--s3-port <port>',
        `port of the embedded S3 server; default ${EMBEDDED_S3_DEFAULTS.port}`,
        intArg('--s3-port'),
      )
      .option(
        '--bucket <name>',
        'bucket to create in the embedded server (repeatable)',
        (v: string, acc: string[]) => [...acc, v],
        [] as string[],
      )
      .option('--scorer-listen <host:port>', `scorer address; default ${SCORER_DEFAULTS.listen}`)
      .option('--loader-listen <host:port>', `loader address; default ${LOADER_DEFAULTS.listen}`)
      .option('--state <dir|s3://bucket/prefix>', `scorer state store; default ${SCORER_DEFAULTS.state}`)
      .option(
        '--auth <mode>',
        'none, or token: the scorer needs its admin token (SADP_SCORER_ADMIN_TOKEN) to create jobs and the loader needs each job’s token',
      )
      .option(
        '--allow-local-root <dir>',
        'read jobs’ local datasets only under this directory (repeatable); default any local path (single machine)',
        (v: string, acc: string[]) => [...acc, v],
        [] as string[],
      ),
  ).action(async (flags: ServeFlags) => {
    const config = resolveConfig(flags, {
      embeddedS3: { enabled: flags.embeddedS3, dataDir: flags.s3DataDir, port: flags.s3Port },
      scorer: { listen: flags.scorerListen, state: flags.state, auth: flags.auth },
      loader: {
        listen: flags.loaderListen,
        auth: flags.auth,
        allowLocalRoots: joinRoots(flags.allowLocalRoot),
      },
    });
    // One process: under token auth the in-process loader gets a loader
    // credential of its own unless one is configured.
    const loaderToken =
      config.scorer.auth === 'token'
        ? (config.scorer.loaderToken ?? config.loader.scorerToken ?? randomBytes(32).toString('base64url'))
        : undefined;
    const runtime = await startServiceRuntime('serve', config);
    const { logger, lifecycle } = runtime;

    let s3: S3Options = s3Options(config);
    if (config.embeddedS3.enabled) {
      const embedded = await startEmbeddedS3({
        dataDir: config.embeddedS3.dataDir,
        host: config.embeddedS3.host,
        port: config.embeddedS3.port,
        buckets: flags.bucket.length > 0 ? flags.bucket : ['sadp'],
        allowNonLoopback: config.embeddedS3.allowNonLoopback,
      });
      lifecycle.add({ name: 'embedded-s3', close: () => embedded.close() });
      s3 = s3OptionsForEmbedded(embedded);
      announce('s3', {
        endpoint: embedded.endpoint,
        port: embedded.port,
        dataDir: config.embeddedS3.dataDir,
      });
    }

    const scorer = await startScorerFromConfig(config, logger.child({ component: 'scorer' }), {
      s3,
      loaderToken,
    });
    lifecycle.add({ name: 'scorer', close: (graceMs) => scorer.close(graceMs) });
    announce('scorer', { address: scorer.address, port: scorer.port, state: config.scorer.state });

    // The loader service binds `component` itself; binding it here too would
    // write the key twice on every line.
    const loader = await startLoaderFromConfig(config, logger, {
      scorerAddress: scorer.address,
      s3,
      scorerToken: loaderToken,
      embedded: true,
    });
    lifecycle.add({ name: 'loader', close: (graceMs) => loader.close(graceMs) });
    announce('loader', { address: loader.address, port: loader.port, metricsPort: runtime.metricsPort });
    await runUntilShutdown(runtime);
  });
}
