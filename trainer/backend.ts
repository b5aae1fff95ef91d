// Picks the TF.js backend the spiking networks run on. The native TensorFlow
// bindings are optional dependencies whose libtensorflow download can fail, so
// every candidate is tried by dynamic import and the caller gets the list of
// what was tried and why each failed, to print or log.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type * as WasmBackend from '@tensorflow/tfjs-backend-wasm';
import { SadpError, Status, errorMessage } from '../common/errors.js';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = BackendName | 'auto';

/**
 * The order `auto` tries. Native first; then WebAssembly (XNNPACK + SIMD,
 * single-threaded in Node), which trains this project's networks 7x (MLP) to
 * 30x (CNN) faster per CPU-second than the pure-JS cpu backend
 * (bench/validate-score.ts measures both); cpu last, it always loads.
 */
export const AUTO_BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

interface BackendAttempt {
  name: BackendName;
  /** Why this backend could not be used; absent for the one selected. */
  error?: string;
}

export interface BackendSelection {
  /** The backend in use, in this module's naming. */
  name: BackendName;
  /** The name TF.js knows it by (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Every backend tried, in order, the selected one last. */
  tried: BackendAttempt[];
  /** wasm only: whether the SIMD build and threads are in use. */
  wasm?: { simd: boolean; threads: number };
}

export interface SelectBackendOptions {
  /**
   * Loads an optional backend package. Default: dynamic `import()`. Tests
   * inject a failing loader to provoke "installed but the native library does
   * not load", which cannot be provoked otherwise.
   */
  importModule?: (specifier: string) => Promise<unknown>;
  /**
   * Silence TF.js console banners ("looks like you are running TensorFlow.js
   * in Node.js"): the selection is returned for the caller to report. Default true.
   */
  quiet?: boolean;
}

const NATIVE_PACKAGES: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';

/**
 * Makes `preferred` (default `auto`) the active TF.js backend. `auto` tries
 * {@link AUTO_BACKEND_ORDER} and falls through on failure; a named backend that
 * fails is an error (`SADP_BACKEND_UNAVAILABLE`) naming why.
 */
export async function selectBackend(
  preferred: BackendPreference = 'auto',
  options: SelectBackendOptions = {},
): Promise<BackendSelection> {
  const importModule = options.importModule ?? ((specifier: string) => import(specifier));
  if (options.quiet ?? true) tf.enableProdMode();
  if (preferred !== 'auto' && !AUTO_BACKEND_ORDER.includes(preferred)) {
    throw new SadpError(
      'SADP_BACKEND_UNKNOWN',
      `unknown TF.js backend '${String(preferred)}'; expected auto or one of ${AUTO_BACKEND_ORDER.join(', ')}`,
      { status: Status.INVALID_ARGUMENT },
    );
  }
  const candidates = preferred === 'auto' ? AUTO_BACKEND_ORDER : [preferred];
  const tried: BackendAttempt[] = [];
  for (const name of candidates) {
    try {
      const selection = await activate(name, importModule);
      tried.push({ name });
      return { ...selection, tried };
    } catch (err) {
      tried.push({ name, error: errorMessage(err) });
      if (preferred !== 'auto') {
        throw new SadpError(
          'SADP_BACKEND_UNAVAILABLE',
          `TF.js backend '${name}' is unavailable: ${errorMessage(err)}`,
          {
            status: Status.FAILED_PRECONDITION,
            cause: err,
          },
        );
      }
    }
  }
  // Unreachable in practice: the cpu backend ships inside @tensorflow/tfjs.
  throw new SadpError(
    'SADP_BACKEND_UNAVAILABLE',
    `no TF.js backend could be initialised: ${tried.map((t) => `${t.name}: ${t.error ?? 'ok'}`).join('; ')}`,
    { status: Status.FAILED_PRECONDITION },
  );
}

async function activate(
  name: BackendName,
  importModule: (specifier: string) => Promise<unknown>,
): Promise<Omit<BackendSelection, 'tried'>> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      // Both packages register a backend called 'tensorflow' on import.
      await importModule(NATIVE_PACKAGES[name]);
      await use('tensorflow', `${NATIVE_PACKAGES[name]} loaded but`);
      return { name, tfBackend: 'tensorflow' };
    }
    case 'wasm': {
      const wasm = (await importModule(WASM_PACKAGE)) as typeof WasmBackend;
      // In Node the .wasm binaries are read from disk, not fetched relative to
      // a page, so point the loader at the package's dist directory.
      const require = createRequire(import.meta.url);
      wasm.setWasmPaths(`${dirname(require.resolve(`${WASM_PACKAGE}/dist/tfjs-backend-wasm.wasm`))}/`);
      await use('wasm', `${WASM_PACKAGE} loaded but`);
      // TF.js detects SIMD and threads itself and uses them only when they
      // work; in Node that is SIMD without threads.
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      return { name, tfBackend: 'wasm', wasm: { simd, threads: wasm.getThreadsCount() } };
    }
    case 'cpu':
      await use('cpu', '@tensorflow/tfjs');
      return { name, tfBackend: 'cpu' };
  }
}

async function use(tfBackend: string, context: string): Promise<void> {
  if (tf.findBackendFactory(tfBackend) === null) {
    throw new Error(`${context} no '${tfBackend}' backend is registered (duplicate @tensorflow/tfjs-core?)`);
  }
  if (!(await tf.setBackend(tfBackend))) {
    throw new Error(`${context} the '${tfBackend}' backend failed to initialise`);
  }
  await tf.ready();
}
