// The Python trainer SDK (trainer/python) against the real services: one
// `sadp serve` process (embedded S3 on port 0, scorer and loader on port 0,
// per-job bearer tokens required) and one mutual-TLS `sadp serve` sharing the
// same S3, with datasets written here; then `/usr/bin/python3 -m pytest`
// over trainer/python/tests with the endpoints in the environment. The test
// fails unless pytest exits 0 with every collected test passed (no skips: a
// missing Python package is a failure, not a skip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';
import { packageRoot } from '../../../common/paths.js';
import { buildShards, encodeNpyUint8, type SampleSource } from '../../../loader/index.js';
import { createS3Client } from '../../../storage/index.js';
import {
  cleanEnv,
  listeningLine,
  startEmbeddedServe,
  startService,
  type ServiceProcess,
} from '../../helpers/processes.js';
import { makeCerts } from '../../helpers/certs.js';

const PYTHON = process.env.SADP_TEST_PYTHON ?? '/usr/bin/python3';
const BUCKET = 'data';
const SMALL = 240;
const BIG_ID = 2;
const BIG_BYTES = 5 * 1024 * 1024 + 4321;

/** A minimal 8-bit grayscale PNG (one IDAT, filter 0 on every row). */
function png(width: number, height: number, pixels: Uint8Array): Uint8Array {
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Pixel p of sample i: what the Python tests recompute to check decoding. */
const pixel = (i: number, p: number): number => (i * 37 + p * 11) % 256;

function smallSource(): SampleSource {
  return {
    name: 'python-sdk-small',
    count: () => Promise.resolve(SMALL),
    // eslint-disable-next-line @typescript-eslint/require-await -- generated in memory; the interface is async
    async *samples() {
      for (let i = 0; i < SMALL; i++) {
        const px = new Uint8Array(64);
        for (let p = 0; p < 64; p++) px[p] = pixel(i, p);
        yield {
          key: String(i).padStart(6, '0'),
          members: [
            { ext: 'cls', data: Buffer.from(String(i % 10), 'ascii') },
            { ext: 'npy', data: encodeNpyUint8(px, [8, 8]) },
            { ext: 'png', data: png(8, 8, px) },
            { ext: 'bin', data: Buffer.from(`raw-${i}`, 'ascii') },
          ],
        };
      }
    },
  };
}

function bigPayload(): Buffer {
  const b = Buffer.alloc(BIG_BYTES);
  for (let k = 0; k < b.length; k++) b[k] = (k * 31 + 7) % 251;
  return b;
}

function bigSource(): SampleSource {
  return {
    name: 'python-sdk-big',
    count: () => Promise.resolve(6),
    // eslint-disable-next-line @typescript-eslint/require-await -- generated in memory; the interface is async
    async *samples() {
      for (let i = 0; i < 6; i++) {
        yield {
          key: String(i).padStart(6, '0'),
          members: [
            { ext: 'cls', data: Buffer.from(String(i), 'ascii') },
            { ext: 'bin', data: i === BIG_ID ? bigPayload() : Buffer.alloc(1000, i) },
          ],
        };
      }
    },
  };
}

/** Node + arguments that run the TypeScript rank helper, from dist/ or from source (tsx). */
function tsRankCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts'))
    return [
      process.execPath,
      '--import',
      import.meta.resolve('tsx'),
      here.replace(/python-sdk\.test\.ts$/, 'python-sdk-ts-rank.ts'),
    ];
  return [process.execPath, here.replace(/python-sdk\.test\.js$/, 'python-sdk-ts-rank.js')];
}

