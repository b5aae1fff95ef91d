// Every subcommand documents itself: `--help` works on each, from the real
// binary, and each has a description.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../cli/program.js';
import { packageRoot } from '../../common/paths.js';

function walk(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  return cmd.commands.flatMap((sub) => [
    { path: [...path, sub.name()], cmd: sub },
    ...walk(sub, [...path, sub.name()]),
  ]);
}

test('every subcommand has a description and --help text', () => {
  const all = walk(buildProgram());
  assert.ok(
    all.length >= 5,
    `expected several subcommands, got ${all.map((c) => c.path.join(' ')).join(', ')}`,
  );
  for (const { path, cmd } of all) {
    assert.ok(cmd.description().length > 10, `sadp ${path.join(' ')} has no description`);
    assert.match(cmd.helpInformation(), new RegExp(`Usage: sadp ${path.join(' ')}`));
  }
});

test('the built binary answers --help on every subcommand with exit code 0', () => {
  const bin = join(packageRoot, 'dist/cli/sadp.js');
  for (const { path } of walk(buildProgram())) {
    const out = execFileSync(process.execPath, [bin, ...path, '--help'], { encoding: 'utf8' });
    assert.match(out, /Usage: sadp/, `sadp ${path.join(' ')} --help`);
  }
});
