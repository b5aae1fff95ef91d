// deploy/Dockerfile, checked offline with a Dockerfile parser (no Docker
// engine here): multi-stage, production dependencies only at run time, a
// numeric non-root user that the manifests also run as, tini as PID 1 in
// front of the `sadp` entrypoint, nothing fetched with ADD, and a
// .dockerignore that keeps what the build needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import type { Ignore } from '@balena/dockerignore';
import { packageRoot } from '../../common/paths.js';
import {
  EXAMPLES,
  KUSTOMIZATIONS,
  type KustomizationName,
  exampleObjects,
  podTemplates,
  rendered,
} from './manifests.js';

// CommonJS `module.exports = factory`, typed as an ES default export.
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as () => Ignore;

const dockerfilePath = join(packageRoot, 'deploy', 'Dockerfile');
const dockerfile = DockerfileParser.parse(readFileSync(dockerfilePath, 'utf8'));

interface Stage {
  name: string | null;
  image: string;
  instructions: Instruction[];
}

function stages(): Stage[] {
  const out: Stage[] = [];
  for (const ins of dockerfile.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getArguments().map((a) => a.getValue());
      const as = args.findIndex((a) => a.toLowerCase() === 'as');
      out.push({
        name: as >= 0 ? args[as + 1]! : null,
        image: args.find((a) => !a.startsWith('--'))!,
        instructions: [],
      });
    } else {
      out.at(-1)?.instructions.push(ins);
    }
  }
  return out;
}

const runs = (s: Stage): string[] =>
  s.instructions
    .filter((i) => i.getKeyword() === 'RUN')
    .map((i) => (i.getArgumentsContent() ?? '').replace(/\\\n/g, ' '));
const last = <T>(xs: readonly T[]): T | undefined => xs[xs.length - 1];

test('multi-stage: a build stage with dev dependencies, a runtime stage on the same Node 24 slim base', () => {
  const all = stages();
  assert.ok(all.length >= 2, 'at least a build and a runtime stage');
  const build = all[0]!;
  const runtime = last(all)!;
  for (const s of [build, runtime]) assert.match(s.image, /^node:\$\{NODE_VERSION\}-[a-z]+-slim$/);
  const nodeVersion = dockerfile.getInitialARGs().find((a) => a.getProperty()?.getName() === 'NODE_VERSION');
  assert.match(
    nodeVersion?.getProperty()?.getValue() ?? '',
    /^24(\.\d+){0,2}$/,
    'Node 24 LTS (package.json engines)',
  );
  const engines = (
    JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { engines: { node: string } }
  ).engines.node;
  assert.match(engines, /^>=22(\.\d+){0,2}$/, 'package.json engines admit Node 22 and 24');
  assert.ok(
    runs(build).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r)),
    'build stage installs dev dependencies with npm ci',
  );
  assert.ok(
    runs(build).some((r) => /\bnpm run build\b/.test(r)),
    'build stage runs npm run build',
  );
  assert.ok(
    runs(runtime).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)),
    'runtime installs with npm ci --omit=dev',
  );
  assert.ok(
    !runs(runtime).some((r) => /npm run build|\bnpm install\b/.test(r)),
    'runtime neither builds nor npm installs',
  );
  const copies = dockerfile.getCOPYs().filter((c) => runtime.instructions.includes(c));
  assert.ok(
    copies.some(
      (c) =>
        c.getFromFlag()?.getValue() === build.name && /\/dist$/.test(c.getArguments()[0]?.getValue() ?? ''),
    ),
    'runtime copies dist from the build stage',
  );
  assert.ok(
    runtime.instructions.some(
      (i) => i.getKeyword() === 'COPY' && /^proto\s/.test(i.getArgumentsContent() ?? ''),
    ),
    'the .proto files are read at run time',
  );
  // npm ci runs postinstall (patch-package), which needs patches/ in place first.
  const patchesAt = runtime.instructions.findIndex(
    (i) => i.getKeyword() === 'COPY' && /^patches\s/.test(i.getArgumentsContent() ?? ''),
  );
  const installAt = runtime.instructions.findIndex(
    (i) => i.getKeyword() === 'RUN' && /\bnpm ci\b/.test(i.getArgumentsContent() ?? ''),
  );
  assert.ok(patchesAt >= 0 && patchesAt < installAt, 'patches/ is copied before npm ci applies it');
});

test('runtime runs as a numeric non-root user, the UID the manifests run as', () => {
  const runtime = last(stages())!;
  const user = last(runtime.instructions.filter((i) => i.getKeyword() === 'USER'));
  const m = /^(\d+)(?::(\d+))?$/.exec(user?.getArgumentsContent() ?? '');
  assert.ok(m, `USER must be numeric uid[:gid], got ${user?.getArgumentsContent()}`);
  const uid = Number(m[1]);
  assert.ok(uid > 0, 'non-root');
  const pods = [
    ...(Object.keys(KUSTOMIZATIONS) as KustomizationName[]).flatMap((n) => podTemplates(rendered(n))),
    ...EXAMPLES.flatMap((f) => podTemplates(exampleObjects(f))),
  ];
  for (const { owner, spec } of pods) {
    assert.equal(spec.securityContext?.runAsUser, uid, `${owner.kind}/${owner.metadata.name} runAsUser`);
    if (m[2]) assert.equal(spec.securityContext?.runAsGroup, Number(m[2]));
  }
});

