// The first-run friction a new user met, each fixed and checked through the
// real binary: `sadp serve` with the embedded S3 server, shards built and
// indexed by the CLI, jobs created without restating what the manifest says.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSadp, startEmbeddedServe, type ServiceProcess } from '../helpers/processes.js';

let dir: string;
let serve: ServiceProcess;
let scorer: string;
let endpoint: string;
const creds = ['--access-key-id', 'S3RVER', '--secret-access-key', 'S3RVER'];
const noAwsChain = {
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ACCESS_KEY_ID: '',
  AWS_SECRET_ACCESS_KEY: '',
  AWS_PROFILE: '',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
  AWS_CONFIG_FILE: '/nonexistent/config',
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-first-run-'));
  const started = await startEmbeddedServe({ dir, bucket: 'data', env: noAwsChain });
  serve = started.proc;
  scorer = started.scorerAddress;
  endpoint = started.s3Endpoint;
  const built = await runSadp(
    [
      'shards',
      'build',
      '--source',
      'synthetic',
      '--count',
      '40',
      '--mean-bytes',
      '1000',
      '--classes',
      '4',
      '--shard-bytes',
      '16KiB',
      '--out',
      's3://data/syn',
      '--endpoint',
      endpoint,
      ...creds,
    ],
    { env: noAwsChain },
  );
  assert.equal(built.code, 0, built.stderr);
});

after(async () => {
  await serve?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('create-job takes N from the manifest and needs no --prune-ratio for --policy full', async () => {
  const r = await runSadp(
    [
      'scorer',
      'create-job',
      '--address',
      scorer,
      '--job',
      'full-job',
      '--policy',
      'full',
      '--epochs',
      '2',
      '--dataset',
      's3://data/syn/manifest.json',
      '--endpoint',
      endpoint,
      ...creds,
    ],
    { env: noAwsChain },
  );
  assert.equal(r.code, 0, r.stderr);
  const job = JSON.parse(r.stdout) as { spec: { datasetSize: number; policy: string; pruneRatio: number } };
  assert.equal(job.spec.datasetSize, 40, 'N is the manifest’s sample count');
  assert.equal(job.spec.policy, 'POLICY_FULL');
  assert.equal(job.spec.pruneRatio, 0);
});

test('create-job without --prune-ratio for a pruning policy says which flag is missing', async () => {
  const r = await runSadp(
    ['scorer', 'create-job', '--address', scorer, '--job', 'j', '--epochs', '2', '--size', '40'],
    { env: noAwsChain },
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error SADP_CONFIG_INVALID: --prune-ratio is required for --policy sadp/);
});

test('an unknown SADP_* variable is a warning naming it (with a suggestion), not a failure', async () => {
  const r = await runSadp(['scorer', 'describe', '--address', scorer, '--job', 'full-job'], {
    env: { ...noAwsChain, SADP_S3_ENDPIONT: 'http://x', SADP_SOMETHING: '1' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { spec: { jobId: string } }).spec.jobId, 'full-job');
  assert.match(r.stderr, /warning: ignoring unknown environment variable SADP_S3_ENDPIONT.*SADP_S3_ENDPOINT/);
  assert.match(r.stderr, /warning: ignoring unknown environment variable SADP_SOMETHING/);
});

test('a remote error names its code once, the call and the scorer', async () => {
  const r = await runSadp(['scorer', 'describe', '--address', scorer, '--job', 'nope'], { env: noAwsChain });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`^sadp scorer describe: error SADP_JOB_NOT_FOUND: scorer ${scorer}: job nope`),
  );
  assert.equal(r.stderr.split('SADP_JOB_NOT_FOUND').length - 1, 1, r.stderr);
});

test('shards index takes the shard list an unquoted brace pattern expands to', async () => {
  const out = join(dir, 'two', 'manifest.json');
  // What `sadp shards index s3://data/syn/train-{000000..000001}.tar` becomes in a shell.
  const r = await runSadp(
    [
      'shards',
      'index',
      's3://data/syn/train-000000.tar',
      's3://data/syn/train-000001.tar',
      '--out',
      out,
      '--endpoint',
      endpoint,
      ...creds,
    ],
    { env: noAwsChain },
  );
  assert.equal(r.code, 0, r.stderr);
  const manifest = JSON.parse(await readFile(out, 'utf8')) as { shards: { url: string }[]; samples: number };
  assert.deepEqual(
    manifest.shards.map((s) => s.url),
    ['s3://data/syn/train-000000.tar', 's3://data/syn/train-000001.tar'],
  );
  assert.ok(manifest.samples > 0);
});

/** `sadp shards index` of the first shard the rig built, without the AWS default chain; `args` pick the storage. */
function indexFirstShard(args: string[]): ReturnType<typeof runSadp> {
  return runSadp(
    ['shards', 'index', 's3://data/syn/train-000000.tar', '--out', join(dir, 'x.json'), ...args],
    {
      env: noAwsChain,
    },
  );
}

test('missing credentials name the endpoint and how to pass them', async () => {
  const r = await indexFirstShard(['--endpoint', endpoint]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /error SADP_STORAGE_NO_CREDENTIALS: HEAD s3:\/\/data\/syn\/train-000000\.tar: no S3 credentials/,
  );
  assert.ok(r.stderr.includes(`S3 endpoint ${endpoint}`), r.stderr);
  assert.match(r.stderr, /\nhint: pass --access-key-id and --secret-access-key/);
});

test('an endpoint that does not resolve names the host, the endpoint and the flag', async () => {
  const r = await indexFirstShard(['--endpoint', 'http://no-such-host.invalid:9000', ...creds]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error SADP_STORAGE_UNAVAILABLE: .*cannot resolve host no-such-host\.invalid/);
  assert.match(r.stderr, /S3 endpoint http:\/\/no-such-host\.invalid:9000/);
  assert.match(r.stderr, /\nhint: check --endpoint \(SADP_S3_ENDPOINT\)/);
});

test('sadp serve log lines carry each key once', () => {
  // Flat lines only: a nested object may reuse a key at its own level.
  const lines = serve.stderr.filter((l) => l.startsWith('{') && !l.slice(1).includes('{'));
  assert.ok(
    lines.some((l) => l.includes('"msg":"loader listening"')),
    'the loader logged its start',
  );
  for (const line of lines) {
    const keys = [...line.matchAll(/[{,]"([A-Za-z_]+)":/g)].map((m) => m[1]);
    assert.deepEqual(
      keys.filter((k, i) => keys.indexOf(k) !== i),
      [],
      line,
    );
  }
});
