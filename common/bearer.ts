// Bearer tokens on gRPC calls, shared by the loader (per-job trainer tokens)
// and the scorer (admin and job-scoped roles). Services keep only SHA-256
// digests; a presented token is hashed and compared in constant time, so
// neither the token nor the comparison leaks through logs or timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { SadpError, Status } from './errors.js';

const BEARER = /^Bearer ([\x21-\x7e]+)$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Hex SHA-256 of a token, as stored by the scorer and compared by the services. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * The token of the call's `authorization: Bearer <token>` metadata.
 * UNAUTHENTICATED (SADP_UNAUTHENTICATED) naming `what` when it is missing or
 * malformed; the token itself is never part of a message.
 */
export function presentedToken(metadata: grpc.Metadata, what: string): string {
  const values = metadata.get('authorization');
  if (values.length === 0) {
    throw new SadpError('SADP_UNAUTHENTICATED', `${what} requires 'authorization: Bearer <token>' metadata`, {
      status: Status.UNAUTHENTICATED,
    });
  }
  const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
  if (!match) {
    throw new SadpError(
      'SADP_UNAUTHENTICATED',
      `malformed authorization metadata for ${what}: expected 'Bearer <token>'`,
      { status: Status.UNAUTHENTICATED },
    );
  }
  return match[1] as string;
}

/** Constant-time: does `token` hash to the hex digest `sha256`? False for a malformed or empty digest. */
export function tokenMatches(token: string, sha256: string): boolean {
  if (!SHA256_HEX.test(sha256)) return false;
  const presented = createHash('sha256').update(token, 'utf8').digest();
  return timingSafeEqual(presented, Buffer.from(sha256, 'hex'));
}

/**
 * A client interceptor adding `authorization: Bearer <token>` to every call.
 * An interceptor rather than call credentials: grpc-js refuses call
 * credentials on plaintext channels (loopback, service mesh).
 */
export function bearerInterceptor(token: string): grpc.Interceptor {
  if (!BEARER.test(`Bearer ${token}`)) {
    throw new SadpError(
      'SADP_INVALID_TOKEN',
      'a bearer token must be 1+ printable ASCII characters, no spaces',
      {
        status: Status.INVALID_ARGUMENT,
      },
    );
  }
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
