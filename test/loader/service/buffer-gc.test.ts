// The loader's bufferGc setting: by default a loader server switches V8 to
// count Buffer memory in the heap's growing limit, so allocating Buffers
// alone no longer starts full GCs; `v8-default` leaves V8 as it is. Each
// case runs in a child process (the setting is process-wide) that starts a
// real loader server, then allocates 2 GB of 1 MiB Buffers it drops at once,
// and counts the full GCs V8 starts for "external memory pressure" during
// that loop (--trace-incremental-marking). Which GCs start for that reason
// does not depend on timing; how many complete does (concurrent marking), so
// that is not counted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { BUFFER_GC_SUPPORTED } from '../../../loader/service/buffer-gc.js';

const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');
const loaderUrl = new URL('../../../loader/index.js', import.meta.url).href;

const child = `
const { createLoaderServer } = await import(${JSON.stringify(loaderUrl)});
const mode = process.argv[1];
const server = await createLoaderServer({
  scorerAddress: '127.0.0.1:9',
  ...(mode === 'default' ? {} : { bufferGc: mode }),
});
console.log('--- allocating');
const keep = [];
for (let i = 0; i < 2048; i++) {
  const b = Buffer.allocUnsafeSlow(1 << 20);
  b[0] = i;
  if (i % 128 === 0) keep.push(b);
}
console.log('--- done', keep.length);
await server.close(0);
`;

function externalPressureGcs(mode: string): number {
  const run = spawnSync(
    process.execPath,
    [
      '--trace-incremental-marking',
      ...(fromSource ? ['--import', import.meta.resolve('tsx')] : []),
      '--input-type=module',
      '-e',
      child,
      mode,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(run.status, 0, `child (${mode}) failed: ${run.stderr}`);
  const lines = run.stdout.split('\n');
  const from = lines.findIndex((l) => l.startsWith('--- allocating'));
  const to = lines.findIndex((l) => l.startsWith('--- done'));
  assert.ok(from >= 0 && to > from, `child (${mode}) printed no allocation markers: ${run.stdout}`);
  return lines.slice(from, to).filter((l) => l.includes('Start (external memory pressure)')).length;
}

test(
  'a loader server by default keeps Buffer allocation from starting full GCs; v8-default leaves V8 as it is',
  {
    // Node 22's V8 12.4 has no such flag (the loader then warns and keeps V8's default); CI runs Node 24.
    skip: BUFFER_GC_SUPPORTED
      ? false
      : `V8 ${process.versions.v8} has no --external-memory-accounted-in-global-limit`,
  },
  () => {
    // V8's own rule: a full GC per ~64 MB of external memory, so 2 GB starts several.
    const v8Default = externalPressureGcs('v8-default');
    assert.ok(v8Default >= 1, `v8-default: ${v8Default} full GCs started by 2 GB of Buffers`);
    assert.equal(externalPressureGcs('default'), 0, 'default: full GCs started by Buffers alone');
    assert.equal(externalPressureGcs('heap-limit'), 0, 'heap-limit: full GCs started by Buffers alone');
  },
);

test('an unknown bufferGc mode is refused, naming the option', async () => {
  const { createLoaderServer } = await import('../../../loader/index.js');
  await assert.rejects(
    // @ts-expect-error: not a mode
    createLoaderServer({ scorerAddress: '127.0.0.1:9', bufferGc: 'never' }),
    (err: Error & { code?: string }) =>
      err.code === 'SADP_INVALID_OPTION' && /bufferGc = never/.test(err.message),
  );
});
