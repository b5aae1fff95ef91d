// The counter-based PRNG behind every Bernoulli draw: Threefry-4x32-20
// known answers, the documented mapping to uniforms, determinism, and the
// distribution of the uniforms.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSadpError } from '../../../common/errors.js';
import { threefry4x32, uniform } from '../../../scorer/math/index.js';

const hex = (words: number[]): string[] => words.map((w) => w.toString(16).padStart(8, '0'));

/** Upper quantile of chi-square with `df` degrees of freedom (Wilson-Hilferty), z standard deviations out. */
function chiSquareUpper(df: number, z: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('threefry4x32', () => {
  test('reproduces the Random123 known-answer vectors (20 rounds)', () => {
    assert.deepEqual(hex(threefry4x32([0, 0, 0, 0], [0, 0, 0, 0])), [
      '9c6ca96a',
      'e17eae66',
      'fc10ecd4',
      '5256a7d8',
    ]);
    const ones = 0xffffffff;
    assert.deepEqual(hex(threefry4x32([ones, ones, ones, ones], [ones, ones, ones, ones])), [
      '2a881696',
      '57012287',
      'f6c7446e',
      'a16a6732',
    ]);
    assert.deepEqual(
      hex(
        threefry4x32(
          [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
          [0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89],
        ),
      ),
      ['59cd1dbb', 'b8879579', '86b5d00c', 'ac8b6d84'],
    );
  });
});

describe('uniform', () => {
  test('is the documented function of the Threefry block: key = seed, counter = (id / 2, epoch)', () => {
    const seed = 0x0123456789abcdefn;
    const key = [Number(seed & 0xffffffffn), Number(seed >> 32n), 0, 0];
    for (const [epoch, pair] of [
      [0, 0],
      [7, 12345],
      [0xffffffff, 0x7fffffff],
    ] as const) {
      const [x0, x1, x2, x3] = threefry4x32([pair, epoch, 0, 0], key) as [number, number, number, number];
      const even = ((x0 >>> 6) * 2 ** 26 + (x1 >>> 6) + 0.5) / 2 ** 52;
      const odd = ((x2 >>> 6) * 2 ** 26 + (x3 >>> 6) + 0.5) / 2 ** 52;
      assert.equal(uniform(seed, epoch, 2 * pair), even);
      assert.equal(uniform(seed, epoch, 2 * pair + 1), odd);
    }
  });

  test('depends only on (seed, epoch, id)', () => {
    const a = uniform(42n, 3, 1000);
    assert.equal(uniform(42n, 3, 1000), a);
    assert.notEqual(uniform(43n, 3, 1000), a);
    assert.notEqual(uniform(42n, 4, 1000), a);
    assert.notEqual(uniform(42n, 3, 1001), a);
    assert.notEqual(uniform(42n | (1n << 40n), 3, 1000), a, 'the high word of the seed matters');
    assert.ok(
      uniform((1n << 64n) - 1n, 0xffffffff, 0xffffffff) > 0,
      'uniform((1n << 64n) - 1n, 0xffffffff, 0xffffffff) > 0',
    );
  });

  test('is uniform on (0, 1): mean, buckets, and no correlation between neighbours or epochs', () => {
    const n = 100_000;
    const buckets = new Uint32Array(100);
    let sum = 0;
    let pairProduct = 0;
    let epochProduct = 0;
    let previous = 0;
    for (let id = 0; id < n; id++) {
      const u = uniform(7n, 11, id);
      assert.ok(u > 0 && u < 1, 'u > 0 && u < 1');
      sum += u;
      buckets[Math.floor(u * 100)]!++;
      if (id % 2 === 1) pairProduct += (u - 0.5) * (previous - 0.5);
      epochProduct += (u - 0.5) * (uniform(7n, 12, id) - 0.5);
      previous = u;
    }
    // Mean of n uniforms has standard deviation sqrt(1 / (12 n)).
    assert.ok(Math.abs(sum / n - 0.5) < 5 * Math.sqrt(1 / (12 * n)), `mean ${sum / n}`);
    const expected = n / 100;
    let chi2 = 0;
    for (const count of buckets) chi2 += (count - expected) ** 2 / expected;
    assert.ok(chi2 < chiSquareUpper(99, 5), `chi-square ${chi2}`);
    // Covariance of independent uniforms: 0 with standard deviation 1 / (12 sqrt(m)).
    assert.ok(
      Math.abs(pairProduct / (n / 2)) < 5 / (12 * Math.sqrt(n / 2)),
      `ids 2j, 2j+1 covariance ${pairProduct}`,
    );
    assert.ok(
      Math.abs(epochProduct / n) < 5 / (12 * Math.sqrt(n)),
      `epochs 11, 12 covariance ${epochProduct}`,
    );
  });

  test('rejects ids, epochs and seeds out of range', () => {
    assert.throws(
      () => uniform(1n, 0, -1),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_COUNTER') && err.message.includes('id'),
    );
    assert.throws(
      () => uniform(1n, 2 ** 32, 0),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_COUNTER') && err.message.includes('epoch'),
    );
    assert.throws(
      () => uniform(1n, 0, 0.5),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_COUNTER'),
    );
    assert.throws(
      () => uniform(-1n, 0, 0),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_SEED'),
    );
    assert.throws(
      () => uniform(1n << 64n, 0, 0),
      (err: unknown) => isSadpError(err, 'SADP_MATH_BAD_SEED'),
    );
  });
});
