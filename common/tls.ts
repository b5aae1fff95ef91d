// gRPC transport security from the `tls` config section: server credentials
// (TLS, or mutual TLS when a CA is given with requireClientCert) and channel
// credentials for clients (loader -> scorer, trainer -> loader).
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { SadpError, Status } from './errors.js';

export interface TlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  requireClientCert?: boolean | undefined;
}

/** Reads a PEM file; SADP_TLS_FILE (INVALID_ARGUMENT) naming `what` and the path when it cannot. */
export function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new SadpError('SADP_TLS_FILE', `cannot read TLS ${what} file ${path}`, {
      status: Status.INVALID_ARGUMENT,
      cause,
    });
  }
}

export function serverCredentials(tls: TlsFiles | undefined): grpc.ServerCredentials {
  if (!tls || (!tls.cert && !tls.key)) return grpc.ServerCredentials.createInsecure();
  if (!tls.cert || !tls.key) {
    throw new SadpError('SADP_TLS_CONFIG', 'tls.cert and tls.key must be given together', {
      status: Status.INVALID_ARGUMENT,
    });
  }
  if (tls.requireClientCert && !tls.ca) {
    throw new SadpError(
      'SADP_TLS_CONFIG',
      'tls.requireClientCert needs tls.ca to verify client certificates',
      {
        status: Status.INVALID_ARGUMENT,
      },
    );
  }
  return grpc.ServerCredentials.createSsl(
    tls.ca ? readPem(tls.ca, 'CA') : null,
    [{ cert_chain: readPem(tls.cert, 'certificate'), private_key: readPem(tls.key, 'key') }],
    Boolean(tls.requireClientCert),
  );
}

/** Client side: TLS when a CA is given (plus a client certificate for mutual TLS). */
export function channelCredentials(tls: TlsFiles | undefined): grpc.ChannelCredentials {
  if (!tls?.ca) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    readPem(tls.ca, 'CA'),
    tls.key ? readPem(tls.key, 'client key') : null,
    tls.cert ? readPem(tls.cert, 'client certificate') : null,
  );
}
