// Binary formats of the scorer's durable state. Every object ends with the
// SHA-256 of everything before it, so a torn write (a crash mid-upload on a
// store without atomic puts) or bit rot is detected on load instead of
// silently feeding wrong scores into a plan.
//
// All integers and floats are little-endian. Sections holding f64 values
// start at multiples of 8 so a decoder can copy them with one memcpy.
//
// Log object (one group commit of one or more accepted reports):
//   0  "SADPLOG1"        8 bytes
//   8  seq               u64   the log sequence number (also in the key)
//   16 reportCount       u32
//   20 entryCount        u32   sum of the reports' lengths
//   24 reserved          8 bytes (zero)
//   32 reports, each:    epoch u32, n u32, flags u32 (1 scores, 2 losses), 0 u32,
//                        ids u32 x n padded to 8, [scores f64 x n], [losses f64 x n]
//   .. sha256            32 bytes
//
// Snapshot (the whole score table as of log sequence number seq):
//   0  "SADPSNP1"        8 bytes
//   8  seq               u64
//   16 scoresReceived    u64
//   24 datasetSize       u32
//   28 reserved          4 bytes
//   32 scores f64 x N, losses f64 x N, flags u8 x N padded to 8
//   .. sha256            32 bytes
//
// Plan envelope (wraps the math library's encodePlan bytes):
//   0  "SADPPLN1"        8 bytes
//   8  epoch             u32
//   12 payload length    u32
//   16 payload, padded to 8
//   .. sha256            32 bytes
import { createHash } from 'node:crypto';
import { SadpError, Status } from '../../common/errors.js';

export const StateErrorCode = {
  /** An object failed its checksum or has the wrong shape. */
  CORRUPT: 'SADP_STATE_CORRUPT',
} as const;

const DIGEST_BYTES = 32;
const HEADER_BYTES = 32;
const REPORT_HEADER_BYTES = 16;
const LOG_MAGIC = 'SADPLOG1';
const SNAPSHOT_MAGIC = 'SADPSNP1';
const PLAN_MAGIC = 'SADPPLN1';

/** Example flags kept per id: which kinds of value have ever been reported. */
export const FLAG_SCORE = 1;
export const FLAG_LOSS = 2;

/** One accepted report, already validated, in flat typed arrays. */
export interface ReportRecord {
  epoch: number;
  ids: Uint32Array;
  /** null when the report carried no scores. */
  scores: Float64Array | null;
  /** null when the report carried no losses. */
  losses: Float64Array | null;
}

export interface SnapshotRecord {
  /** Highest log sequence number whose reports are included. */
  seq: number;
  scoresReceived: number;
  scores: Float64Array;
  losses: Float64Array;
  flags: Uint8Array;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function corrupt(what: string, why: string): SadpError {
  return new SadpError(StateErrorCode.CORRUPT, `${what}: ${why}`, { status: Status.DATA_LOSS });
}

function seal(buf: Uint8Array): void {
  const body = buf.subarray(0, buf.byteLength - DIGEST_BYTES);
  buf.set(createHash('sha256').update(body).digest(), buf.byteLength - DIGEST_BYTES);
}

/** Checks magic and trailing digest; returns a DataView over the body. */
function open(bytes: Uint8Array, magic: string, what: string, headerBytes = HEADER_BYTES): DataView {
  if (bytes.byteLength < headerBytes + DIGEST_BYTES) {
    throw corrupt(what, `${bytes.byteLength} bytes is shorter than a header`);
  }
  const body = bytes.subarray(0, bytes.byteLength - DIGEST_BYTES);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(bytes.subarray(bytes.byteLength - DIGEST_BYTES))) {
    throw corrupt(what, `checksum mismatch over ${bytes.byteLength} bytes (torn or damaged write)`);
  }
  if (Buffer.from(bytes.buffer, bytes.byteOffset, 8).toString('latin1') !== magic) {
    throw corrupt(what, `bad magic, expected ${magic}`);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, body.byteLength);
}

function writeMagic(buf: Uint8Array, magic: string): void {
  buf.set(Buffer.from(magic, 'latin1'), 0);
}

/** Copies `count` elements of a typed-array section out of `bytes` (alignment-safe). */
function copyOut<T extends Float64Array | Uint32Array>(
  Ctor: { new (buffer: ArrayBuffer): T; BYTES_PER_ELEMENT: number },
  bytes: Uint8Array,
  offset: number,
  count: number,
): T {
  const n = count * Ctor.BYTES_PER_ELEMENT;
  const copy = new Uint8Array(n);
  copy.set(bytes.subarray(offset, offset + n));
  return new Ctor(copy.buffer);
}

function reportBytes(r: ReportRecord): number {
  const n = r.ids.length;
  return REPORT_HEADER_BYTES + align8(4 * n) + (r.scores ? 8 * n : 0) + (r.losses ? 8 * n : 0);
}

