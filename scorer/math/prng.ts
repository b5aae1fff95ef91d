// Counter-based PRNG: Threefry-4x32 with 20 rounds (Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3", SC'11; the Random123 library). A draw is
// a pure function of (key, counter), so every process derives the same plan
// without sharing state, and the draw for example i never depends on how many
// draws came before it. 20 rounds is Random123's default, a margin over the
// fewest rounds that pass TestU01 BigCrush. Only 32-bit adds, rotates and
// xors: no BigInt on the hot path.
//
// Mapping: key = (seed low word, seed high word, 0, 0); counter =
// (floor(id / 2), epoch, 0, 0). The four output words give two uniforms,
// words 0-1 for the even id and words 2-3 for the odd one, each
// (k + 0.5) / 2^52 with k the top 26 bits of both words: 52 random bits,
// strictly inside (0, 1).
import { invalidArgument } from '../../common/errors.js';

const KS_PARITY = 0x1bd11bda;
const TWO_POW_MINUS_52 = 2 ** -52;
const TWO_POW_26 = 2 ** 26;
const MAX_U64 = (1n << 64n) - 1n;

/** The Threefry key of a 64-bit job seed. */
export interface PrngKey {
  readonly k0: number;
  readonly k1: number;
}

export function prngKey(seed: bigint): PrngKey {
  if (typeof seed !== 'bigint' || seed < 0n || seed > MAX_U64) {
    throw invalidArgument('SADP_MATH_BAD_SEED', `seed must be a bigint in [0, 2^64), got ${String(seed)}`);
  }
  return { k0: Number(seed & 0xffffffffn) | 0, k1: Number(seed >> 32n) | 0 };
}

/**
 * Writes the uniforms of ids first .. first + count - 1 (rounded up to an even
 * count) for `epoch` into dst[0 ..]. `first` must be even; dst needs
 * count + (count & 1) elements.
 */
export function fillUniforms(
  dst: Float64Array,
  first: number,
  count: number,
  epoch: number,
  key: PrngKey,
): void {
  if (first % 2 !== 0) {
    throw invalidArgument(
      'SADP_MATH_BAD_COUNTER',
      `first id ${first} must be even: ids pair up per Threefry block`,
    );
  }
  const k0 = key.k0;
  const k1 = key.k1;
  const k2 = 0;
  const k3 = 0;
  const k4 = (KS_PARITY ^ k0 ^ k1 ^ k2 ^ k3) | 0;
  const c1 = epoch | 0;
  const firstPair = first / 2;
  const pairs = (count + 1) >>> 1;
  for (let j = 0; j < pairs; j++) {
    let x0 = (firstPair + j + k0) | 0;
    let x1 = (c1 + k1) | 0;
    let x2 = k2;
    let x3 = k3;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 10) | (x1 >>> 22)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 26) | (x3 >>> 6)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 11) | (x3 >>> 21)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 21) | (x1 >>> 11)) ^ x2;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 27) | (x3 >>> 5)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 23) | (x3 >>> 9)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 5) | (x1 >>> 27)) ^ x2;
    x0 = (x0 + k1) | 0;
    x1 = (x1 + k2) | 0;
    x2 = (x2 + k3) | 0;
    x3 = (x3 + k4 + 1) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 20) | (x3 >>> 12)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 17) | (x3 >>> 15)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 11) | (x1 >>> 21)) ^ x2;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 25) | (x1 >>> 7)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 10) | (x3 >>> 22)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 18) | (x3 >>> 14)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 20) | (x1 >>> 12)) ^ x2;
    x0 = (x0 + k2) | 0;
    x1 = (x1 + k3) | 0;
    x2 = (x2 + k4) | 0;
    x3 = (x3 + k0 + 2) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 10) | (x1 >>> 22)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 26) | (x3 >>> 6)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 11) | (x3 >>> 21)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 21) | (x1 >>> 11)) ^ x2;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 27) | (x3 >>> 5)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 23) | (x3 >>> 9)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 5) | (x1 >>> 27)) ^ x2;
    x0 = (x0 + k3) | 0;
    x1 = (x1 + k4) | 0;
    x2 = (x2 + k0) | 0;
    x3 = (x3 + k1 + 3) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 20) | (x3 >>> 12)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 17) | (x3 >>> 15)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 11) | (x1 >>> 21)) ^ x2;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 25) | (x1 >>> 7)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 10) | (x3 >>> 22)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 18) | (x3 >>> 14)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 20) | (x1 >>> 12)) ^ x2;
    x0 = (x0 + k4) | 0;
    x1 = (x1 + k0) | 0;
    x2 = (x2 + k1) | 0;
    x3 = (x3 + k2 + 4) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 10) | (x1 >>> 22)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 26) | (x3 >>> 6)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 11) | (x3 >>> 21)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 21) | (x1 >>> 11)) ^ x2;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x2 = (x2 + x3) | 0;
    x3 = ((x3 << 27) | (x3 >>> 5)) ^ x2;
    x0 = (x0 + x3) | 0;
    x3 = ((x3 << 23) | (x3 >>> 9)) ^ x0;
    x2 = (x2 + x1) | 0;
    x1 = ((x1 << 5) | (x1 >>> 27)) ^ x2;
    x0 = (x0 + k0) | 0;
    x1 = (x1 + k1) | 0;
    x2 = (x2 + k2) | 0;
    x3 = (x3 + k3 + 5) | 0;
    dst[2 * j] = ((x0 >>> 6) * TWO_POW_26 + (x1 >>> 6) + 0.5) * TWO_POW_MINUS_52;
    dst[2 * j + 1] = ((x2 >>> 6) * TWO_POW_26 + (x3 >>> 6) + 0.5) * TWO_POW_MINUS_52;
  }
}

