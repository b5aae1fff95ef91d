// Every container in the manifests runs the image's `sadp` entrypoint with a
// subcommand and flags; each must exist in the CLI the image ships (read from
// the command registry, so this fails, naming the command, when a manifest
// runs something the CLI does not have).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { Command } from 'commander';
import { registerCommands } from '../../cli/commands/index.js';
import {
  EXAMPLES,
  KUSTOMIZATIONS,
  type KustomizationName,
  describe,
  exampleObjects,
  k8sDir,
  podTemplates,
  rendered,
} from './manifests.js';

function program(): Command {
  const p = new Command('sadp');
  registerCommands(p);
  return p;
}

interface Invocation {
  where: string;
  args: string[];
  command: string[] | undefined;
}

function invocations(): Invocation[] {
  const out: Invocation[] = [];
  const sources: [string, ReturnType<typeof rendered>][] = [
    ...(Object.keys(KUSTOMIZATIONS) as KustomizationName[]).map(
      (n): [string, ReturnType<typeof rendered>] => [`kustomization ${n}`, rendered(n)],
    ),
    ...EXAMPLES.map((f): [string, ReturnType<typeof rendered>] => [relative(k8sDir, f), exampleObjects(f)]),
  ];
  for (const [source, objects] of sources) {
    for (const { owner, spec } of podTemplates(objects)) {
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        out.push({
          where: `${describe(owner)}/${c.name} in ${source}`,
          args: c.args ?? [],
          command: c.command,
        });
      }
    }
  }
  return out;
}

/** Resolves `args` against the CLI: the subcommand path, then the flags of the leaf command. */
function check(root: Command, inv: Invocation): void {
  assert.equal(
    inv.command,
    undefined,
    `${inv.where}: keep the image's ENTRYPOINT (sadp); put the subcommand in args`,
  );
  let cmd = root;
  const path: string[] = [];
  let i = 0;
  for (; i < inv.args.length && !inv.args[i]!.startsWith('-'); i++) {
    const name = inv.args[i]!;
    const sub = cmd.commands.find((c) => c.name() === name || c.aliases().includes(name));
    if (!sub) {
      if (cmd === root || cmd.commands.length > 0) {
        const known = cmd.commands.map((c) => c.name()).join(', ') || 'none';
        assert.fail(
          `${inv.where} runs \`sadp ${[...path, name].join(' ')}\`, but \`sadp${path.map((p) => ` ${p}`).join('')}\` has no subcommand '${name}' (known: ${known})`,
        );
      }
      break; // a positional argument of a leaf command
    }
    cmd = sub;
    path.push(name);
  }
  assert.ok(path.length > 0, `${inv.where}: args must start with a sadp subcommand`);
  const longs = new Set(cmd.options.flatMap((o) => (o.long ? [o.long] : [])));
  for (const arg of inv.args.slice(i)) {
    if (!arg.startsWith('--')) continue;
    const flag = arg.split('=')[0]!;
    assert.ok(
      longs.has(flag),
      `${inv.where}: \`sadp ${path.join(' ')}\` has no option ${flag} (known: ${[...longs].join(' ')})`,
    );
  }
}

const root = program();
for (const inv of invocations()) {
  test(`${inv.where}: sadp ${inv.args
    .filter((a) => !a.startsWith('-'))
    .slice(0, 2)
    .join(' ')} exists with its flags`, () => {
    check(root, inv);
  });
}

test('the check rejects an unknown subcommand and an unknown flag', () => {
  const first = root.commands[0];
  assert.ok(first, 'the CLI registers at least one command');
  assert.throws(
    () => check(root, { where: 't', args: ['no-such-command'], command: undefined }),
    /no subcommand 'no-such-command'/,
  );
  assert.throws(
    () => check(root, { where: 't', args: [first.name(), '--no-such-flag'], command: undefined }),
    /has no option --no-such-flag/,
  );
});