export function encodeLog(seq: number, reports: readonly ReportRecord[]): Uint8Array {
  let size = HEADER_BYTES + DIGEST_BYTES;
  let entries = 0;
  for (const r of reports) {
    size += reportBytes(r);
    entries += r.ids.length;
  }
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  writeMagic(buf, LOG_MAGIC);
  view.setBigUint64(8, BigInt(seq), true);
  view.setUint32(16, reports.length, true);
  view.setUint32(20, entries, true);
  let off = HEADER_BYTES;
  for (const r of reports) {
    const n = r.ids.length;
    view.setUint32(off, r.epoch, true);
    view.setUint32(off + 4, n, true);
    view.setUint32(off + 8, (r.scores ? FLAG_SCORE : 0) | (r.losses ? FLAG_LOSS : 0), true);
    off += REPORT_HEADER_BYTES;
    // `buf.buffer` is freshly allocated, so every 8-aligned offset is aligned.
    new Uint32Array(buf.buffer, off, n).set(r.ids);
    off += align8(4 * n);
    if (r.scores) {
      new Float64Array(buf.buffer, off, n).set(r.scores);
      off += 8 * n;
    }
    if (r.losses) {
      new Float64Array(buf.buffer, off, n).set(r.losses);
      off += 8 * n;
    }
  }
  seal(buf);
  return buf;
}

export function decodeLog(bytes: Uint8Array, what: string): { seq: number; reports: ReportRecord[] } {
  const view = open(bytes, LOG_MAGIC, what);
  const seq = Number(view.getBigUint64(8, true));
  const count = view.getUint32(16, true);
  const end = view.byteLength;
  const reports: ReportRecord[] = [];
  let off = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (off + REPORT_HEADER_BYTES > end) throw corrupt(what, `report ${i} header past the end`);
    const epoch = view.getUint32(off, true);
    const n = view.getUint32(off + 4, true);
    const flags = view.getUint32(off + 8, true);
    off += REPORT_HEADER_BYTES;
    const r: ReportRecord = { epoch, ids: new Uint32Array(0), scores: null, losses: null };
    const need = align8(4 * n) + (flags & FLAG_SCORE ? 8 * n : 0) + (flags & FLAG_LOSS ? 8 * n : 0);
    if (off + need > end) throw corrupt(what, `report ${i} of ${n} entries runs past the end`);
    r.ids = copyOut(Uint32Array, bytes, off, n);
    off += align8(4 * n);
    if (flags & FLAG_SCORE) {
      r.scores = copyOut(Float64Array, bytes, off, n);
      off += 8 * n;
    }
    if (flags & FLAG_LOSS) {
      r.losses = copyOut(Float64Array, bytes, off, n);
      off += 8 * n;
    }
    reports.push(r);
  }
  if (off !== end) throw corrupt(what, `${end - off} trailing bytes after ${count} reports`);
  return { seq, reports };
}

/** Encodes a snapshot; copies the arrays, so the caller may keep mutating them. */
export function encodeSnapshot(s: SnapshotRecord): Uint8Array {
  const n = s.scores.length;
  const buf = new Uint8Array(HEADER_BYTES + 16 * n + align8(n) + DIGEST_BYTES);
  const view = new DataView(buf.buffer);
  writeMagic(buf, SNAPSHOT_MAGIC);
  view.setBigUint64(8, BigInt(s.seq), true);
  view.setBigUint64(16, BigInt(s.scoresReceived), true);
  view.setUint32(24, n, true);
  new Float64Array(buf.buffer, HEADER_BYTES, n).set(s.scores);
  new Float64Array(buf.buffer, HEADER_BYTES + 8 * n, n).set(s.losses);
  buf.set(s.flags, HEADER_BYTES + 16 * n);
  seal(buf);
  return buf;
}

export function decodeSnapshot(bytes: Uint8Array, datasetSize: number, what: string): SnapshotRecord {
  const view = open(bytes, SNAPSHOT_MAGIC, what);
  const n = view.getUint32(24, true);
  if (n !== datasetSize) throw corrupt(what, `holds ${n} examples, the job has ${datasetSize}`);
  if (view.byteLength !== HEADER_BYTES + 16 * n + align8(n)) {
    throw corrupt(what, `${view.byteLength} body bytes do not fit ${n} examples`);
  }
  const flags = new Uint8Array(n);
  flags.set(bytes.subarray(HEADER_BYTES + 16 * n, HEADER_BYTES + 17 * n));
  return {
    seq: Number(view.getBigUint64(8, true)),
    scoresReceived: Number(view.getBigUint64(16, true)),
    scores: copyOut(Float64Array, bytes, HEADER_BYTES, n),
    losses: copyOut(Float64Array, bytes, HEADER_BYTES + 8 * n, n),
    flags,
  };
}

export function encodePlanEnvelope(epoch: number, payload: Uint8Array): Uint8Array {
  const buf = new Uint8Array(16 + align8(payload.byteLength) + DIGEST_BYTES);
  const view = new DataView(buf.buffer);
  writeMagic(buf, PLAN_MAGIC);
  view.setUint32(8, epoch, true);
  view.setUint32(12, payload.byteLength, true);
  buf.set(payload, 16);
  seal(buf);
  return buf;
}

export function decodePlanEnvelope(bytes: Uint8Array, epoch: number, what: string): Uint8Array {
  const view = open(bytes, PLAN_MAGIC, what, 16);
  const stored = view.getUint32(8, true);
  if (stored !== epoch) throw corrupt(what, `holds the plan of epoch ${stored}, not ${epoch}`);
  const len = view.getUint32(12, true);
  if (16 + align8(len) !== view.byteLength) throw corrupt(what, `payload length ${len} does not fit`);
  // A plain copy: stores may hand back a Buffer, whose slice() is a view on a shared pool.
  return new Uint8Array(bytes.subarray(16, 16 + len));
}
