// The commands as a user runs them: `sadp s3 serve` in its own process,
// `sadp shards build` and `sadp shards index` against it, and SIGTERM.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../../../common/paths.js';
import { openDataset } from '../../../loader/shards/index.js';
import { createS3Client, type S3Client } from '../../../storage/index.js';

function cli(): string[] {
  return fileURLToPath(import.meta.url).endsWith('.ts')
    ? ['--import', 'tsx', join(packageRoot, 'cli/sadp.ts')]
    : [join(packageRoot, 'dist/cli/sadp.js')];
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('SADP_') && !k.startsWith('AWS_')) env[k] = v;
  return { ...env, AWS_EC2_METADATA_DISABLED: 'true' };
}

function sadp(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...cli(), ...args], { cwd: packageRoot, env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
let server: ChildProcess;
let exited: Promise<number | string>;
let endpoint: string;
let creds: string[];
let client: S3Client;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-cli-'));
  server = spawn(
    process.execPath,
    [...cli(), 's3', 'serve', '--data-dir', join(dir, 's3'), '--port', '0', '--bucket', 'cli', 'other'],
    {
      cwd: packageRoot,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sadp s3 serve did not start')), 30_000);
    createInterface({ input: server.stdout as NodeJS.ReadableStream }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
  const info = JSON.parse(line) as {
    event: string;
    endpoint: string;
    accessKeyId: string;
    secretAccessKey: string;
  };
  assert.equal(info.event, 'listening');
  endpoint = info.endpoint;
  creds = [
    '--endpoint',
    endpoint,
    '--access-key-id',
    info.accessKeyId,
    '--secret-access-key',
    info.secretAccessKey,
  ];
  client = createS3Client({ endpoint, accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey });
});

after(async () => {
  client?.destroy();
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  await exited;
  await rm(dir, { recursive: true, force: true });
});

test('build writes shards into the served bucket, index re-indexes them, the dataset opens', async () => {
  const built = await sadp([
    'shards',
    'build',
    '--source',
    'synthetic',
    '--count',
    '200',
    '--mean-bytes',
    '2000',
    '--out',
    's3://cli/ds',
    '--shard-bytes',
    '100KiB',
    ...creds,
  ]);
  assert.equal(built.code, 0, built.stderr);
  const done = JSON.parse(built.stdout.trim()) as { samples: number; shards: number; manifest: string };
  assert.equal(done.samples, 200);
  assert.equal(done.manifest, 's3://cli/ds/manifest.json');
  assert.match(built.stderr, /samples\/s/, 'progress lines with a rate');

  const indexed = await sadp([
    'shards',
    'index',
    `s3://cli/ds/train-{000000..${String(done.shards - 1).padStart(6, '0')}}.tar`,
    '--out',
    's3://other/re/manifest.json',
    ...creds,
  ]);
  assert.equal(indexed.code, 0, indexed.stderr);
  const original = await openDataset('s3://cli/ds/manifest.json', { client });
  const again = await openDataset('s3://other/re/manifest.json', { client });
  assert.equal(again.size, 200);
  assert.deepEqual(again.offsets, original.offsets);
  assert.deepEqual(again.ends, original.ends);
  assert.equal(again.key(123), original.key(123));
});

test('failures print one `error CODE: message` line and exit 1', async () => {
  const missing = await sadp([
    'shards',
    'index',
    's3://cli/nothing.tar',
    '--out',
    join(dir, 'm.json'),
    ...creds,
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error SADP_OBJECT_NOT_FOUND: s3:\/\/cli\/nothing\.tar/m);
  const insecure = await sadp([
    's3',
    'serve',
    '--data-dir',
    join(dir, 'x'),
    '--host',
    '0.0.0.0',
    '--port',
    '0',
  ]);
  assert.equal(insecure.code, 1);
  assert.match(insecure.stderr, /error SADP_INSECURE_BIND/);
});

test('SIGTERM stops `sadp s3 serve` cleanly', async () => {
  server.kill('SIGTERM');
  assert.equal(await exited, 0);
});
