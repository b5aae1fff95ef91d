// The CLI side of scorer access control and manifest validation, as
// processes: `sadp scorer` refuses tokens it would not check, create-job
// needs the admin token against `--auth token` (from --auth-token-file or
// SADP_SCORER_ADMIN_TOKEN), and create-job opens the manifest first, taking
// N from it or checking --size against it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { buildShards, syntheticSource } from '../../loader/shards/index.js';
import { LoaderCallError, createLoaderClient } from '../../trainer/client/index.js';
import { runSadp, startService, type ServiceProcess } from '../helpers/processes.js';

const ADMIN = 'admin-0123456789abcdef';
const COUNT = 77;
let dir: string;
let scorer: ServiceProcess;
let manifest: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-auth-cli-'));
  await buildShards(syntheticSource({ count: COUNT, meanBytes: 500, seed: 1, classes: 3 }), {
    out: join(dir, 'ds'),
    shardBytes: 16 * 1024,
  });
  manifest = join(dir, 'ds', 'manifest.json');
  await writeFile(join(dir, 'admin.token'), `${ADMIN}\n`);
  await writeFile(join(dir, 'wrong.token'), 'not-the-admin\n');
  scorer = await startService({
    args: ['scorer', '--listen', '127.0.0.1:0', '--state', join(dir, 'state'), '--auth', 'token'],
    env: { SADP_SCORER_ADMIN_TOKEN: ADMIN },
  });
});
after(async () => {
  await scorer?.stop();
  await rm(dir, { recursive: true, force: true });
});

const create = (...extra: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> =>
  runSadp([
    'scorer',
    'create-job',
    '--address',
    `127.0.0.1:${scorer.port}`,
    '--prune-ratio',
    '0.5',
    '--epochs',
    '2',
    ...extra,
  ]);

/** `sadp <args> --auth token` with no admin token configured refuses to start. */
async function refusedWithoutAdminToken(args: string[]): Promise<void> {
  const r = await runSadp([...args, '--auth', 'token']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /SADP_AUTH_CONFIG/);
}

test('sadp scorer refuses admin or loader tokens under --auth none (they would not be checked)', async () => {
  const envs: Record<string, string>[] = [
    { SADP_SCORER_ADMIN_TOKEN: ADMIN },
    { SADP_SCORER_LOADER_TOKEN: 'x' },
  ];
  for (const env of envs) {
    const r = await runSadp(['scorer', '--listen', '127.0.0.1:0', '--state', join(dir, 'refused')], { env });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SADP_AUTH_DISABLED/);
    assert.equal(r.stderr.includes(ADMIN), false, 'the token is not printed');
  }
  await refusedWithoutAdminToken(['scorer', '--listen', '127.0.0.1:0', '--state', join(dir, 'r2')]);
});

test('create-job needs the admin token', async () => {
  const none = await create('--job', 'j0', '--dataset', manifest);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /UNAUTHENTICATED/);
  const wrong = await create(
    '--job',
    'j0',
    '--dataset',
    manifest,
    '--auth-token-file',
    join(dir, 'wrong.token'),
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /PERMISSION_DENIED.*admin credential/);
  const ok = await create(
    '--job',
    'j1',
    '--dataset',
    manifest,
    '--auth-token-file',
    join(dir, 'admin.token'),
  );
  assert.equal(ok.code, 0, ok.stderr);
  const viaEnv = await runSadp(
    ['scorer', 'describe', '--address', `127.0.0.1:${scorer.port}`, '--job', 'j1'],
    { env: { SADP_SCORER_ADMIN_TOKEN: ADMIN } },
  );
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
});

