// Per-job bearer tokens. The scorer keeps only SHA-256 digests of tokens and
// hands the loader the job's digest; the loader hashes the presented token
// and compares digests in constant time, so neither the token nor the
// comparison leaks through logs or timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { SadpError, Status } from '../../common/errors.js';
import type { AuthMode } from './options.js';

const BEARER = /^Bearer ([\x21-\x7e]+)$/;

/**
 * Checks the call's `authorization` metadata against the job's token digest.
 * Missing or malformed credentials are UNAUTHENTICATED; a well-formed token
 * that is not this job's (another job's, or a wrong one) is PERMISSION_DENIED.
 */
export function checkJobToken(mode: AuthMode, metadata: Metadata, jobId: string, tokenSha256: string): void {
  if (mode === 'none') return;
  const values = metadata.get('authorization');
  if (values.length === 0) {
    throw new SadpError(
      'SADP_UNAUTHENTICATED',
      `job ${jobId} requires 'authorization: Bearer <token>' metadata`,
      {
        status: Status.UNAUTHENTICATED,
      },
    );
  }
  const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
  if (!match) {
    throw new SadpError(
      'SADP_UNAUTHENTICATED',
      `malformed authorization metadata for job ${jobId}: expected 'Bearer <token>'`,
      {
        status: Status.UNAUTHENTICATED,
      },
    );
  }
  if (!/^[0-9a-f]{64}$/.test(tokenSha256)) {
    throw new SadpError(
      'SADP_PERMISSION_DENIED',
      `job ${jobId} has no token; the loader requires token auth`,
      {
        status: Status.PERMISSION_DENIED,
      },
    );
  }
  const presented = createHash('sha256')
    .update(match[1] as string, 'utf8')
    .digest();
  const expected = Buffer.from(tokenSha256, 'hex');
  if (!timingSafeEqual(presented, expected)) {
    throw new SadpError('SADP_PERMISSION_DENIED', `the presented token is not valid for job ${jobId}`, {
      status: Status.PERMISSION_DENIED,
    });
  }
}
