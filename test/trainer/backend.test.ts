// TF.js backend selection: auto falls through the native bindings to wasm and
// reports why each was skipped; a forced backend that cannot load is an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { isSadpError } from '../../common/errors.js';
import { AUTO_BACKEND_ORDER, selectBackend } from '../../trainer/backend.js';

const require = createRequire(import.meta.url);
function resolvable(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
const nativeAbsent = !resolvable('@tensorflow/tfjs-node') && !resolvable('@tensorflow/tfjs-node-gpu');

test('auto falls back past native bindings whose library fails to load', async () => {
  // Installed-but-broken native bindings (no libtensorflow) cannot be provoked
  // on a machine either with or without them, so the loader is injected.
  const sel = await selectBackend('auto', {
    importModule: (spec) =>
      spec.includes('tfjs-node')
        ? Promise.reject(new Error(`${spec}: libtensorflow.so.2: cannot open shared object file`))
        : import(spec),
  });
  assert.equal(sel.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(
    sel.tried.map((t) => t.name),
    ['tensorflow-gpu', 'tensorflow', 'wasm'],
  );
  assert.match(sel.tried[0]!.error!, /tfjs-node-gpu.*libtensorflow/);
  assert.match(sel.tried[1]!.error!, /tfjs-node:.*libtensorflow/);
  assert.equal(sel.tried[2]!.error, undefined);
  assert.equal(typeof sel.wasm?.simd, 'boolean');
  assert.ok((sel.wasm?.threads ?? 0) >= 1);
});

test(
  'auto reports the real absence of @tensorflow/tfjs-node',
  { skip: !nativeAbsent && 'tfjs-node is installed here' },
  async () => {
    const sel = await selectBackend();
    assert.equal(sel.name, 'wasm');
    assert.deepEqual(
      sel.tried.map((t) => t.name),
      AUTO_BACKEND_ORDER.slice(0, 3),
    );
    assert.match(sel.tried[1]!.error!, /@tensorflow\/tfjs-node/);
  },
);

test(
  'forcing a missing backend is an error naming why',
  { skip: !nativeAbsent && 'tfjs-node is installed here' },
  async () => {
    await assert.rejects(
      selectBackend('tensorflow'),
      (e) =>
        isSadpError(e, 'SADP_BACKEND_UNAVAILABLE') && /'tensorflow'.*@tensorflow\/tfjs-node/.test(e.message),
    );
  },
);

test('forcing cpu and wasm switches the active backend; unknown names are rejected', async () => {
  const cpu = await selectBackend('cpu');
  assert.deepEqual(cpu, { name: 'cpu', tfBackend: 'cpu', tried: [{ name: 'cpu' }] });
  assert.equal(tf.getBackend(), 'cpu');
  const onCpu = tf.scalar(3);
  const wasm = await selectBackend('wasm');
  assert.equal(wasm.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  await assert.rejects(selectBackend('webgpu' as never), (e) => isSadpError(e, 'SADP_BACKEND_UNKNOWN'));
  // Tensors made before the switch stay usable: TF.js moves their data on use.
  assert.equal(tf.add(onCpu, tf.scalar(2)).dataSync()[0], 5);
});
