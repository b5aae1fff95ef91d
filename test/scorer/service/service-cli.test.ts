// The `sadp scorer` client subcommands against a scorer process: they print
// JSON on success, and one line on stderr with exit status 1 on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli, spawnScorer, tempDir } from './helpers.js';

test('create-job, plan, stats and describe print JSON; failures exit 1 with the status', async (t) => {
  const dir = await tempDir(t);
  const scorer = await spawnScorer(t, ['--state', join(dir, 'state'), '--log-level', 'warn']);
  const address = ['--address', scorer.address];

  const created = await runCli([
    'scorer',
    'create-job',
    ...address,
    '--job',
    'cli-job',
    '--size',
    '5000',
    '--policy',
    'random',
    '--prune-ratio',
    '0.4',
    '--epochs',
    '2',
    '--seed',
    '18446744073709551615',
    '--token',
    'tok',
  ]);
  assert.equal(created.code, 0, created.stderr);
  const job = JSON.parse(created.stdout) as { spec: { seed: string; policy: string }; tokenSha256: string };
  assert.equal(job.spec.seed, '18446744073709551615', 'a u64 seed survives the CLI and the wire');
  assert.equal(job.spec.policy, 'POLICY_RANDOM');
  assert.match(job.tokenSha256, /^[0-9a-f]{64}$/);

  const plan = await runCli(['scorer', 'plan', ...address, '--job', 'cli-job', '--epoch', '1']);
  assert.equal(plan.code, 0, plan.stderr);
  const summary = JSON.parse(plan.stdout) as {
    selectedCount: number;
    digestVerified: boolean;
    digest: string;
  };
  assert.equal(summary.digestVerified, true);
  assert.ok(summary.selectedCount > 0 && summary.selectedCount < 5000);

  const stats = await runCli(['scorer', 'stats', ...address, '--job', 'cli-job', '--epoch', '1']);
  assert.equal(stats.code, 0, stats.stderr);
  assert.equal((JSON.parse(stats.stdout) as { selectedCount: number }).selectedCount, summary.selectedCount);

  const missing = await runCli(['scorer', 'describe', ...address, '--job', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /NOT_FOUND.*nope/);
  assert.equal(missing.stdout, '');
});
