// Where the lean GET path sends an S3 client's object reads: the origin and
// path prefix the SDK would use (path-style for custom endpoints unless told
// otherwise, virtual-hosted on AWS), one SignedGetter (one socket pool) per
// client and origin. Endpoint variants the SDK resolves through its rules
// (FIPS, dual-stack, accelerate, other partitions) keep the SDK's GetObject.
import type { S3Client } from '@aws-sdk/client-s3';
import { S3_DEFAULTS, clientMaxSockets } from './s3-client.js';
import { createSignedGetter, encodeKeyPath, type SignedGetter } from './signed-get.js';

export interface GetRoute {
  getter: SignedGetter;
  /** URI-encoded path prefix of the bucket's objects, e.g. `/bucket` or `` on a virtual host. */
  base: string;
}

const getters = new WeakMap<S3Client, Map<string, SignedGetter>>();

/** DNS-safe bucket names can be virtual hosts (no dots: TLS wildcards do not match them). */
const VIRTUAL_HOST_BUCKET = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

export async function resolveGetRoute(client: S3Client, bucket: string): Promise<GetRoute | undefined> {
  const c = client.config;
  if ((await c.useFipsEndpoint()) || (await c.useDualstackEndpoint()) || c.useAccelerateEndpoint) {
    return undefined;
  }
  const region = await c.region();
  let origin: string;
  let base: string;
  if (c.isCustomEndpoint && c.endpoint) {
    const ep = await c.endpoint();
    const port = ep.port === undefined ? '' : `:${ep.port}`;
    const prefix = (ep.path ?? '').replace(/\/+$/, '');
    if (c.forcePathStyle) {
      origin = `${ep.protocol}//${ep.hostname}${port}`;
      base = `${prefix}/${encodeKeyPath(bucket)}`;
    } else {
      origin = `${ep.protocol}//${bucket}.${ep.hostname}${port}`;
      base = prefix;
    }
  } else {
    if (!/^[a-z]{2}-[a-z]+-\d$/.test(region) || region.startsWith('cn-')) return undefined;
    if (!c.forcePathStyle && VIRTUAL_HOST_BUCKET.test(bucket)) {
      origin = `https://${bucket}.s3.${region}.amazonaws.com`;
      base = '';
    } else {
      origin = `https://s3.${region}.amazonaws.com`;
      base = `/${encodeKeyPath(bucket)}`;
    }
  }
  let perClient = getters.get(client);
  if (!perClient) {
    perClient = new Map();
    getters.set(client, perClient);
  }
  let getter = perClient.get(origin);
  if (!getter) {
    getter = createSignedGetter({
      origin,
      region,
      credentials: () => c.credentials(),
      // The client's own socket bound (s3.maxSockets), as its SDK requests have.
      connections: clientMaxSockets(client) ?? S3_DEFAULTS.maxSockets,
      connectTimeoutMs: S3_DEFAULTS.connectionTimeoutMs,
    });
    perClient.set(origin, getter);
  }
  return { getter, base };
}
