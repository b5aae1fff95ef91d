// Untrusted manifests: a loader in service mode reads object storage and the
// operator's local roots only. file:// URLs, relative paths (the loader's
// working directory), absolute local URLs inside an s3:// manifest and
// symlinks leading out of a root are refused with PERMISSION_DENIED before
// anything is read, and no error a trainer sees names the loader's working
// directory or the scorer's state location.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { buildShards, syntheticSource, type DatasetAccess } from '../../../loader/shards/index.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SAMPLES, connectLoader, runRank, startStack, unary, type Stack } from '../service/helpers.js';
import { pb, type sadp } from '../../../proto/index.js';
import { MEAN_BYTES, SOURCE_SEED } from '../service/helpers.js';

const S = grpc.status;
let stack: Stack;
let root: string;
let outside: string;

before(async () => {
  stack = await startStack();
  root = join(stack.dir, 'allowed');
  outside = join(stack.dir, 'outside');
  for (const out of [join(root, 'ds'), join(outside, 'ds')]) {
    await buildShards(
      syntheticSource({ count: SAMPLES, meanBytes: MEAN_BYTES, seed: SOURCE_SEED, classes: 10 }),
      { out, shardBytes: 48 * 1024 },
    );
  }
  await symlink(outside, join(root, 'link'));
});
after(() => stack?.close());

async function tryEpoch(
  access: DatasetAccess,
  datasetUrl: string,
): Promise<{ code: number; details: string; batches: number }> {
  const jobId = await stack.createJob({ epochs: 1, datasetUrl });
  const loader = await stack.startLoader({ datasetAccess: access });
  const r = await runRank(connectLoader(loader.address), stack.dataset, {
    jobId,
    epoch: 0,
    rank: 0,
    world: 1,
    batchSize: 64,
  });
  return { code: r.code, details: r.details, batches: r.batches.length };
}

/** Refused, nothing served, and the message names neither the cwd nor any path the caller did not give. */
function assertDenied(
  r: { code: number; details: string; batches: number },
  what: string,
  hidden: string[] = [],
): void {
  assert.equal(r.code, S.PERMISSION_DENIED, `${what}: ${r.details}`);
  assert.match(r.details, /SADP_DATASET_LOCATION_DENIED/, what);
  assert.equal(r.batches, 0, `${what}: nothing served`);
  for (const path of [process.cwd(), ...hidden]) {
    assert.equal(r.details.includes(path), false, `${what}: ${path} is not in ${r.details}`);
  }
}

describe('service mode: object storage plus allowed local roots', () => {
  const service: DatasetAccess = { localRoots: [] };

  test('s3:// datasets are served', async () => {
    const r = await tryEpoch(service, stack.manifestUrl);
    assert.equal(r.code, S.OK, r.details);
    assert.ok(r.batches > 0);
  });

  test('file:// URLs and relative paths are refused, and the error names neither the cwd nor a resolved path', async () => {
    const before = stack.requests.length;
    assertDenied(await tryEpoch(service, pathToFileURL(join(root, 'ds/manifest.json')).href), 'file:// URL');
    assertDenied(await tryEpoch(service, 'ds/manifest.json'), 'relative path', [stack.dir]);
    assertDenied(await tryEpoch(service, '../../etc/manifest.json'), 'relative path up', [stack.dir]);
    assertDenied(await tryEpoch(service, join(root, 'ds/manifest.json')), 'absolute path, no root allowed');
    assert.equal(stack.requests.length, before, 'no storage read for a refused job');
  });

  test('an s3:// manifest whose index names a local file:// URL is refused', async () => {
    const manifest = JSON.parse(await readFile(join(root, 'ds/manifest.json'), 'utf8')) as {
      shards: { url: string; index: string }[];
    };
    const first = manifest.shards[0]!;
    first.index = pathToFileURL(join(outside, 'ds', first.index)).href;
    const cmd = new PutObjectCommand({
      Bucket: 'loader',
      Key: 'evil/manifest.json',
      Body: JSON.stringify(manifest),
    });
    await stack.s3Client.send(cmd);
    const r = await tryEpoch(service, 's3://loader/evil/manifest.json');
    assert.equal(r.code, S.PERMISSION_DENIED, r.details);
    assert.match(r.details, /SADP_DATASET_LOCATION_DENIED: dataset location file:\/\//);
  });

  test('under an allowed root a local dataset is served; a symlink out of the root is refused', async () => {
    const allowed: DatasetAccess = { localRoots: [root] };
    const ok = await tryEpoch(allowed, pathToFileURL(join(root, 'ds/manifest.json')).href);
    assert.equal(ok.code, S.OK, ok.details);
    assert.ok(ok.batches > 0);
    const plain = await tryEpoch(allowed, join(root, 'ds/manifest.json'));
    assert.equal(plain.code, S.OK, plain.details);
    assertDenied(await tryEpoch(allowed, join(root, 'link/ds/manifest.json')), 'symlink out of the root', [
      outside,
    ]);
    assertDenied(await tryEpoch(allowed, join(outside, 'ds/manifest.json')), 'outside the root');
    assertDenied(await tryEpoch(allowed, `${root}/../outside/ds/manifest.json`), 'dot-dot out of the root');
  });

  test("embedded mode ('any') keeps reading local datasets", async () => {
    const r = await tryEpoch('any', pathToFileURL(join(outside, 'ds/manifest.json')).href);
    assert.equal(r.code, S.OK, r.details);
  });
});

describe("the scorer's state location never reaches a caller", () => {
  test('a failing state write answers without the state path', async () => {
    const jobId = await stack.createJob({ epochs: 1 });
    // Break the job's state: its log directory becomes a file, so the next
    // write-ahead log append fails (works as root too, unlike chmod).
    const jobDir = join(stack.dir, 'scorer', 'jobs', jobId);
    await rm(join(jobDir, 'log'), { recursive: true, force: true });
    await mkdir(jobDir, { recursive: true });
    await writeFile(join(jobDir, 'log'), 'not a directory');
    let error: grpc.ServiceError | undefined;
    try {
      await unary<sadp.v1.ReportScoresResponse>((cb) =>
        stack.scorerRpc.reportScores(
          pb.ReportScoresRequest.create({ jobId, epoch: 0, ids: [1], scores: [1], losses: [1] }),
          cb,
        ),
      );
    } catch (err) {
      error = err as grpc.ServiceError;
    }
    assert.ok(error, 'the report failed');
    assert.notEqual(error.code, S.OK);
    assert.match(error.details, /<state>/, `the location is replaced: ${error.details}`);
    assert.equal(error.details.includes(stack.dir), false, error.details);
  });
});
