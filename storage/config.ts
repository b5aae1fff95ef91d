// The storage sections of the config (`s3`, `embeddedS3`), with the defaults
// the S3 client and the embedded server use themselves; common/config
// composes them.
import { z } from 'zod';
import { S3_DEFAULTS } from './s3-client.js';

/** Default address of the embedded server in a config (tests pass port 0 instead). */
export const EMBEDDED_S3_DEFAULTS = { host: '127.0.0.1', port: 9000, dataDir: '.sadp/s3' } as const;

export const s3ConfigSchema = z
  .object({
    /** Custom endpoint (MinIO, Ceph RGW, the embedded server); unset = AWS. */
    endpoint: z.string().url().optional(),
    region: z.string().min(1).default(S3_DEFAULTS.region),
    /** Path-style addressing, needed by most S3-compatible servers. */
    forcePathStyle: z.boolean().default(true),
    /** Static credentials; unset = the AWS default chain (env, profile, IRSA, IMDS). */
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    /** Keep-alive sockets per S3 client (the SDK default is 50). */
    maxSockets: z.number().int().min(1).max(4096).default(S3_DEFAULTS.maxSockets),
    requestTimeoutMs: z.number().int().positive().default(S3_DEFAULTS.requestTimeoutMs),
  })
  .strict();

export const embeddedS3ConfigSchema = z
  .object({
    /** Start the embedded S3-compatible server (s3rver) in this process. */
    enabled: z.boolean().default(false),
    dataDir: z.string().min(1).default(EMBEDDED_S3_DEFAULTS.dataDir),
    host: z.string().min(1).default(EMBEDDED_S3_DEFAULTS.host),
    port: z.number().int().min(0).max(65535).default(EMBEDDED_S3_DEFAULTS.port),
    /** The embedded server is a test/default convenience: loopback only unless this is set. */
    allowNonLoopback: z.boolean().default(false),
  })
  .strict();
