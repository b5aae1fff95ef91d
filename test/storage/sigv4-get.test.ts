// The lean GET signer against aws4 (a general SigV4 signer) on random
// requests: keys with characters that need encoding, with and without a
// session token and If-Match, several regions and hosts, and one signer kept
// across days and rotated secrets (its cached signing key must follow both).
// signed-get.test.ts checks the same signatures against the AWS SDK's signer
// and against s3rver.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import aws4 from 'aws4';
import { canonicalS3Path, createGetSigner, EMPTY_SHA256 } from '../../storage/sigv4-get.js';
import { encodeKeyPath } from '../../storage/signed-get.js';
import { mulberry32 } from '../helpers/random.js';

const PIECES = [
  'ds',
  'train-000001.tar',
  'deep dir',
  "naïve+ (1)*'!~",
  'a%2Fb',
  'x=y&z',
  '日本',
  'sp  ace',
  '..',
];

function pick<T>(random: () => number, xs: readonly T[]): T {
  return xs[Math.floor(random() * xs.length)] as T;
}

function aws4Authorization(
  host: string,
  path: string,
  region: string,
  creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  amzDate: string,
  ifMatch: string | undefined,
): string {
  const headers: Record<string, string> = {
    Host: host,
    'X-Amz-Date': amzDate,
    'X-Amz-Content-Sha256': EMPTY_SHA256,
    Range: 'bytes=0-99',
  };
  if (ifMatch !== undefined) headers['If-Match'] = ifMatch;
  const signed = aws4.sign({ host, path, method: 'GET', service: 's3', region, headers }, creds);
  return (signed.headers as Record<string, string>).Authorization as string;
}

test('GET signatures equal aws4 on random keys, tokens, ETags, regions, days and rotated secrets', () => {
  const random = mulberry32(7);
  const hosts = ['127.0.0.1:9210', 'my-bucket.s3.eu-west-1.amazonaws.com', 's3.us-east-1.amazonaws.com'];
  const regions = ['eu-west-1', 'us-east-1', 'ap-southeast-2'];
  const signers = new Map<string, ReturnType<typeof createGetSigner>>();
  let secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  let checked = 0;
  for (let i = 0; i < 400; i++) {
    const host = pick(random, hosts);
    const region = pick(random, regions);
    const id = `${host} ${region}`;
    const signer = signers.get(id) ?? createGetSigner(host, region);
    signers.set(id, signer);
    // Secrets rotate and days change under a signer that has cached a key.
    if (random() < 0.1) secret = `secret/${Math.floor(random() * 1e9)}+=`;
    const day = 1 + Math.floor(random() * 3);
    const amzDate = `202612${String(day).padStart(2, '0')}T${String(Math.floor(random() * 24)).padStart(2, '0')}3456Z`;
    const pieces = Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(random, PIECES));
    const path = `/${encodeKeyPath('my-bucket')}/${encodeKeyPath(pieces.join('/'))}`;
    const creds = {
      accessKeyId: random() < 0.5 ? 'AKIDEXAMPLE' : 'ASIAEXAMPLE',
      secretAccessKey: secret,
      ...(random() < 0.5 ? { sessionToken: `tok/en+${Math.floor(random() * 1e6)}==` } : {}),
    };
    const ifMatch = random() < 0.7 ? `"${Math.floor(random() * 1e12).toString(16)}-3"` : undefined;
    const got = signer.authorization(path, creds, amzDate, ifMatch);
    assert.equal(got, aws4Authorization(host, path, region, creds, amzDate, ifMatch), `${path} ${amzDate}`);
    checked++;
  }
  assert.equal(checked, 400);
});

test('canonical S3 paths: each piece decoded once and re-encoded, slashes kept, no dot-segment removal', () => {
  assert.equal(canonicalS3Path(''), '/');
  assert.equal(canonicalS3Path('/b/a%20b/c'), '/b/a%20b/c');
  // Characters a URL may leave unencoded are encoded as SigV4 wants them.
  assert.equal(canonicalS3Path("/b/it's(1)*!"), '/b/it%27s%281%29%2A%21');
  assert.equal(canonicalS3Path('/b/x+y'), '/b/x%20y');
  assert.equal(canonicalS3Path('/b/../c/./d'), '/b/../c/./d');
  assert.equal(canonicalS3Path('b/c'), '/b/c');
});
