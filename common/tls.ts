// gRPC transport security, one shape for every service and client: TlsOptions
// holds PEM contents (the scorer and loader servers, the scorer client and
// so the loader's scorer channel, the trainer SDK and the CLI all take it;
// gRPC credentials are built from it here and nowhere else). The `tls` config section
// names the same fields as file paths (TlsFiles); readTls turns one into the
// other.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { SadpError, Status } from './errors.js';

/**
 * PEM contents. A server needs `cert` and `key`, plus `ca` and
 * `requireClientCert` for mutual TLS. A client verifies the server with `ca`
 * (unset: the system roots) and presents `cert` and `key` for mutual TLS.
 */
export interface TlsOptions {
  cert?: Uint8Array | undefined;
  key?: Uint8Array | undefined;
  ca?: Uint8Array | undefined;
  /** Server only: reject clients without a certificate signed by `ca`; default false. */
  requireClientCert?: boolean | undefined;
}

/** The `tls` config section: TlsOptions' fields as PEM file paths. */
export interface TlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  requireClientCert?: boolean | undefined;
}

/** The `tls` config section: TlsFiles, as the config file and SADP_TLS_* variables give it. */
export const tlsConfigSchema = z
  .object({
    /** PEM files. With cert+key the gRPC servers listen with TLS. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** CA bundle to verify clients (mutual TLS) or servers. */
    ca: z.string().min(1).optional(),
    requireClientCert: z.boolean().default(false),
  })
  .strict();

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

/** Reads the files a TlsFiles names (undefined when it names none). */
export function readTls(files: TlsFiles | undefined): TlsOptions | undefined {
  if (!files || (!files.cert && !files.key && !files.ca)) return undefined;
  return {
    cert: files.cert ? readPem(files.cert, 'certificate') : undefined,
    key: files.key ? readPem(files.key, 'key') : undefined,
    ca: files.ca ? readPem(files.ca, 'CA') : undefined,
    requireClientCert: files.requireClientCert,
  };
}

function tlsConfigError(message: string): SadpError {
  return new SadpError('SADP_TLS_CONFIG', `invalid TLS configuration: ${message}`, {
    status: Status.INVALID_ARGUMENT,
  });
}

/** Server side: plaintext without `cert` and `key`, else TLS (mutual with `ca` + `requireClientCert`). */
export function serverTlsCredentials(tls: TlsOptions | undefined): grpc.ServerCredentials {
  if (!tls || (!tls.cert && !tls.key)) {
    if (tls?.requireClientCert) throw tlsConfigError('tls.requireClientCert needs tls.cert and tls.key');
    return grpc.ServerCredentials.createInsecure();
  }
  if (!tls.cert || !tls.key) throw tlsConfigError('tls.cert and tls.key must be given together');
  if (tls.requireClientCert && !tls.ca) {
    throw tlsConfigError('tls.requireClientCert needs tls.ca to verify client certificates');
  }
  return grpc.ServerCredentials.createSsl(
    tls.ca ? Buffer.from(tls.ca) : null,
    [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }],
    Boolean(tls.requireClientCert),
  );
}

/** Client side: plaintext when `tls` is undefined, else TLS verified with `ca` (unset: system roots). */
export function clientTlsCredentials(tls: TlsOptions | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  if (Boolean(tls.cert) !== Boolean(tls.key)) {
    throw tlsConfigError('a client certificate and its key must be given together');
  }
  return grpc.credentials.createSsl(
    tls.ca ? Buffer.from(tls.ca) : null,
    tls.key ? Buffer.from(tls.key) : null,
    tls.cert ? Buffer.from(tls.cert) : null,
  );
}

/** Server credentials from the `tls` config section (file paths). */
export function serverCredentials(files: TlsFiles | undefined): grpc.ServerCredentials {
  // Check the combination before reading files, so a missing key names the config, not a path.
  if (files && Boolean(files.cert) !== Boolean(files.key)) {
    throw tlsConfigError('tls.cert and tls.key must be given together');
  }
  return serverTlsCredentials(readTls(files));
}

/**
 * A client's TlsOptions from the `tls` config section: TLS when a CA is given
 * (plus this service's certificate for mutual TLS: a server with
 * requireClientCert refuses a client that presents none), else undefined
 * (plaintext); one shared config serves a service's listener and its
 * outgoing channels.
 */
export function channelTls(files: TlsFiles | undefined): TlsOptions | undefined {
  if (!files?.ca) return undefined;
  return readTls({ ca: files.ca, cert: files.cert, key: files.key });
}

/** Client credentials from the `tls` config section (see channelTls). */
export function channelCredentials(files: TlsFiles | undefined): grpc.ChannelCredentials {
  return clientTlsCredentials(channelTls(files));
}
