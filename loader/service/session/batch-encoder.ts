// Encodes one StreamEpochResponse{batch: BatchPart} straight into one buffer
// of its exact size. protobufjs 8's writer grows a buffer by doubling and
// shifts nested content at every length prefix, which cost ~500 us per
// 110 KB sample; here the sizes are computed first, then every byte is
// written once (field bytes copied once, from the fetched range).
// The output is byte-identical to the generated encoder (`pb.StreamEpochResponse
// .encode`): same field order, defaults omitted, map entries in Object.keys order.
// On the stream, parts go out as SelfEncoding messages (selfEncodingPart) whose
// bytes are deferred until grpc-js serializes them. Patched grpc-js (patches/)
// asks for the whole frame (5 bytes of prefix, then the message), encoded into a
// pooled buffer that serves later parts once the write completed; unpatched
// grpc-js allocates the frame itself and calls copy(), which encodes into it.
// Either way the field bytes are copied once, fetched range -> frame (an encoded
// buffer, then grpc-js's copy of it, cost one more 110 KB memcpy per sample).
import { SadpError } from '../../../common/errors.js';
import { ENCODE_SELF, GRPC_FRAMED, type DeferredBytes, type SelfEncoding } from '../../../proto/index.js';

/** A Sample message, or one piece of a sample split across parts (see loader.proto). */
export interface SamplePiece {
  id: number;
  /** '' on a continuation piece. */
  key: string;
  /** Field bytes (whole, or this piece's slice). Views, not copies. */
  fields: Record<string, Uint8Array>;
  /** 0 on a continuation piece. */
  weight: number;
  padded: boolean;
  /** True on the second and later pieces of a split sample. */
  continued: boolean;
}

