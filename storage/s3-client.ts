// One way to build an S3 client for AWS S3 and S3-compatible servers (MinIO,
// Ceph RGW, the embedded s3rver).
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';

import { NodeHttpHandler } from '@smithy/node-http-handler';
import { SadpError, Status } from '../common/errors.js';

/** What an AWS credential provider returns (the SDK's AwsCredentialIdentity). */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When temporary credentials stop working; the SDK refreshes 5 minutes before. */
  expiration?: Date;
}

export interface S3Options {
  /** Custom endpoint, e.g. `http://127.0.0.1:9000`; default AWS S3. */
  endpoint?: string;
  /**
   * Default: the SDK's resolution ($AWS_REGION, ~/.aws/config), else
   * `us-east-1` (what S3-compatible servers expect).
   */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** Static credentials; default: the AWS default chain (env, profile, IMDS, IRSA). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /**
   * A credential provider (e.g. from @aws-sdk/credential-providers); used when
   * no static keys are given. The SDK memoizes it and calls it again when the
   * credentials it returned are within 5 minutes of their expiration; the
   * lean GET path asks the same memoized provider before every GET.
   */
  credentialProvider?: () => Promise<S3Credentials>;
  /** SDK attempts per request including the first; default 3. The range reader sets 1 and retries itself. */
  maxAttempts?: number;
  /** Keep-alive sockets per client; default 256 (the SDK's own default is 50). */
  maxSockets?: number;
  /**
   * Socket idle timeout until the response headers; default 30 s. It does not
   * bound the body: body readers need their own idle timer.
   */
  requestTimeoutMs?: number;
  /** TCP connect timeout; default 5 s. */
  connectionTimeoutMs?: number;
}

export const S3_DEFAULTS = {
  maxAttempts: 3,
  // The range reader's default concurrency (256 GETs in flight), so GETs never
  // queue for a socket; sockets open only as GETs need them.
  maxSockets: 256,
  requestTimeoutMs: 30_000,
  connectionTimeoutMs: 5_000,
  region: 'us-east-1',
} as const;

/** An endpoint without user info, for messages. */
function endpointLabel(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '(invalid endpoint)';
  }
}

function checkEndpoint(endpoint: string): void {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  // Never echo an endpoint that might embed credentials.
  const shown = endpoint.includes('@') ? '(redacted)' : JSON.stringify(endpoint);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new SadpError('SADP_INVALID_URL', `S3 endpoint ${shown} is not an http(s) URL`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
  if (url.username || url.password) {
    throw new SadpError(
      'SADP_INVALID_URL',
      'S3 endpoint must not contain user info; pass credentials as accessKeyId/secretAccessKey or via the AWS chain',
      { status: Status.INVALID_ARGUMENT },
    );
  }
}

const endpoints = new WeakMap<S3Client, string>();
/** Each client's socket bound, so the lean GET path's pool (s3-get-route.ts) keeps the same one. */
const socketBounds = new WeakMap<S3Client, number>();

/** The maxSockets a client built by createS3Client was given. */
export function clientMaxSockets(client: S3Client): number | undefined {
  return socketBounds.get(client);
}

/** Where a client built by createS3Client sends its requests, for messages (no user info). */
export function clientEndpointLabel(client: S3Client): string | undefined {
  return endpoints.get(client);
}

export function createS3Client(options: S3Options = {}): S3Client {
  if (options.endpoint !== undefined) checkEndpoint(options.endpoint);
  const maxSockets = options.maxSockets ?? S3_DEFAULTS.maxSockets;
  const agentOptions = { keepAlive: true, maxSockets };
  const credentials =
    options.accessKeyId && options.secretAccessKey
      ? {
          accessKeyId: options.accessKeyId,
          secretAccessKey: options.secretAccessKey,
          ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
        }
      : options.credentialProvider;
  const client = new S3Client({
    // The SDK's own region chain does not fall back; S3-compatible servers
    // ignore the region but the signer needs one. AWS_* variables belong to
    // the SDK's configuration surface, so they are read here, next to it.
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? S3_DEFAULTS.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    ...(credentials ? { credentials } : {}),
    maxAttempts: options.maxAttempts ?? S3_DEFAULTS.maxAttempts,
    // Since v3.729 the SDK adds CRC32 checksums to every upload and validates
    // them on download; many S3-compatible servers (s3rver included) reject or
    // do not return them. Only send them where S3 requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      requestTimeout: options.requestTimeoutMs ?? S3_DEFAULTS.requestTimeoutMs,
      connectionTimeout: options.connectionTimeoutMs ?? S3_DEFAULTS.connectionTimeoutMs,
    }),
  });
  socketBounds.set(client, maxSockets);
  endpoints.set(
    client,
    options.endpoint === undefined ? 'AWS S3 (no custom endpoint set)' : endpointLabel(options.endpoint),
  );
  return client;
}
