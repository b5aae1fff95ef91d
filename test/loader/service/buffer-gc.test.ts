// The loader's bufferGc setting: by default a loader server switches V8 to
// count Buffer memory in the heap's growing limit, so allocating Buffers
// alone no longer drives full GCs; `v8-default` leaves V8 as it is. Each
// case runs in a child process (the setting is process-wide) that starts a
// real loader server, then allocates 2 GB of 1 MiB Buffers it drops at once,
// and counts the full GCs V8 reports (--trace-gc) during that loop.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

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

function fullGcsWhileAllocating(mode: string): number {
  const run = spawnSync(
    process.execPath,
    [
      '--trace-gc',
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
  return lines.slice(from, to).filter((l) => l.includes('Mark-Compact')).length;
}

test('a loader server by default keeps Buffer allocation from driving full GCs; v8-default leaves V8 as it is', () => {
  const byDefault = fullGcsWhileAllocating('default');
  const heapLimit = fullGcsWhileAllocating('heap-limit');
  const v8Default = fullGcsWhileAllocating('v8-default');
  // V8's own rule: a full GC per ~64 MB of external memory (2 GB -> ~30, fewer when marking overlaps).
  assert.ok(v8Default >= 8, `v8-default: ${v8Default} full GCs for 2 GB of Buffers`);
  assert.ok(byDefault <= 2, `default: ${byDefault} full GCs for 2 GB of Buffers`);
  assert.ok(heapLimit <= 2, `heap-limit: ${heapLimit} full GCs for 2 GB of Buffers`);
});

test('an unknown bufferGc mode is refused, naming the option', async () => {
  const { createLoaderServer } = await import('../../../loader/index.js');
  await assert.rejects(
    // @ts-expect-error: not a mode
    createLoaderServer({ scorerAddress: '127.0.0.1:9', bufferGc: 'never' }),
    (err: Error & { code?: string }) =>
      err.code === 'SADP_INVALID_OPTION' && /bufferGc = never/.test(err.message),
  );
});
