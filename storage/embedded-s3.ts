// The embedded S3-compatible server (npm `s3rver`), so one machine can run the
// whole pipeline without MinIO or AWS.
//
// s3rver 3.7 limitations, checked against SDK v3 on Node 20 (see
// test/storage/embedded-s3.test.ts):
// - It does NOT verify SigV4 signatures (only that the access key id exists)
//   and serves unsigned requests: credentials are no protection at all. The
//   loopback bind is the only thing keeping data private, hence
//   SADP_INSECURE_BIND unless `allowNonLoopback`.
// - It ignores If-Match on GET; the S3 store compares the response's ETag
//   instead (s3rver returns it on ranged GETs).
// - Range and multipart uploads work. Virtual-host bucket detection is
//   switched off: it would mistake a DNS name of this server (e.g. a
//   Kubernetes service name) for a bucket name.
// - It lists keys in directory-walk order, not byte order: `a/z` comes before
//   `a.txt`. Paging (which resumes after the last key) can then skip keys;
//   lists of more than 1000 keys with such names are unreliable on s3rver.
// - Its access key registry is process-global and fixed to S3RVER/S3RVER.
import { createRequire } from 'node:module';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { SadpError, Status } from '../common/errors.js';
import type { S3Options } from './s3-client.js';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;

// s3rver is CommonJS without type declarations.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

export interface EmbeddedS3Options {
  /** Where objects live (`<dataDir>/<bucket>/...`); created if missing. */
  dataDir: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port; the chosen one is reported). */
  port?: number;
  /** Buckets to create at start; default none. */
  buckets?: string[];
  /** Bind to a non-loopback address despite s3rver having no authentication. */
  allowNonLoopback?: boolean;
  /** Suppress s3rver's per-request log lines; default true. */
  silent?: boolean;
}

export interface EmbeddedS3 {
  /** `http://host:port` */
  endpoint: string;
  port: number;
  accessKeyId: string;
  secretAccessKey: string;
  close(): Promise<void>;
}

/** s3rver's built-in account; any other key id is rejected. */
const ACCESS_KEY_ID = 'S3RVER';
const SECRET_ACCESS_KEY = 'S3RVER';
/** How long close() lets in-flight requests finish before cutting connections. */
const CLOSE_GRACE_MS = 2_000;

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

export async function startEmbeddedS3(options: EmbeddedS3Options): Promise<EmbeddedS3> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && !options.allowNonLoopback) {
    throw new SadpError(
      'SADP_INSECURE_BIND',
      `refusing to bind the embedded S3 server to ${host}: it has no authentication ` +
        '(any request is served), so it only listens on loopback unless explicitly allowed',
      { status: Status.FAILED_PRECONDITION },
    );
  }
  for (const name of options.buckets ?? []) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
      throw new SadpError('SADP_INVALID_BUCKET', `invalid bucket name ${JSON.stringify(name)}`, {
        status: Status.INVALID_ARGUMENT,
      });
    }
  }
  await mkdir(options.dataDir, { recursive: true });
  const server = new S3rver({
    address: host,
    port: options.port ?? 0,
    directory: options.dataDir,
    silent: options.silent ?? true,
    vhostBuckets: false,
    resetOnClose: false,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    throw new SadpError(
      'SADP_BIND_FAILED',
      `embedded S3 server could not listen on ${host}:${options.port ?? 0}`,
      {
        status: Status.UNAVAILABLE,
        cause: err,
      },
    );
  }
  const urlHost = isIP(host) === 6 ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://${urlHost}:${address.port}`,
    port: address.port,
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET_ACCESS_KEY,
    close() {
      closing ??= (async () => {
        const http = server.httpServer;
        const done = server.close();
        http?.closeIdleConnections();
        const timer = setTimeout(() => http?.closeAllConnections(), CLOSE_GRACE_MS);
        try {
          await done;
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}

/** Client options for talking to an embedded server. */
export function s3OptionsForEmbedded(s3: EmbeddedS3): S3Options {
  return {
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
  };
}
