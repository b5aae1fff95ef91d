// The one TLS shape: config files are read into TlsOptions, and the server
// and client credential builders check the combinations before gRPC does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSadpError } from '../../common/errors.js';
import {
  channelTls,
  clientTlsCredentials,
  readTls,
  serverCredentials,
  serverTlsCredentials,
} from '../../common/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'sadp-tls-'));
const pem = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

test('readTls reads the named files; no files means no TLS', () => {
  assert.equal(readTls(undefined), undefined);
  assert.equal(readTls({ requireClientCert: true }), undefined);
  const tls = readTls({ cert: pem('c.pem', 'CERT'), key: pem('k.pem', 'KEY'), requireClientCert: false });
  assert.equal(Buffer.from(tls?.cert ?? []).toString(), 'CERT');
  assert.equal(Buffer.from(tls?.key ?? []).toString(), 'KEY');
  assert.equal(tls?.ca, undefined);
  assert.throws(
    () => readTls({ ca: join(dir, 'missing.pem') }),
    (err: unknown) => isSadpError(err, 'SADP_TLS_FILE') && err.message.includes('missing.pem'),
  );
});

test('servers: plaintext without cert and key, SADP_TLS_CONFIG for half a pair or mutual TLS without a CA', () => {
  assert.equal(serverTlsCredentials(undefined)._isSecure(), false);
  assert.equal(serverCredentials({ ca: pem('ca.pem', 'CA') })._isSecure(), false);
  const config = (err: unknown): boolean => isSadpError(err, 'SADP_TLS_CONFIG');
  assert.throws(() => serverTlsCredentials({ cert: Buffer.from('C') }), config);
  assert.throws(() => serverCredentials({ key: pem('k2.pem', 'KEY') }), config);
  assert.throws(
    () => serverTlsCredentials({ cert: Buffer.from('C'), key: Buffer.from('K'), requireClientCert: true }),
    config,
  );
  assert.throws(() => serverTlsCredentials({ requireClientCert: true }), config);
});

test('clients: undefined is plaintext, {} is TLS on the system roots, half a client pair is refused', () => {
  assert.equal(clientTlsCredentials(undefined)._isSecure(), false);
  assert.equal(clientTlsCredentials({})._isSecure(), true);
  assert.throws(
    () => clientTlsCredentials({ cert: Buffer.from('C') }),
    (err: unknown) => isSadpError(err, 'SADP_TLS_CONFIG'),
  );
});

test('channelTls: a client (the loader dialling the scorer, the CLI) uses TLS when the config names a CA', () => {
  assert.equal(channelTls(undefined), undefined);
  assert.equal(channelTls({ cert: pem('c3.pem', 'CERT'), key: pem('k3.pem', 'KEY') }), undefined);
  const tls = channelTls({
    ca: pem('ca3.pem', 'CA'),
    cert: pem('c4.pem', 'CERT'),
    key: pem('k4.pem', 'KEY'),
  });
  assert.equal(Buffer.from(tls?.ca ?? []).toString(), 'CA');
  assert.equal(
    Buffer.from(tls?.cert ?? []).toString(),
    'CERT',
    'its own certificate, for a mutual-TLS scorer',
  );
  assert.equal(Buffer.from(tls?.key ?? []).toString(), 'KEY');
  assert.equal(tls?.requireClientCert, undefined, 'a server-only field');
});
