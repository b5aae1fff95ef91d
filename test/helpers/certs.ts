// Test certificates made with the openssl CLI at test time: a CA, a server
// certificate for 127.0.0.1/localhost, a client certificate signed by the CA,
// and a second ("rogue") CA with its own client certificate. EC P-256 keys:
// quick to generate. Every certificate is valid for one day.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCaCert: string;
  rogueClientCert: string;
  rogueClientKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(cwd: string, name: string): void {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name], cwd);
}

function ca(cwd: string, name: string): void {
  key(cwd, `${name}.key`);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
    ],
    cwd,
  );
}

function leaf(cwd: string, name: string, caName: string, ext: string): void {
  key(cwd, `${name}.key`);
  openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], cwd);
  writeFileSync(join(cwd, `${name}.ext`), ext);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}.pem`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    ],
    cwd,
  );
}

/**
 * Generates the set in `dir`. The server certificate also allows client
 * authentication (as cert-manager issues them with both usages), so a
 * service can present it when it dials another service.
 */
export function makeCerts(dir: string): CertFiles {
  ca(dir, 'ca');
  ca(dir, 'rogue-ca');
  leaf(
    dir,
    'server',
    'ca',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  leaf(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf(dir, 'rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string): string => join(dir, f);
  return {
    dir,
    caCert: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    rogueCaCert: p('rogue-ca.pem'),
    rogueClientCert: p('rogue-client.pem'),
    rogueClientKey: p('rogue-client.key'),
  };
}

export const read = (path: string): Buffer => readFileSync(path);
