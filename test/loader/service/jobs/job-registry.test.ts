// The jobs registry keeps what it loaded for a bounded number of jobs: plans
// requested for a job whose dataset never opens are dropped like job heads,
// not kept for good.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { createLogger } from '../../../../common/logger.js';
import { JobRegistry } from '../../../../loader/service/jobs/job-registry.js';
import { loaderMetrics } from '../../../../loader/service/metrics.js';
import type { Plan, ScorerClient } from '../../../../scorer/index.js';

test('plans are kept for at most 64 jobs; the oldest job asks the scorer again', async () => {
  const lifetime = new AbortController();
  const calls: string[] = [];
  const scorer: Pick<ScorerClient, 'describeJob' | 'getPlan'> = {
    describeJob: (jobId) => Promise.reject(new Error(`no job ${jobId} here`)),
    getPlan: (jobId, epoch) => {
      calls.push(`${jobId}/${epoch}`);
      return Promise.resolve({ ids: new Uint32Array(0) } as unknown as Plan);
    },
  };
  const registry = new JobRegistry({
    scorer,
    s3Client: () => {
      throw new Error('no dataset is opened in this test');
    },
    datasetAccess: 'any',
    shuffle: 'global',
    shuffleBlockShards: 1,
    logger: createLogger({ level: 'info', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
    metrics: loaderMetrics(),
    beforePlan: () => Promise.resolve(),
    signal: lifetime.signal,
  });
  try {
    await registry.plan('job-0', 0);
    await registry.plan('job-0', 0);
    assert.deepEqual(calls, ['job-0/0'], 'a plan is requested once while kept');
    for (let i = 1; i <= 64; i++) await registry.plan(`job-${i}`, 0);
    await registry.plan('job-64', 0);
    assert.equal(calls.length, 65, 'the newest job is still kept');
    await registry.plan('job-0', 0);
    assert.equal(calls.length, 66, 'the 65th job pushed the oldest one out');
    assert.equal(calls.at(-1), 'job-0/0');
  } finally {
    lifetime.abort();
  }
});
