// The `sadp` command tree. Each subcommand lives in cli/commands/<name>.ts and
// registers itself in cli/commands/index.ts; commander gives every one of
// them `--help`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../common/paths.js';
import { registerCommands } from './commands/index.js';

const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('sadp')
    .description(
      'SADP data loader: spike-aware data pruning in the data path, from S3 shards to gRPC trainers.',
    )
    .version(pkg.version)
    .showHelpAfterError()
    .enablePositionalOptions();
  registerCommands(program);
  return program;
}
