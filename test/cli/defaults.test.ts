// Out of the box the services find each other: every default address, port
// and directory the CLI shows or dials is the one the component listens on
// or resolves to (each is stated once, by its component).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../cli/program.js';
import { loadConfig } from '../../common/config.js';

function command(path: string[]): Command {
  let cmd = buildProgram();
  for (const name of path) {
    const next = cmd.commands.find((c) => c.name() === name);
    assert.ok(next, `sadp ${path.join(' ')}`);
    cmd = next;
  }
  return cmd;
}

function flag(path: string[], long: string): { description: string; defaultValue?: unknown } {
  const option = command(path).options.find((o) => o.long === long);
  assert.ok(option, `sadp ${path.join(' ')} ${long}`);
  return option;
}

test('the loader dials the scorer where the scorer listens; trainers dial the loader where it listens', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.loader.scorer, config.scorer.listen);
  assert.equal(flag(['train'], '--loader').defaultValue, config.loader.listen);
});

test('help texts show the defaults the config resolves to', () => {
  const config = loadConfig({ env: {} });
  assert.ok(flag(['scorer'], '--listen').description.endsWith(`default ${config.scorer.listen}`));
  assert.ok(flag(['scorer'], '--state').description.endsWith(`default ${config.scorer.state}`));
  assert.ok(flag(['serve'], '--scorer-listen').description.endsWith(`default ${config.scorer.listen}`));
  assert.ok(flag(['serve'], '--loader-listen').description.endsWith(`default ${config.loader.listen}`));
  assert.ok(flag(['serve'], '--state').description.endsWith(`default ${config.scorer.state}`));
  assert.ok(flag(['serve'], '--s3-port').description.endsWith(`default ${config.embeddedS3.port}`));
  assert.ok(flag(['serve'], '--s3-data-dir').description.endsWith(`default ${config.embeddedS3.dataDir}`));
  assert.ok(flag(['s3', 'serve'], '--port').description.endsWith(`default ${config.embeddedS3.port}`));
  assert.ok(flag(['s3', 'serve'], '--host').description.endsWith(`default ${config.embeddedS3.host}`));
});
