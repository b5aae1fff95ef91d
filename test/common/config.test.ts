// Configuration: precedence (defaults < YAML < env < flags), and every bad
// or unknown key is rejected with an error that names it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENV_VARS, loadConfig, unknownEnvWarning } from '../../common/config.js';
import { isSadpError } from '../../common/errors.js';

function yamlFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sadp-config-')), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSadpError(err, 'SADP_CONFIG_INVALID'), `expected SADP_CONFIG_INVALID, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('defaults apply when nothing is given', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.loader.listen, '127.0.0.1:50052');
  assert.equal(config.loader.inflightBytes, 256 * 1024 * 1024);
  assert.equal(config.embeddedS3.allowNonLoopback, false);
});

test('flags override environment, which overrides the file', () => {
  const file = yamlFile('loader:\n  prefetchBatches: 2\n  gapBytes: 100\n  concurrency: 3\n');
  const config = loadConfig({
    file,
    env: { SADP_LOADER_GAP_BYTES: '200', SADP_LOADER_CONCURRENCY: '7' },
    overrides: { loader: { concurrency: 9 } },
  });
  assert.equal(config.loader.prefetchBatches, 2);
  assert.equal(config.loader.gapBytes, 200);
  assert.equal(config.loader.concurrency, 9);
});

test('booleans and numbers from the environment are parsed, garbage is named', () => {
  assert.equal(loadConfig({ env: { SADP_S3_FORCE_PATH_STYLE: 'false' } }).s3.forcePathStyle, false);
  rejects(() => loadConfig({ env: { SADP_S3_FORCE_PATH_STYLE: 'maybe' } }), /SADP_S3_FORCE_PATH_STYLE=maybe/);
  rejects(
    () => loadConfig({ env: { SADP_LOADER_INFLIGHT_BYTES: '12MB' } }),
    /SADP_LOADER_INFLIGHT_BYTES=12MB/,
  );
});

test('unknown keys in the file and flags are errors naming the key', () => {
  rejects(
    () => loadConfig({ env: {}, file: yamlFile('loader:\n  inflighBytes: 5\n') }),
    /unknown key 'loader\.inflighBytes'/,
  );
  rejects(() => loadConfig({ env: {}, file: yamlFile('lodaer: {}\n') }), /unknown key 'lodaer'/);
});

test('an unknown SADP_* environment variable is ignored with a warning naming it and its neighbours', () => {
  const unknown: string[] = [];
  const config = loadConfig({
    env: { SADP_LOADER_INFLIGHT: '5', SADP_SOMETHING_ELSE: 'x', SADP_LOADER_CONCURRENCY: '7' },
    onUnknownEnv: (name) => unknown.push(name),
  });
  assert.deepEqual(unknown.sort(), ['SADP_LOADER_INFLIGHT', 'SADP_SOMETHING_ELSE']);
  assert.equal(config.loader.concurrency, 7, 'the known variables still apply');
  assert.match(
    unknownEnvWarning('SADP_LOADER_INFLIGHT'),
    /SADP_LOADER_INFLIGHT.*did you mean.*SADP_LOADER_INFLIGHT_BYTES/,
  );
  assert.doesNotMatch(unknownEnvWarning('SADP_X'), /did you mean/);
});

test('bad values are errors naming the key', () => {
  rejects(() => loadConfig({ env: {}, file: yamlFile('loader:\n  gapBytes: -1\n') }), /'loader\.gapBytes'/);
  rejects(() => loadConfig({ env: {}, file: yamlFile('loader:\n  shuffle: random\n') }), /'loader\.shuffle'/);
  rejects(
    () => loadConfig({ env: {}, file: yamlFile('scorer:\n  listen: nowhere\n') }),
    /'scorer\.listen'.*host:port/,
  );
  rejects(() => loadConfig({ env: {}, file: yamlFile('loader: [1, 2\n') }), /not valid YAML/);
  rejects(() => loadConfig({ env: {}, file: yamlFile('- a\n- b\n') }), /mapping/);
});

test('every environment variable maps to a config path that exists', () => {
  const defaults = loadConfig({ env: {} }) as unknown as Record<string, Record<string, unknown>>;
  for (const [name, spec] of Object.entries(ENV_VARS)) {
    assert.match(name, /^SADP_[A-Z0-9_]+$/);
    const [section, key] = spec.path;
    assert.ok(section! in defaults, `${name}: section ${section}`);
    if (key)
      assert.ok(
        key in (defaults[section!] ?? {}) || spec.type === 'string',
        `${name}: ${spec.path.join('.')}`,
      );
  }
});
