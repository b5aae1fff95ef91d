// The closed set of error codes: unknown literals do not compile, the
// generated table lists exactly the declared codes, and a peer's unknown code
// is not taken for one of ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { SadpError, Status, fromGrpcError, isSadpError } from '../../common/errors.js';
import { SADP_ERROR_CODES, isSadpErrorCode } from '../../common/error-codes.js';
import { invalidScore, isValidScore } from '../../common/scores.js';

test('an unknown code is a compile error; known codes construct', () => {
  // @ts-expect-error SADP_NO_SUCH_CODE is not in SadpErrorCode
  const unknown = new SadpError('SADP_NO_SUCH_CODE', 'x');
  assert.equal(unknown.code, 'SADP_NO_SUCH_CODE');
  const loader = new SadpError('SADP_LOADER_PERMISSION_DENIED', 'x');
  assert.ok(isSadpError(loader, 'SADP_LOADER_PERMISSION_DENIED'));
});

test('docs/errors.md lists every declared code and nothing else (bench codes aside)', async () => {
  const table = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const listed = new Set([...table.matchAll(/^\| `(SADP_[A-Z0-9_]+)` \|/gm)].map((m) => m[1] as string));
  const declared = [...SADP_ERROR_CODES].filter((c) => !c.startsWith('SADP_BENCH_'));
  assert.deepEqual([...listed].sort(), declared.sort());
  for (const merged of [
    'SADP_BAD_ACK',
    'SADP_SNN_BAD_WEIGHT',
    'SADP_INVALID_ARGUMENT',
    'SADP_MATH_BAD_SCORE',
  ]) {
    assert.equal(isSadpErrorCode(merged), false, `${merged} was merged away`);
  }
  assert.ok(isSadpErrorCode('SADP_LOADER_UNAVAILABLE') && isSadpErrorCode('SADP_LOADER_STATUS_42'));
});

test("a peer's code this version does not know stays in the message under the fallback code", () => {
  const err = fromGrpcError(
    { code: Status.INVALID_ARGUMENT, details: 'SADP_FROM_THE_FUTURE: something new' },
    'scorer a:1',
  );
  assert.equal(err.code, 'SADP_RPC_FAILED');
  assert.equal(err.status, Status.INVALID_ARGUMENT);
  assert.equal(err.message, 'scorer a:1: SADP_FROM_THE_FUTURE: something new');
});

test('one score rule: finite and >= 0, NaN and infinities fail, one code', () => {
  for (const v of [0, 1, 1e300, Number.MAX_VALUE]) assert.equal(isValidScore(v), true, String(v));
  for (const v of [-1, -0.0001, Number.NaN, Infinity, -Infinity])
    assert.equal(isValidScore(v), false, String(v));
  const err = invalidScore('scores[3] = NaN (id 42)');
  assert.equal(err.code, 'SADP_SCORE_INVALID');
  assert.equal(err.status, Status.INVALID_ARGUMENT);
  assert.equal(err.message, 'scores[3] = NaN (id 42) must be a finite number >= 0');
});