export interface PartPlan {
  index: number;
  part: number;
  parts: number;
  samples: SamplePiece[];
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function writeVarint(buf: Buffer, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** Sizes of each sample's body and of each of its map entries, filled in by measure(). */
interface Measured {
  keyBytes: number[];
  sampleBytes: number[];
  /** Per sample, per field in Object.keys order: [name bytes, entry bytes]. */
  entries: [string, number, number, Uint8Array][][];
}

function measure(samples: readonly SamplePiece[]): { body: number; m: Measured } {
  const m: Measured = { keyBytes: [], sampleBytes: [], entries: [] };
  let body = 0;
  for (const s of samples) {
    let n = 0;
    if (s.id !== 0) n += 1 + varintSize(s.id);
    const keyBytes = s.key === '' ? 0 : Buffer.byteLength(s.key);
    if (keyBytes > 0) n += 1 + varintSize(keyBytes) + keyBytes;
    const entries: [string, number, number, Uint8Array][] = [];
    for (const name of Object.keys(s.fields)) {
      const value = s.fields[name] as Uint8Array;
      const nameBytes = Buffer.byteLength(name);
      const entry =
        1 + varintSize(nameBytes) + nameBytes + 1 + varintSize(value.byteLength) + value.byteLength;
      entries.push([name, nameBytes, entry, value]);
      n += 1 + varintSize(entry) + entry;
    }
    if (!Object.is(s.weight, 0)) n += 9;
    if (s.padded) n += 2;
    if (s.continued) n += 2;
    m.keyBytes.push(keyBytes);
    m.sampleBytes.push(n);
    m.entries.push(entries);
    body += 1 + varintSize(n) + n;
  }
  return { body, m };
}

/** Encoded StreamEpochResponse carrying `part` as its `batch`: one allocation, exact size. */
export function encodeBatchPartResponse(part: PartPlan): Buffer {
  const sized = sizePart(part);
  const buf = Buffer.allocUnsafe(sized.total);
  writePart(part, sized, buf, 0);
  return buf;
}

/** A batch part as the stream writes it; written() once grpc-js has sent it. */
export interface WritablePart extends SelfEncoding {
  /** The part's bytes are on the socket: its frame serves later parts. */
  written(): void;
}

/**
 * `part` as a message grpc-js encodes when it writes it (see SelfEncoding):
 * the bytes of encodeBatchPartResponse, written by copy() into the frame
 * grpc-js allocates, or (patched grpc-js) framed in a recycled buffer.
 */
export function selfEncodingPart(part: PartPlan): WritablePart {
  let frame: ArrayBuffer | undefined;
  return {
    [ENCODE_SELF]: () =>
      deferredPart(part, (buf) => {
        frame = buf;
      }),
    written() {
      if (frame) releaseFrame(frame);
      frame = undefined;
    },
  };
}

/**
 * Frames for the patched grpc-js, in whole MiB: a part's frame is written by
 * the kernel after the call's write callback at the latest, then serves the
 * next part. Without them every part was a new multi-MB buffer that often
 * outlived a young-generation GC, and V8 ran full GCs to free them.
 */
const FRAME_UNIT = 1024 * 1024;
/** Free frames kept (a stream writes one batch's parts, a few MB, before it waits). */
const MAX_FREE_FRAMES = 8;
/**
 * Bytes of free frames kept, whatever the part size: with a large
 * maxMessageBytes eight frames could hold hundreds of MB for good. A frame
 * larger than this is never kept.
 */
const MAX_FREE_FRAME_BYTES = 32 * FRAME_UNIT;
const freeFrames: ArrayBuffer[] = [];
let freeFrameBytes = 0;

function takeFrame(n: number): ArrayBuffer {
  for (let i = freeFrames.length - 1; i >= 0; i--) {
    const f = freeFrames[i] as ArrayBuffer;
    if (f.byteLength >= n && f.byteLength < 2 * n + FRAME_UNIT) {
      freeFrames.splice(i, 1);
      freeFrameBytes -= f.byteLength;
      return f;
    }
  }
  return new ArrayBuffer(Math.ceil(n / FRAME_UNIT) * FRAME_UNIT);
}

function releaseFrame(frame: ArrayBuffer): void {
  if (freeFrames.length >= MAX_FREE_FRAMES || freeFrameBytes + frame.byteLength > MAX_FREE_FRAME_BYTES)
    return;
  freeFrames.push(frame);
  freeFrameBytes += frame.byteLength;
}

/** Free frames held (tests). */
export function freeFrameCount(): number {
  return freeFrames.length;
}

/** Bytes of the free frames held (tests): at most MAX_FREE_FRAME_BYTES. */
export function freeFrameBytesHeld(): number {
  return freeFrameBytes;
}

function deferredPart(part: PartPlan, took: (frame: ArrayBuffer) => void): DeferredBytes {
  const sized = sizePart(part);
  return {
    byteLength: sized.total,
    copy(target, targetStart = 0) {
      if (target.byteLength - targetStart < sized.total) {
        throw new SadpError(
          'SADP_INTERNAL',
          `BatchPart of batch ${part.index} part ${part.part} needs ${sized.total} bytes, the frame holds ${target.byteLength - targetStart}`,
        );
      }
      const into = Buffer.isBuffer(target)
        ? target
        : Buffer.from(target.buffer, target.byteOffset, target.byteLength);
      writePart(part, sized, into, targetStart);
      return sized.total;
    },
    [GRPC_FRAMED]() {
      const frame = takeFrame(sized.total + 5);
      took(frame);
      const buf = Buffer.from(frame, 0, sized.total + 5);
      buf[0] = 0; // not compressed
      buf.writeUInt32BE(sized.total, 1);
      writePart(part, sized, buf, 5);
      return buf;
    },
  };
}

interface SizedPart {
  /** Bytes of the StreamEpochResponse. */
  total: number;
  partBytes: number;
  m: Measured;
}

function sizePart(part: PartPlan): SizedPart {
  const { body: samplesBytes, m } = measure(part.samples);
  let partBytes = samplesBytes;
  if (part.index !== 0) partBytes += 1 + varintSize(part.index);
  if (part.part !== 0) partBytes += 1 + varintSize(part.part);
  if (part.parts !== 0) partBytes += 1 + varintSize(part.parts);
  return { total: 1 + varintSize(partBytes) + partBytes, partBytes, m };
}

/** Writes the StreamEpochResponse of `part` into `buf` from `start`. */
function writePart(part: PartPlan, sized: SizedPart, buf: Buffer, start: number): void {
  const { total, partBytes, m } = sized;
  let pos = start;
  buf[pos++] = 0x12; // StreamEpochResponse.batch: field 2, length-delimited
  pos = writeVarint(buf, pos, partBytes);
  if (part.index !== 0) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, part.index);
  }
  if (part.part !== 0) {
    buf[pos++] = 0x10;
    pos = writeVarint(buf, pos, part.part);
  }
  if (part.parts !== 0) {
    buf[pos++] = 0x18;
    pos = writeVarint(buf, pos, part.parts);
  }
  for (let k = 0; k < part.samples.length; k++) {
    const s = part.samples[k] as SamplePiece;
    buf[pos++] = 0x22; // BatchPart.samples: field 4
    pos = writeVarint(buf, pos, m.sampleBytes[k] as number);
    if (s.id !== 0) {
      buf[pos++] = 0x08;
      pos = writeVarint(buf, pos, s.id);
    }
    const keyBytes = m.keyBytes[k] as number;
    if (keyBytes > 0) {
      buf[pos++] = 0x12;
      pos = writeVarint(buf, pos, keyBytes);
      pos += buf.write(s.key, pos, keyBytes, 'utf8');
    }
    for (const [name, nameBytes, entry, value] of m.entries[k] as [string, number, number, Uint8Array][]) {
      buf[pos++] = 0x1a; // Sample.fields: field 3 (map entry)
      pos = writeVarint(buf, pos, entry);
      buf[pos++] = 0x0a; // entry key
      pos = writeVarint(buf, pos, nameBytes);
      pos += buf.write(name, pos, nameBytes, 'utf8');
      buf[pos++] = 0x12; // entry value
      pos = writeVarint(buf, pos, value.byteLength);
      buf.set(value, pos);
      pos += value.byteLength;
    }
    if (!Object.is(s.weight, 0)) {
      buf[pos++] = 0x21; // Sample.weight: field 4, 64-bit
      buf.writeDoubleLE(s.weight, pos);
      pos += 8;
    }
    if (s.padded) {
      buf[pos++] = 0x28;
      buf[pos++] = 1;
    }
    if (s.continued) {
      buf[pos++] = 0x30;
      buf[pos++] = 1;
    }
  }
  if (pos - start !== total) {
    throw new SadpError(
      'SADP_INTERNAL',
      `BatchPart encoder wrote ${pos - start} bytes of batch ${part.index} part ${part.part}, sized ${total}`,
    );
  }
}
