// Opening an epoch: the caller is checked on the described job first, then
// the epoch's plan (plan gate, GetPlan) is requested while the job's dataset
// opens, not after it; a caller that fails the check never starts a plan.
// Jobs on one dataset share it until its manifest changes. Real scorer over
// gRPC, real dataset on the embedded S3 server.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { createLogger } from '../../../../common/logger.js';
import { createJobAccess } from '../../../../loader/service/jobs/job-access.js';
import { JobRegistry } from '../../../../loader/service/jobs/job-registry.js';
import { loaderMetrics } from '../../../../loader/service/metrics.js';
import type { ScorerClient } from '../../../../scorer/index.js';
import { openStore } from '../../../../storage/index.js';
import { useStack } from '../helpers.js';

const stack = useStack();

/** A registry on the rig's scorer whose GetPlan calls and 'job opened' log lines land in one ordered list. */
function rig(events: string[], lifetime: AbortSignal): JobRegistry {
  const logLines = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) events.push((JSON.parse(line) as { msg: string }).msg);
      }
      cb();
    },
  });
  const scorer: Pick<ScorerClient, 'describeJob' | 'getPlan'> = {
    describeJob: (jobId, options) => stack.scorerClient.describeJob(jobId, options),
    getPlan: (jobId, epoch, options) => {
      events.push(`GetPlan ${epoch}`);
      return stack.scorerClient.getPlan(jobId, epoch, options);
    },
  };
  return new JobRegistry({
    scorer,
    s3Client: () => stack.s3Client,
    datasetAccess: 'any',
    shuffle: 'global',
    shuffleBlockShards: 1,
    logger: createLogger({ level: 'info', destination: logLines }),
    metrics: loaderMetrics(),
    beforePlan: () => Promise.resolve(),
    signal: lifetime,
  });
}

test('the plan is requested before the job dataset is open, and the epoch uses it', async (t) => {
  const lifetime = new AbortController();
  t.after(() => lifetime.abort());
  const events: string[] = [];
  const registry = rig(events, lifetime.signal);
  const jobId = await stack.createJob({ epochs: 2 });
  const access = createJobAccess(registry, 'none');
  const { ctx, state } = await access.openEpoch(jobId, 0, new Metadata(), lifetime.signal);
  const order = events.filter((e) => e === 'GetPlan 0' || e === 'job opened');
  assert.deepEqual(order, ['GetPlan 0', 'job opened']);
  assert.equal(ctx.dataset.size, stack.dataset.size);
  const plan = await stack.scorerClient.getPlan(jobId, 0);
  assert.equal(state.plan.digest, plan.digest);
  assert.deepEqual(
    [...state.order].sort((a, b) => a - b),
    [...plan.ids],
  );
  // Opened again (another rank): nothing is fetched twice.
  await access.openEpoch(jobId, 0, new Metadata(), lifetime.signal);
  assert.equal(events.filter((e) => e === 'GetPlan 0').length, 1);
  assert.equal(events.filter((e) => e === 'job opened').length, 1);
});

test('a caller refused by the token check or the epoch range starts no plan', async (t) => {
  const lifetime = new AbortController();
  t.after(() => lifetime.abort());
  const events: string[] = [];
  const registry = rig(events, lifetime.signal);
  const tokenJob = await stack.createJob({ token: 'job-token-abc' });
  const access = createJobAccess(registry, 'token');
  const wrong = new Metadata();
  wrong.set('authorization', 'Bearer not-the-token');
  await assert.rejects(access.openEpoch(tokenJob, 0, wrong, lifetime.signal), {
    code: 'SADP_PERMISSION_DENIED',
  });
  const open = createJobAccess(registry, 'none');
  const plainJob = await stack.createJob({ epochs: 2 });
  await assert.rejects(open.openEpoch(plainJob, 2, new Metadata(), lifetime.signal), {
    code: 'SADP_EPOCH_OUT_OF_RANGE',
  });
  assert.deepEqual(
    events.filter((e) => e.startsWith('GetPlan')),
    [],
  );
});

test('jobs on one dataset share it; after the manifest changes the next job reads it anew', async (t) => {
  const lifetime = new AbortController();
  t.after(() => lifetime.abort());
  const events: string[] = [];
  const registry = rig(events, lifetime.signal);
  const a = await registry.job(await stack.createJob());
  const b = await registry.job(await stack.createJob());
  assert.equal(b.dataset, a.dataset);
  // The same samples under a rewritten manifest (new bytes, new ETag), as a re-index leaves it.
  const bucket = new URL(stack.manifestUrl).host;
  const ds = openStore(`s3://${bucket}/ds`, { client: stack.s3Client });
  const manifest: unknown = JSON.parse(Buffer.from(await ds.get('manifest.json')).toString('utf8'));
  await ds.put('manifest.json', Buffer.from(`${JSON.stringify(manifest, null, 3)}\n\n`));
  const c = await registry.job(await stack.createJob());
  assert.notEqual(c.dataset, a.dataset);
  assert.notEqual(c.dataset.manifestEtag, a.dataset.manifestEtag);
  assert.equal(c.dataset.size, a.dataset.size);
  const d = await registry.job(await stack.createJob());
  assert.equal(d.dataset, c.dataset);
});
