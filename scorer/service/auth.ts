// Access control of the scorer, two roles over bearer tokens (common/bearer.ts):
//  - admin: creates jobs and may do everything else (operators, `sadp scorer
//    create-job`);
//  - job-scoped: describe, plans, score reports and stats of one job. Held by
//    the job's own token (the one trainers present to the loader), or for
//    every job by the loader's credential (a loader serves many jobs).
// Missing or malformed credentials are UNAUTHENTICATED, a token without the
// role or scope PERMISSION_DENIED. An unknown job answers PERMISSION_DENIED,
// not NOT_FOUND, to a caller that is neither admin nor loader, so job ids
// cannot be probed. Tokens are held as SHA-256 digests only.
import type { Metadata } from '@grpc/grpc-js';
import { presentedToken, tokenDigest, tokenMatches } from '../../common/bearer.js';
import { SadpError, Status } from '../../common/errors.js';

export type ScorerAuthMode = 'none' | 'token';

export interface ScorerAuthOptions {
  /** `token`: every call needs a bearer token with the call's role. Default `none`. */
  mode?: ScorerAuthMode;
  /** The admin credential. Required under `token`. */
  adminToken?: string;
  /** The loaders' credential: the job-scoped role for every job. Optional. */
  loaderToken?: string;
}

export type Caller = 'admin' | 'loader' | 'job' | 'anyone';

export interface ScorerAuth {
  readonly mode: ScorerAuthMode;
  /** CreateJob: the admin role. */
  admin(metadata: Metadata, what: string): void;
  /**
   * Per-job calls: admin, loader, or the job's own token. `jobTokenSha256`
   * is undefined for an unknown job. Returns who the caller is.
   */
  job(metadata: Metadata, jobId: string, jobTokenSha256: string | undefined): Caller;
}

const denied = (message: string): SadpError =>
  new SadpError('SADP_PERMISSION_DENIED', message, { status: Status.PERMISSION_DENIED });

export function createScorerAuth(options: ScorerAuthOptions = {}): ScorerAuth {
  const mode = options.mode ?? 'none';
  if (mode !== 'none' && mode !== 'token') {
    throw new SadpError('SADP_INVALID_OPTION', `scorer auth must be 'none' or 'token', got ${String(mode)}`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
  if (mode === 'token' && !options.adminToken) {
    throw new SadpError(
      'SADP_AUTH_CONFIG',
      "scorer auth 'token' needs an admin token (scorer.adminToken, SADP_SCORER_ADMIN_TOKEN)",
      { status: Status.INVALID_ARGUMENT },
    );
  }
  if (mode === 'none' && (options.adminToken || options.loaderToken)) {
    throw new SadpError(
      'SADP_AUTH_DISABLED',
      "scorer tokens are configured but scorer auth is 'none', so they would not be checked; set scorer auth to 'token' (--auth token) or remove the tokens",
      { status: Status.INVALID_ARGUMENT },
    );
  }
  const adminSha = options.adminToken ? tokenDigest(options.adminToken) : '';
  const loaderSha = options.loaderToken ? tokenDigest(options.loaderToken) : '';
  return {
    mode,
    admin(metadata, what) {
      if (mode === 'none') return;
      const token = presentedToken(metadata, what);
      if (!tokenMatches(token, adminSha)) throw denied(`${what} needs the scorer's admin credential`);
    },
    job(metadata, jobId, jobTokenSha256) {
      if (mode === 'none') return 'anyone';
      const token = presentedToken(metadata, `job ${jobId}`);
      if (tokenMatches(token, adminSha)) return 'admin';
      if (tokenMatches(token, loaderSha)) return 'loader';
      if (jobTokenSha256 !== undefined && tokenMatches(token, jobTokenSha256)) return 'job';
      throw denied(`the presented token is not valid for job ${jobId}`);
    },
  };
}