test(
  'Python SDK: pytest over trainer/python/tests against sadp serve (embedded S3, token auth) and a mutual-TLS serve',
  { timeout: 900_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'sadp-python-sdk-'));
    const services: ServiceProcess[] = [];
    t.after(async () => {
      await Promise.all(services.map((s) => s.kill()));
      await rm(dir, { recursive: true, force: true });
    });
    await mkdir(join(dir, 'certs'));
    const certs = makeCerts(join(dir, 'certs'));
    const common = [
      '--scorer-listen',
      '127.0.0.1:0',
      '--loader-listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ];
    const {
      proc: serve,
      s3Endpoint,
      scorerAddress,
      loaderAddress,
    } = await startEmbeddedServe({
      dir,
      bucket: BUCKET,
      args: ['--log-level', 'warn'],
      env: { SADP_LOADER_AUTH: 'token' },
    });
    services.push(serve);

    const client = createS3Client({
      endpoint: s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
    });
    try {
      await buildShards(smallSource(), { out: `s3://${BUCKET}/small`, client, shardBytes: 48 * 1024 });
      await buildShards(bigSource(), { out: `s3://${BUCKET}/big`, client, shardBytes: 1024 * 1024 });
    } finally {
      client.destroy();
    }

    const tls = await startService({
      args: [
        'serve',
        '--endpoint',
        s3Endpoint,
        '--access-key-id',
        'S3RVER',
        '--secret-access-key',
        'S3RVER',
        '--state',
        join(dir, 'scorer-tls'),
        '--tls-cert',
        certs.serverCert,
        '--tls-key',
        certs.serverKey,
        '--tls-ca',
        certs.caCert,
        '--require-client-cert',
        ...common,
      ],
      env: { SADP_LOADER_AUTH: 'token' },
      service: 'loader',
    });
    services.push(tls);

    const env = cleanEnv({
      PYTHONPATH: join(packageRoot, 'trainer/python'),
      PYTHONDONTWRITEBYTECODE: '1',
      SADP_TEST_LOADER: loaderAddress,
      SADP_TEST_SCORER: scorerAddress,
      SADP_TEST_TLS_LOADER: String(listeningLine(tls, 'loader').address),
      SADP_TEST_TLS_SCORER: String(listeningLine(tls, 'scorer').address),
      SADP_TEST_TLS_CA: certs.caCert,
      SADP_TEST_TLS_CERT: certs.clientCert,
      SADP_TEST_TLS_KEY: certs.clientKey,
      SADP_TEST_ROGUE_CERT: certs.rogueClientCert,
      SADP_TEST_ROGUE_KEY: certs.rogueClientKey,
      SADP_TEST_SMALL_URL: `s3://${BUCKET}/small/manifest.json`,
      SADP_TEST_SMALL_SIZE: String(SMALL),
      SADP_TEST_BIG_URL: `s3://${BUCKET}/big/manifest.json`,
      SADP_TEST_BIG_ID: String(BIG_ID),
      SADP_TEST_BIG_BYTES: String(BIG_BYTES),
      SADP_TEST_BIG_SHA256: createHash('sha256').update(bigPayload()).digest('hex'),
      SADP_TEST_TS_RANK: JSON.stringify(tsRankCommand()),
    });
    const junit = join(dir, 'pytest.xml');
    const pytest = spawn(
      PYTHON,
      [
        ...['-m', 'pytest', '-p', 'no:cacheprovider', '-rA', '-q', `--junitxml=${junit}`],
        join(packageRoot, 'trainer/python/tests'),
      ],
      { cwd: packageRoot, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    pytest.stdout.on('data', (c: Buffer) => (out += c.toString()));
    pytest.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | string>((resolve) =>
      pytest.once('close', (c, s) => resolve(c ?? s ?? -1)),
    );
    const report = `pytest exited ${code}\n${out}\n--- sadp serve stderr\n${serve.stderr.slice(-40).join('\n')}`;
    // 5 = no tests collected: as much a failure as a failing test.
    assert.equal(code, 0, report);
    // Counts from pytest's own JUnit report, not from its console text.
    const suite = /<testsuite\b([^>]*)>/.exec(await readFile(junit, 'utf8'))?.[1] ?? '';
    const count = (name: string): number => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(suite)?.[1]);
    assert.ok(count('tests') >= 31, `expected the whole suite to run (${suite})\n${report}`);
    for (const k of ['errors', 'failures', 'skipped'])
      assert.equal(count(k), 0, `${k} in pytest's report: ${suite}\n${report}`);
  },
);
