// The `scorer` section of the config: what a deployment sets, with the
// scorer's defaults; common/config composes it.
import { z } from 'zod';
import { hostPortSchema } from '../../common/host-port.js';

/** The scorer service's defaults: its address (the loader and the CLI dial it by default) and state. */
export const SCORER_DEFAULTS = {
  listen: '127.0.0.1:50051',
  state: '.sadp/scorer',
  auth: 'none',
} as const;

export const scorerConfigSchema = z
  .object({
    listen: hostPortSchema.default(SCORER_DEFAULTS.listen),
    /** Where jobs, score logs, snapshots and plans live: a directory or s3://bucket/prefix. */
    state: z.string().min(1).default(SCORER_DEFAULTS.state),
    /** 'token': every call needs a bearer token with its role (admin, or job-scoped). */
    auth: z.enum(['none', 'token']).default(SCORER_DEFAULTS.auth),
    /** Admin credential (create jobs); required with auth 'token'. Keep it in a Secret. */
    adminToken: z.string().min(1).optional(),
    /** Credential loaders present: the job-scoped role for every job. */
    loaderToken: z.string().min(1).optional(),
  })
  .strict();
