// Registry of subcommands: add one line per command module.
import type { Command } from 'commander';
import { registerScorerCommand } from './scorer.js';
import { registerLoaderCommand } from './loader.js';
import { registerServeCommand } from './serve.js';
import { registerDemoCommand } from './demo.js';
import { registerS3Command } from './s3.js';
import { registerShardsCommand } from './shards.js';
import { registerTrainCommand } from './train.js';
import { registerEstimateCommand } from './estimate.js';

type Register = (program: Command) => void;

const registrars: Register[] = [
  registerDemoCommand,
  registerServeCommand,
  registerScorerCommand,
  registerLoaderCommand,
  registerS3Command,
  registerShardsCommand,
  registerTrainCommand,
  registerEstimateCommand,
];

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program);
}
