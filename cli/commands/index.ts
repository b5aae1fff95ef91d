// Registry of subcommands: add one line per command module.
import type { Command } from 'commander';

type Register = (program: Command) => void;

const registrars: Register[] = [];

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program);
}
