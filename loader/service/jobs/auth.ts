// Per-job bearer tokens. The scorer keeps only SHA-256 digests of tokens and
// hands the loader the job's digest; the loader hashes the presented token
// and compares digests in constant time (common/bearer.ts).
import type { Metadata } from '@grpc/grpc-js';
import { presentedToken, tokenMatches } from '../../../common/bearer.js';
import { SadpError, Status } from '../../../common/errors.js';
import type { AuthMode } from '../options.js';

/**
 * Checks the call's `authorization` metadata against the job's token digest.
 * Missing or malformed credentials are UNAUTHENTICATED; a well-formed token
 * that is not this job's (another job's, or a wrong one) is PERMISSION_DENIED.
 * Under `none`, a job created with a token is refused (FAILED_PRECONDITION):
 * its creator asked for a check this loader would silently skip.
 */
export function checkJobToken(mode: AuthMode, metadata: Metadata, jobId: string, tokenSha256: string): void {
  if (mode === 'none') {
    if (tokenSha256 === '') return;
    throw new SadpError(
      'SADP_AUTH_DISABLED',
      `job ${jobId} was created with a token but this loader runs with auth 'none' and would not check it; start the loader with --auth token`,
      { status: Status.FAILED_PRECONDITION },
    );
  }
  const token = presentedToken(metadata, `job ${jobId}`);
  if (tokenSha256 === '') {
    throw new SadpError(
      'SADP_PERMISSION_DENIED',
      `job ${jobId} has no token; the loader requires token auth`,
      {
        status: Status.PERMISSION_DENIED,
      },
    );
  }
  if (!tokenMatches(token, tokenSha256)) {
    throw new SadpError('SADP_PERMISSION_DENIED', `the presented token is not valid for job ${jobId}`, {
      status: Status.PERMISSION_DENIED,
    });
  }
}
