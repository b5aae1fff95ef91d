// Canonical bytes of a plan: its digest, and a self-checking binary encoding
// for persistence (plan snapshots in object storage).
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { SadpError, Status, invalidArgument } from '../../common/errors.js';
import type { EpochPlan } from './types.js';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** The bytes of a typed array in little-endian order (a view on LE hosts, a copy otherwise). */
function littleEndianBytes(array: Uint32Array | Float64Array): Uint8Array {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const copy = new Uint8Array(bytes.length);
  const view = new DataView(copy.buffer);
  if (array instanceof Uint32Array) array.forEach((v, i) => view.setUint32(i * 4, v, true));
  else array.forEach((v, i) => view.setFloat64(i * 8, v, true));
  return copy;
}

function checkPlanArrays(ids: Uint32Array, weights: Float64Array): void {
  if (ids.length !== weights.length) {
    throw invalidArgument('SADP_PLAN_BAD_ARRAYS', `plan has ${ids.length} ids but ${weights.length} weights`);
  }
}

/** Hex SHA-256 of ids as u32 LE followed by weights as f64 LE. */
export function planDigest(ids: Uint32Array, weights: Float64Array): string {
  checkPlanArrays(ids, weights);
  return createHash('sha256').update(littleEndianBytes(ids)).update(littleEndianBytes(weights)).digest('hex');
}

/*
 * Encoded plan, all integers and floats little-endian, 192-byte header:
 *   0   4  magic "SPLN"
 *   4   2  format version (1)
 *   6   2  header length in bytes (192)
 *   8   4  epoch (u32)
 *  12   4  count: number of selected ids (u32)
 *  16   8  pruneRatio (f64)
 *  24   8  expectedSize (f64)
 *  32   8  stats.minProbability (f64)
 *  40   8  stats.maxProbability (f64)
 *  48   8  stats.maxWeight (f64)
 *  56   8  stats.smoothingOffset (f64, may be Infinity)
 *  64   8  stats.computeMs (f64)
 *  72   4  stats.cappingPasses (u32)
 *  76   4  flags (u32): bit 0 = stats.floorInfeasible; other bits 0
 *  80  80  stats.histogram: 20 x u32
 * 160  32  SHA-256 of the body (= planDigest), raw
 * 192      body: count x u32 ids, then count x f64 weights (the digest's bytes)
 * Decoding recomputes the digest, so a torn or bit-flipped snapshot is
 * rejected instead of silently changing which examples train.
 */
const MAGIC = 0x4e4c5053; // "SPLN" read as u32 LE
const VERSION = 1;
const HEADER_BYTES = 192;
const HISTOGRAM_BINS = 20;
const FLAG_FLOOR_INFEASIBLE = 1;

export function encodePlan(plan: EpochPlan): Uint8Array {
  const { ids, weights, stats } = plan;
  checkPlanArrays(ids, weights);
  if (stats.histogram.length !== HISTOGRAM_BINS) {
    throw invalidArgument(
      'SADP_PLAN_BAD_ARRAYS',
      `plan histogram has ${stats.histogram.length} bins, expected ${HISTOGRAM_BINS}`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(plan.digest)) {
    throw invalidArgument(
      'SADP_PLAN_BAD_DIGEST',
      `plan digest must be 64 lowercase hex characters, got '${plan.digest}'`,
    );
  }
  const count = ids.length;
  const bytes = new Uint8Array(HEADER_BYTES + 12 * count);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, VERSION, true);
  view.setUint16(6, HEADER_BYTES, true);
  view.setUint32(8, plan.epoch, true);
  view.setUint32(12, count, true);
  view.setFloat64(16, plan.pruneRatio, true);
  view.setFloat64(24, plan.expectedSize, true);
  view.setFloat64(32, stats.minProbability, true);
  view.setFloat64(40, stats.maxProbability, true);
  view.setFloat64(48, stats.maxWeight, true);
  view.setFloat64(56, stats.smoothingOffset, true);
  view.setFloat64(64, stats.computeMs, true);
  view.setUint32(72, stats.cappingPasses, true);
  view.setUint32(76, stats.floorInfeasible ? FLAG_FLOOR_INFEASIBLE : 0, true);
  for (let b = 0; b < HISTOGRAM_BINS; b++) view.setUint32(80 + 4 * b, stats.histogram[b] ?? 0, true);
  bytes.set(Buffer.from(plan.digest, 'hex'), 160);
  bytes.set(littleEndianBytes(ids), HEADER_BYTES);
  bytes.set(littleEndianBytes(weights), HEADER_BYTES + 4 * count);
  return bytes;
}

