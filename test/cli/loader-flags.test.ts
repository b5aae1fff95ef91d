// `sadp loader` flags: each knob flag users already pass still sets its
// `loader` config key, and parses with the bound the loader's schema states
// (the one place a knob's default and bounds live).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addKnobFlags, knobOverrides } from '../../cli/commands/loader.js';
import { loadConfig } from '../../common/config.js';

function parse(argv: string[]): Record<string, unknown> {
  const cmd = addKnobFlags(new Command('loader'))
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

test('every knob flag sets its config key, over the environment', () => {
  const flags = parse([
    '--listen=0.0.0.0:7000',
    '--scorer=scorer:7001',
    '--inflight-bytes=1048576',
    '--prefetch-batches=7',
    '--gap-bytes=0',
    '--read-planner=ranges',
    '--concurrency=9',
    '--shuffle=shard-buffer',
    '--auth=token',
    '--score-durable-timeout-ms=1500',
  ]);
  const config = loadConfig({
    env: { SADP_LOADER_PREFETCH_BATCHES: '3', SADP_LOADER_CONCURRENCY: '2' },
    overrides: { loader: knobOverrides(flags) },
  });
  assert.deepEqual(
    {
      listen: config.loader.listen,
      scorer: config.loader.scorer,
      inflightBytes: config.loader.inflightBytes,
      prefetchBatches: config.loader.prefetchBatches,
      gapBytes: config.loader.gapBytes,
      readPlanner: config.loader.readPlanner,
      concurrency: config.loader.concurrency,
      shuffle: config.loader.shuffle,
      auth: config.loader.auth,
      scoreDurableTimeoutMs: config.loader.scoreDurableTimeoutMs,
    },
    {
      listen: '0.0.0.0:7000',
      scorer: 'scorer:7001',
      inflightBytes: 1_048_576,
      prefetchBatches: 7,
      gapBytes: 0,
      readPlanner: 'ranges',
      concurrency: 9,
      shuffle: 'shard-buffer',
      auth: 'token',
      scoreDurableTimeoutMs: 1_500,
    },
  );
});

test('unset flags leave the file and environment alone; defaults are the loader schema', () => {
  const config = loadConfig({
    env: { SADP_LOADER_CONCURRENCY: '2' },
    overrides: { loader: knobOverrides(parse([])) },
  });
  assert.equal(config.loader.concurrency, 2);
  assert.equal(config.loader.prefetchBatches, 4);
  assert.equal(config.loader.readPlanner, 'auto');
  assert.equal(config.loader.scoreDurableTimeoutMs, 60_000);
});

test('a flag past the bound the schema states fails at parse time, naming the flag and the bound', () => {
  assert.throws(
    () => parse(['--prefetch-batches=65']),
    /--prefetch-batches must be an integer in 1\.\.64, got 65/,
  );
  assert.throws(() => parse(['--concurrency=0']), /--concurrency must be an integer in 1\.\.1024, got 0/);
  assert.throws(
    () => parse(['--score-durable-timeout-ms=0']),
    /--score-durable-timeout-ms must be an integer >= 1, got 0/,
  );
  // The same bound applies to the config file and the environment.
  assert.throws(
    () => loadConfig({ env: { SADP_LOADER_PREFETCH_BATCHES: '65' } }),
    /'loader\.prefetchBatches'/,
  );
});
