// `sadp s3 serve`: the embedded S3-compatible server (s3rver) on loopback,
// for single-machine runs and tests. Also home of the S3 connection flags
// shared by commands that read or write s3:// URLs.
//
// When listening it prints one JSON line to stdout with the endpoint and the
// credentials to use ({"event":"listening","service":"s3",...}) and a line of
// shell exports to stderr. s3rver's credentials are fixed and not checked
// (see storage/embedded-s3.ts), so printing them discloses nothing.
import type { Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { createLifecycle } from '../../common/lifecycle.js';
import { createLogger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';
import { errorLines } from '../hints.js';
import { EMBEDDED_S3_DEFAULTS, startEmbeddedS3, type S3Options } from '../../storage/index.js';
import { intArg } from '../args.js';
import { announce, s3Overrides } from '../service-runtime.js';

export interface S3Flags {
  config?: string;
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  pathStyle?: boolean;
}

/** Adds --config and the S3 connection flags to a command. */
export function addS3Flags(cmd: Command): Command {
  return addS3ConnectionFlags(cmd.option('--config <file>', 'YAML config file; default $SADP_CONFIG'));
}

/** Adds --endpoint/--region/credential flags to a command. */
export function addS3ConnectionFlags(cmd: Command): Command {
  return cmd
    .option('--endpoint <url>', 'S3 endpoint (MinIO, Ceph RGW, `sadp s3 serve`); default AWS')
    .option('--region <region>', 'S3 region')
    .option('--access-key-id <id>', 'S3 access key id (default: the AWS credential chain)')
    .option('--secret-access-key <key>', 'S3 secret access key')
    .option('--session-token <token>', 'S3 session token')
    .option('--path-style', 'path-style S3 URLs (default with --endpoint)')
    .option('--no-path-style', 'virtual-host S3 URLs');
}

/** S3 client options from flags > env (SADP_S3_*) > config file. */
export function s3OptionsFromFlags(flags: S3Flags): S3Options {
  const { s3 } = loadConfig({ file: flags.config, overrides: { s3: s3Overrides(flags) } });
  return {
    endpoint: s3.endpoint,
    region: s3.region,
    // Path-style only matters (and only defaults on) for custom endpoints.
    forcePathStyle: flags.pathStyle ?? (s3.endpoint ? s3.forcePathStyle : false),
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    sessionToken: flags.sessionToken,
    maxSockets: s3.maxSockets,
    requestTimeoutMs: s3.requestTimeoutMs,
  };
}

/** Runs a command action; SadpErrors become one `error CODE: message` line and exit code 1. */
export function runAction<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      process.stderr.write(errorLines('', err, errorMessage(err)));
      process.exitCode = 1;
    }
  };
}

interface ServeFlags {
  config?: string;
  dataDir?: string;
  host?: string;
  port?: number;
  bucket: string[];
  allowNonLoopback?: boolean;
  verbose?: boolean;
}

async function serve(flags: ServeFlags): Promise<void> {
  const config = loadConfig({
    file: flags.config,
    overrides: {
      embeddedS3: {
        dataDir: flags.dataDir,
        host: flags.host,
        port: flags.port,
        allowNonLoopback: flags.allowNonLoopback,
      },
    },
  });
  const opts = config.embeddedS3;
  const logger = createLogger({ name: 's3', level: config.log.level });
  const server = await startEmbeddedS3({
    dataDir: opts.dataDir,
    host: opts.host,
    port: opts.port,
    buckets: flags.bucket,
    allowNonLoopback: opts.allowNonLoopback,
    silent: !flags.verbose,
  });
  const lifecycle = createLifecycle({ graceMs: config.shutdownGraceMs, logger });
  lifecycle.add({ name: 's3', close: () => server.close() });
  announce('s3', {
    endpoint: server.endpoint,
    port: server.port,
    dataDir: opts.dataDir,
    buckets: flags.bucket,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
  });
  process.stderr.write(
    `embedded S3 at ${server.endpoint} (data in ${opts.dataDir}); to use it:\n` +
      `  export AWS_ENDPOINT_URL=${server.endpoint} AWS_ACCESS_KEY_ID=${server.accessKeyId} ` +
      `AWS_SECRET_ACCESS_KEY=${server.secretAccessKey} AWS_REGION=us-east-1\n` +
      `  sadp ... --endpoint ${server.endpoint}\n`,
  );
  await lifecycle.done;
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
}

export function registerS3Command(program: Command): void {
  const s3 = program.command('s3').description('The embedded S3-compatible server (s3rver).');
  s3.command('serve')
    .description(
      'Run an S3-compatible server on loopback until SIGTERM/SIGINT. It has no authentication: ' +
        'it refuses non-loopback addresses unless --allow-non-loopback.',
    )
    .option('--config <file>', 'YAML config file; default $SADP_CONFIG')
    .option('--data-dir <dir>', `where objects are stored; default ${EMBEDDED_S3_DEFAULTS.dataDir}`)
    .option('--host <host>', `address to bind; default ${EMBEDDED_S3_DEFAULTS.host}`)
    .option(
      '--port <port>',
      `port (0: any free port); default ${EMBEDDED_S3_DEFAULTS.port}`,
      intArg('--port', 0, 65535),
    )
    .option('--bucket <name...>', 'buckets to create at start', [])
    .option(
      '--allow-non-loopback',
      'allow binding a non-loopback address (anyone who can reach it can read and write)',
    )
    .option('--verbose', "print s3rver's per-request log lines")
    .action(runAction((flags: ServeFlags) => serve(flags)));
}