test('create-job takes N from the manifest, checks --size, and fails on a missing or bad manifest', async () => {
  const token = ['--auth-token-file', join(dir, 'admin.token')];
  const ok = await create('--job', 'n-from-manifest', '--dataset', manifest, ...token);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { spec: { datasetSize: number } }).spec.datasetSize, COUNT);

  const mismatch = await create(
    '--job',
    'n-bad',
    '--dataset',
    manifest,
    '--size',
    String(COUNT + 1),
    ...token,
  );
  assert.equal(mismatch.code, 1);
  assert.match(
    mismatch.stderr,
    new RegExp(`SADP_DATASET_MISMATCH|--size ${COUNT + 1} but the manifest .* holds ${COUNT}`),
  );

  const missing = await create(
    '--job',
    'n-missing',
    '--dataset',
    join(dir, 'nope', 'manifest.json'),
    ...token,
  );
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /manifest .*nope\/manifest.json not found/);

  await writeFile(join(dir, 'bad.json'), '{"version": 1, "shards": [');
  const bad = await create('--job', 'n-bad-json', '--dataset', join(dir, 'bad.json'), ...token);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad\.json/);

  const noSize = await create('--job', 'n-none', ...token);
  assert.equal(noSize.code, 1);
  assert.match(noSize.stderr, /--size is required without --dataset/);

  const listed = await runSadp(
    ['scorer', 'describe', '--address', `127.0.0.1:${scorer.port}`, '--job', 'n-bad'],
    { env: { SADP_SCORER_ADMIN_TOKEN: ADMIN } },
  );
  assert.equal(listed.code, 1, 'no job was created from a bad manifest');
});

test('sadp serve --auth token: the scorer needs the admin token, the in-process loader the job token', async () => {
  await refusedWithoutAdminToken([
    'serve',
    '--scorer-listen',
    '127.0.0.1:0',
    '--loader-listen',
    '127.0.0.1:0',
    '--state',
    join(dir, 'serve-missing'),
  ]);

  const serve = await startService({
    args: [
      'serve',
      '--scorer-listen',
      '127.0.0.1:0',
      '--loader-listen',
      '127.0.0.1:0',
      '--state',
      join(dir, 'serve-state'),
      '--allow-local-root',
      dir,
      '--auth',
      'token',
    ],
    env: { SADP_SCORER_ADMIN_TOKEN: ADMIN },
    service: 'loader',
  });
  try {
    const scorerLine = serve.stdout
      .map((l) => (l.startsWith('{') ? (JSON.parse(l) as { service?: string; port?: number }) : {}))
      .find((m) => m.service === 'scorer');
    const scorerAddress = `127.0.0.1:${scorerLine?.port}`;
    const createArgs = [
      'scorer',
      'create-job',
      '--address',
      scorerAddress,
      '--job',
      'served',
      '--prune-ratio',
      '0.5',
      '--epochs',
      '1',
      '--dataset',
      manifest,
      '--token',
      'job-token-1',
    ];
    const refused = await runSadp(createArgs);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /UNAUTHENTICATED/);
    const created = await runSadp(createArgs, { env: { SADP_SCORER_ADMIN_TOKEN: ADMIN } });
    assert.equal(created.code, 0, created.stderr);

    // The in-process loader reaches the scorer with its own credential and
    // checks the job's token (loader auth token).
    const loader = createLoaderClient({ address: `127.0.0.1:${serve.port}`, reconnect: { maxAttempts: 1 } });
    try {
      await assert.rejects(
        loader.epochInfo({ job: 'served', epoch: 0, worldSize: 1, batchSize: 8 }),
        (err: unknown) => err instanceof LoaderCallError && err.status === grpc.status.UNAUTHENTICATED,
      );
    } finally {
      loader.close();
    }
    const withToken = createLoaderClient({ address: `127.0.0.1:${serve.port}`, token: 'job-token-1' });
    try {
      const info = await withToken.epochInfo({ job: 'served', epoch: 0, worldSize: 1, batchSize: 8 });
      assert.equal(info.datasetSize, COUNT);
    } finally {
      withToken.close();
    }
  } finally {
    await serve.stop();
  }
});