function corrupt(message: string): SadpError {
  return new SadpError('SADP_PLAN_CORRUPT', message, { status: Status.DATA_LOSS });
}

export function decodePlan(bytes: Uint8Array): EpochPlan {
  if (bytes.length < HEADER_BYTES)
    throw corrupt(`encoded plan has ${bytes.length} bytes, less than its ${HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== MAGIC)
    throw corrupt(`encoded plan has magic 0x${magic.toString(16)} at offset 0, expected "SPLN"`);
  const version = view.getUint16(4, true);
  if (version !== VERSION)
    throw corrupt(`encoded plan has format version ${version} at offset 4, expected ${VERSION}`);
  const headerBytes = view.getUint16(6, true);
  if (headerBytes !== HEADER_BYTES)
    throw corrupt(`encoded plan has header length ${headerBytes} at offset 6, expected ${HEADER_BYTES}`);
  const epoch = view.getUint32(8, true);
  const count = view.getUint32(12, true);
  const expectedLength = HEADER_BYTES + 12 * count;
  if (bytes.length !== expectedLength) {
    throw corrupt(
      `encoded plan of epoch ${epoch} has ${bytes.length} bytes, expected ${expectedLength} for ${count} ids`,
    );
  }
  const flags = view.getUint32(76, true);
  if ((flags & ~FLAG_FLOOR_INFEASIBLE) !== 0)
    throw corrupt(`encoded plan of epoch ${epoch} has unknown flags 0x${flags.toString(16)} at offset 76`);
  const body = bytes.subarray(HEADER_BYTES);
  const digest = createHash('sha256').update(body).digest('hex');
  const stored = Buffer.from(bytes.buffer, bytes.byteOffset + 160, 32).toString('hex');
  if (digest !== stored)
    throw corrupt(
      `encoded plan of epoch ${epoch}: body SHA-256 ${digest} does not match stored ${stored} (offset 160)`,
    );

  // Copy into fresh, aligned buffers: `new Uint8Array(view)` copies even when
  // `bytes` is a Node Buffer (whose slice() is a view into a shared pool).
  const idBytes = new Uint8Array(body.subarray(0, 4 * count));
  const weightBytes = new Uint8Array(body.subarray(4 * count));
  const ids = new Uint32Array(count);
  const weights = new Float64Array(count);
  if (LITTLE_ENDIAN_HOST) {
    ids.set(new Uint32Array(idBytes.buffer));
    weights.set(new Float64Array(weightBytes.buffer));
  } else {
    const iv = new DataView(idBytes.buffer);
    const wv = new DataView(weightBytes.buffer);
    for (let i = 0; i < count; i++) {
      ids[i] = iv.getUint32(4 * i, true);
      weights[i] = wv.getFloat64(8 * i, true);
    }
  }
  for (let i = 1; i < count; i++) {
    if (ids[i]! <= ids[i - 1]!)
      throw corrupt(`encoded plan of epoch ${epoch}: ids not ascending at position ${i} (id ${ids[i]})`);
  }
  const histogram = new Uint32Array(HISTOGRAM_BINS);
  for (let b = 0; b < HISTOGRAM_BINS; b++) histogram[b] = view.getUint32(80 + 4 * b, true);
  return {
    epoch,
    pruneRatio: view.getFloat64(16, true),
    expectedSize: view.getFloat64(24, true),
    ids,
    weights,
    stats: {
      minProbability: view.getFloat64(32, true),
      maxProbability: view.getFloat64(40, true),
      maxWeight: view.getFloat64(48, true),
      histogram,
      cappingPasses: view.getUint32(72, true),
      smoothingOffset: view.getFloat64(56, true),
      floorInfeasible: (flags & FLAG_FLOOR_INFEASIBLE) !== 0,
      computeMs: view.getFloat64(64, true),
    },
    digest,
  };
}