test('tini is PID 1 in front of the sadp CLI (exec-form ENTRYPOINT)', () => {
  const runtime = last(stages())!;
  const entry = last(runtime.instructions.filter((i) => i.getKeyword() === 'ENTRYPOINT'));
  const raw = entry?.getArgumentsContent() ?? '';
  const argv = JSON.parse(raw) as unknown;
  assert.ok(Array.isArray(argv), `ENTRYPOINT must be exec form (JSON), got ${raw}`);
  const [init, sep, ...rest] = argv as string[];
  assert.match(init ?? '', /\/tini$/);
  assert.equal(sep, '--');
  assert.ok(
    runs(runtime).some((r) => /apt-get install\b.*\btini\b/.test(r)),
    'tini is installed in the runtime stage',
  );
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as {
    bin: { sadp: string };
  };
  if (rest[0] === 'sadp') {
    // `sadp` on PATH must be the package's bin, made executable.
    assert.ok(
      runs(runtime).some(
        (r) =>
          r.includes(`chmod 0755 ${pkg.bin.sadp}`) &&
          new RegExp(`ln -s \\S*/${pkg.bin.sadp} /usr/local/bin/sadp`).test(r),
      ),
      `/usr/local/bin/sadp links to ${pkg.bin.sadp}`,
    );
  } else {
    assert.deepEqual(rest.slice(0, 2), ['node', `/app/${pkg.bin.sadp}`]);
  }
  assert.ok(existsSync(join(packageRoot, 'cli', 'sadp.ts')), 'the CLI entry exists');
});

test('no ADD (nothing fetched from URLs), no secrets baked into ENV or ARG', () => {
  for (const ins of dockerfile.getInstructions()) {
    const keyword = ins.getKeyword();
    const args = ins.getArgumentsContent() ?? '';
    assert.notEqual(keyword, 'ADD', `use COPY, not ADD: ${args}`);
    if (keyword === 'ENV' || keyword === 'ARG')
      assert.doesNotMatch(args, /(SECRET|TOKEN|PASSWORD|ACCESS_KEY)/i, `${keyword} ${args}`);
    if (keyword === 'RUN') assert.doesNotMatch(args, /\b(curl|wget)\b/, `RUN downloads: ${args}`);
  }
});

test('the runtime writes nothing outside /tmp: HOME is /tmp, no VOLUME or WORKDIR writes declared', () => {
  const runtime = last(stages())!;
  const home = runtime.instructions
    .filter((i) => i.getKeyword() === 'ENV')
    .map((i) => i.getArgumentsContent() ?? '')
    .find((a) => /^HOME[= ]/.test(a));
  assert.match(home ?? '', /^HOME[= ]\/tmp$/);
  assert.ok(!runtime.instructions.some((i) => i.getKeyword() === 'VOLUME'), 'no VOLUME: /tmp is an emptyDir');
});

test('EXPOSE lists the ports the manifests open', () => {
  const exposed = new Set(
    last(stages())!
      .instructions.filter((i) => i.getKeyword() === 'EXPOSE')
      .flatMap((i) => i.getArguments().map((a) => Number(a.getValue().split('/')[0]))),
  );
  for (const { spec, owner } of podTemplates(rendered('base')))
    for (const c of spec.containers)
      for (const p of c.ports ?? [])
        assert.ok(
          exposed.has(p.containerPort),
          `${owner.metadata.name}: port ${p.containerPort} not in EXPOSE`,
        );
});

test('.dockerignore keeps the build inputs and drops the rest', () => {
  const ig = dockerignore().add(readFileSync(join(packageRoot, '.dockerignore'), 'utf8').split('\n'));
  const tsconfig = JSON.parse(readFileSync(join(packageRoot, 'tsconfig.json'), 'utf8')) as {
    include: string[];
  };
  const needed = [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'LICENSE',
    'proto/sadp/v1/loader.proto',
    'proto/gen/sadp.js',
    'cli/sadp.ts',
    ...tsconfig.include.filter((d) => d !== 'test' && d !== 'bench').map((d) => `${d}/index.ts`),
  ];
  for (const path of needed)
    assert.ok(!ig.ignores(path), `.dockerignore drops ${path}, which the build needs`);
  for (const path of [
    'node_modules/x/index.js',
    'dist/cli/sadp.js',
    '.git/HEAD',
    'test/x.test.ts',
    '.sadp/s3/a',
  ])
    assert.ok(ig.ignores(path), `.dockerignore keeps ${path}`);
});