const R0 = [10, 11, 13, 23, 6, 17, 25, 18] as const;
const R1 = [26, 21, 27, 5, 20, 11, 10, 20] as const;

/** The raw Threefry-4x32-20 block (reference implementation, for known-answer tests). */
export function threefry4x32(counter: readonly number[], key: readonly number[]): number[] {
  const word = (a: readonly number[], i: number): number => (a[i] ?? 0) | 0;
  const ks = [word(key, 0), word(key, 1), word(key, 2), word(key, 3)];
  ks.push((KS_PARITY ^ ks[0]! ^ ks[1]! ^ ks[2]! ^ ks[3]!) | 0);
  const x = [0, 1, 2, 3].map((i) => (word(counter, i) + ks[i]!) | 0);
  const rotl = (v: number, s: number): number => (v << s) | (v >>> (32 - s));
  for (let round = 0; round < 20; round++) {
    const a = R0[round % 8]!;
    const b = R1[round % 8]!;
    // Even rounds mix (0,1) and (2,3); odd rounds (0,3) and (2,1).
    const [p, q] = round % 2 === 0 ? [1, 3] : [3, 1];
    x[0] = (x[0]! + x[p]!) | 0;
    x[p] = rotl(x[p]!, a) ^ x[0];
    x[2] = (x[2]! + x[q]!) | 0;
    x[q] = rotl(x[q]!, b) ^ x[2];
    if (round % 4 === 3) {
      const s = (round + 1) / 4;
      for (let i = 0; i < 4; i++) x[i] = (x[i]! + ks[(s + i) % 5]! + (i === 3 ? s : 0)) | 0;
    }
  }
  return x.map((v) => v >>> 0);
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalidArgument('SADP_MATH_BAD_COUNTER', `${name} must be an integer in [0, 2^32), got ${value}`);
  }
}

const scratch = new Float64Array(2);

/**
 * A uniform double in (0, 1) (so in [0, 1)) that depends only on
 * (seed, epoch, id); 52 random bits. Same value in every process. The planner
 * draws the same numbers in bulk with fillUniforms.
 */
export function uniform(seed: bigint, epoch: number, id: number): number {
  checkU32('epoch', epoch);
  checkU32('id', id);
  const odd = id % 2;
  fillUniforms(scratch, id - odd, 2, epoch, prngKey(seed));
  return scratch[odd]!;
}
