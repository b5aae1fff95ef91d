// What every long-running `sadp` service command shares: the common flags
// (config file, S3, TLS, metrics, logging), turning flags into config
// overrides, the S3 options derived from config, the /metrics endpoint, and
// the machine-readable "listening" line scripts and tests read the port from.
import type { Command } from 'commander';
import { loadConfig, type Config, type ConfigInput } from '../common/config.js';
import { createLifecycle, type Lifecycle } from '../common/lifecycle.js';
import { createLogger, type Logger } from '../common/logger.js';
import { collectProcessMetrics, startMetricsServer } from '../common/metrics.js';
import type { S3Options } from '../storage/index.js';
import { intArg } from './args.js';

export interface CommonServiceFlags {
  config?: string;
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  pathStyle?: boolean;
  metricsPort?: number;
  metricsHost?: string;
  logLevel?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  requireClientCert?: boolean;
}

/** Adds the flags every service command takes. */
export function addCommonServiceOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML config file; default $SADP_CONFIG')
    .option('--endpoint <url>', 'S3 endpoint (MinIO, Ceph RGW, the embedded server); default AWS')
    .option('--region <region>', 'S3 region')
    .option('--access-key-id <id>', 'S3 access key id (default: the AWS credential chain)')
    .option('--secret-access-key <key>', 'S3 secret access key')
    .option('--path-style', 'path-style S3 URLs (default)')
    .option('--no-path-style', 'virtual-host S3 URLs')
    .option('--tls-cert <pem>', 'serve gRPC over TLS with this certificate chain')
    .option('--tls-key <pem>', 'private key of --tls-cert')
    .option(
      '--tls-ca <pem>',
      'CA bundle: verify client certificates (with --require-client-cert) and TLS peers',
    )
    .option('--require-client-cert', 'mutual TLS: reject clients without a certificate signed by --tls-ca')
    .option(
      '--metrics-port <port>',
      'serve Prometheus /metrics on this port (0: off)',
      intArg('--metrics-port'),
    )
    .option('--metrics-host <host>', 'interface of the /metrics endpoint; default 127.0.0.1')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent');
}

/** The `s3` config section that the S3 connection flags stand for (unset flags leave config alone). */
export function s3Overrides(
  flags: Pick<CommonServiceFlags, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey' | 'pathStyle'>,
): ConfigInput['s3'] {
  return {
    endpoint: flags.endpoint,
    region: flags.region,
    accessKeyId: flags.accessKeyId,
    secretAccessKey: flags.secretAccessKey,
    forcePathStyle: flags.pathStyle,
  };
}

/** The config overrides the common flags stand for (unset flags leave config alone). */
function commonOverrides(flags: CommonServiceFlags): ConfigInput {
  return {
    s3: s3Overrides(flags),
    tls: {
      cert: flags.tlsCert,
      key: flags.tlsKey,
      ca: flags.tlsCa,
      requireClientCert: flags.requireClientCert,
    },
    metrics: { port: flags.metricsPort, host: flags.metricsHost },
    log: { level: flags.logLevel as NonNullable<ConfigInput['log']>['level'] },
  };
}

function deepMerge(a: ConfigInput, b: ConfigInput): ConfigInput {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      typeof v === 'object' && v !== null && typeof prev === 'object' && prev !== null
        ? { ...prev, ...v }
        : v;
  }
  return out;
}

export function resolveConfig(flags: CommonServiceFlags, overrides: ConfigInput): Config {
  return loadConfig({ file: flags.config, overrides: deepMerge(commonOverrides(flags), overrides) });
}

/** S3 client options from the `s3` section (credentials only when configured). */
export function s3Options(config: Config, endpointOverride?: string): S3Options {
  return {
    endpoint: endpointOverride ?? config.s3.endpoint,
    region: config.s3.region,
    forcePathStyle: config.s3.forcePathStyle,
    accessKeyId: config.s3.accessKeyId,
    secretAccessKey: config.s3.secretAccessKey,
    maxSockets: config.s3.maxSockets,
    requestTimeoutMs: config.s3.requestTimeoutMs,
  };
}

export interface ServiceRuntime {
  config: Config;
  logger: Logger;
  lifecycle: Lifecycle;
  /** Port of /metrics, when enabled. */
  metricsPort: number | undefined;
}

export async function startServiceRuntime(name: string, config: Config): Promise<ServiceRuntime> {
  const logger = createLogger({ name, level: config.log.level });
  const lifecycle = createLifecycle({ graceMs: config.shutdownGraceMs, logger });
  let metricsPort: number | undefined;
  if (config.metrics.port > 0) {
    collectProcessMetrics();
    const metrics = await startMetricsServer(config.metrics.port, config.metrics.host);
    metricsPort = metrics.port;
    lifecycle.add({ name: 'metrics', close: () => metrics.close() });
  }
  return { config, logger, lifecycle, metricsPort };
}

/** One JSON line on stdout per listening service, e.g. {"event":"listening","service":"loader","port":50052}. */
export function announce(service: string, fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ event: 'listening', service, ...fields })}\n`);
}

/** Waits for shutdown, flushes logs and exits (S3 keep-alive sockets would hold the process open). */
export async function runUntilShutdown(runtime: ServiceRuntime): Promise<never> {
  await runtime.lifecycle.done;
  await new Promise<void>((resolve) => runtime.logger.flush(() => resolve()));
  process.exit(0);
}
