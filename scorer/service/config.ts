// The `scorer` section of the config: what a deployment sets, with the
// scorer's defaults; common/config composes it.
import { z } from 'zod';
import { hostPortSchema } from '../../common/host-port.js';

export const scorerConfigSchema = z
  .object({
    listen: hostPortSchema.default('127.0.0.1:50051'),
    /** Where jobs, score logs, snapshots and plans live: a directory or s3://bucket/prefix. */
    state: z.string().min(1).default('.sadp/scorer'),
    /** 'token': every call needs a bearer token with its role (admin, or job-scoped). */
    auth: z.enum(['none', 'token']).default('none'),
    /** Admin credential (create jobs); required with auth 'token'. Keep it in a Secret. */
    adminToken: z.string().min(1).optional(),
    /** Credential loaders present: the job-scoped role for every job. */
    loaderToken: z.string().min(1).optional(),
  })
  .strict();
