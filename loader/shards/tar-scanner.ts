// Byte offsets of tar members, computed from the raw stream.
//
// tar-stream decodes headers (ustar prefix, PAX and GNU long names, encodings)
// but does not say where a member's first header starts; the loader needs
// that to fetch a sample by byte range. This scanner walks the same bytes
// block by block: it validates each header's checksum and magic, reads the
// size (octal or GNU base-256, PAX `size` override), groups PAX (x, g) and GNU
// (L, K) extension headers with the member they describe, and skips data plus
// padding. It decodes nothing else; names come from tar-stream, matched 1:1
// in order (both skip zero blocks and treat directories as data-less, like
// tar-stream does). Memory: one 512-byte header plus at most MAX_PAX_BYTES of
// a PAX header being read.
import { SadpError, Status } from '../../common/errors.js';
import { TAR_BLOCK, padded } from './format.js';

/** One non-extension header and where its bytes are. */
export interface TarRecord {
  /** First header of the member, including its extension headers. */
  headerOffset: number;
  /** Offset of the member's own (ustar) header. */
  ustarOffset: number;
  dataOffset: number;
  size: number;
  /** Raw typeflag byte, e.g. 0x30 ('0') for a regular file. */
  typeflag: number;
  /** End of the member's padded data (= next header). */
  end: number;
}

/** PAX headers larger than this are treated as corrupt (tar-stream uses 1 MiB too). */
const MAX_PAX_BYTES = 1024 * 1024;

const EXTENSION_TYPES = new Set([0x78 /* x */, 0x67 /* g */, 0x4c /* L */, 0x4b /* K */]);
const DIRECTORY = 0x35; // '5'

export function tarCorrupt(shard: string, offset: number, why: string): SadpError {
  return new SadpError('SADP_TAR_CORRUPT', `${shard}: corrupt tar header at offset ${offset}: ${why}`, {
    status: Status.DATA_LOSS,
  });
}

function tarTruncated(shard: string, offset: number, why: string): SadpError {
  return new SadpError('SADP_TAR_TRUNCATED', `${shard}: truncated at offset ${offset}: ${why}`, {
    status: Status.DATA_LOSS,
  });
}

function parseOctal(buf: Uint8Array, start: number, length: number): number | undefined {
  let value = 0;
  let digits = 0;
  let i = start;
  const end = start + length;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0)) i++; // leading spaces/NULs
  for (; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return undefined;
    value = value * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : value;
}

/** Size field: octal, or GNU base-256 when the high bit of the first byte is set. */
function parseSize(buf: Uint8Array): number | undefined {
  const first = buf[124] ?? 0;
  if ((first & 0x80) === 0) return parseOctal(buf, 124, 12);
  if ((first & 0x40) !== 0) return undefined; // negative
  let value = first & 0x3f;
  for (let i = 125; i < 136; i++) value = value * 256 + (buf[i] ?? 0);
  return Number.isSafeInteger(value) ? value : undefined;
}

function checksumOk(buf: Uint8Array): boolean | undefined {
  const stored = parseOctal(buf, 148, 8);
  if (stored === undefined) return undefined;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (buf[i] ?? 0);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some historic writers summed signed chars.
  return stored === unsigned || stored === signed;
}

function isZeroBlock(buf: Uint8Array): boolean {
  for (let i = 0; i < TAR_BLOCK; i++) if (buf[i] !== 0) return false;
  return true;
}

function hasKnownMagic(buf: Uint8Array): boolean {
  // "ustar\0" (POSIX ustar/pax) or "ustar " (GNU/oldgnu).
  return (
    buf[257] === 0x75 &&
    buf[258] === 0x73 &&
    buf[259] === 0x74 &&
    buf[260] === 0x61 &&
    buf[261] === 0x72 &&
    (buf[262] === 0 || buf[262] === 0x20)
  );
}

/** The `size` record of a PAX extended header, if any. */
function paxSize(data: Uint8Array): number | undefined {
  const text = Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8');
  let size: number | undefined;
  let pos = 0;
  while (pos < text.length) {
    const space = text.indexOf(' ', pos);
    if (space < 0) break;
    const len = Number.parseInt(text.slice(pos, space), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = text.slice(space + 1, pos + len - 1); // drop trailing \n
    if (record.startsWith('size=')) size = Number.parseInt(record.slice(5), 10);
    pos += len;
  }
  return size !== undefined && Number.isSafeInteger(size) && size >= 0 ? size : undefined;
}

type State = 'header' | 'skip' | 'pax';

export class TarScanner {
  /** Bytes consumed so far. */
  offset = 0;
  /** Offset of the most recent header block seen (for error messages). */
  lastHeaderOffset = 0;
  private state: State = 'header';
  private readonly header = new Uint8Array(TAR_BLOCK);
  private headerFill = 0;
  private skipLeft = 0;
  private pax: Uint8Array | undefined;
  private paxFill = 0;
  private paxPadding = 0;
  private paxSizeOverride: number | undefined;
  private memberStart: number | undefined;
  private lastWasZero = false;
  /** First header and expected end of the member being read, for truncation messages. */
  private memberEnd = 0;
  private readingFrom = 0;

  constructor(private readonly shard: string) {}

  /** Consumes a chunk; complete member records are appended to `out`. */
  push(chunk: Uint8Array, out: TarRecord[]): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.state === 'skip') {
        const n = Math.min(this.skipLeft, chunk.length - pos);
        this.skipLeft -= n;
        pos += n;
        this.offset += n;
        if (this.skipLeft === 0) this.state = 'header';
      } else if (this.state === 'pax') {
        const pax = this.pax as Uint8Array;
        const n = Math.min(pax.length - this.paxFill, chunk.length - pos);
        pax.set(chunk.subarray(pos, pos + n), this.paxFill);
        this.paxFill += n;
        pos += n;
        this.offset += n;
        if (this.paxFill === pax.length) {
          this.paxSizeOverride = paxSize(pax) ?? this.paxSizeOverride;
          this.pax = undefined;
          this.skipLeft = this.paxPadding;
          this.state = this.skipLeft > 0 ? 'skip' : 'header';
        }
      } else {
        const n = Math.min(TAR_BLOCK - this.headerFill, chunk.length - pos);
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        this.offset += n;
        if (this.headerFill === TAR_BLOCK) {
          this.headerFill = 0;
          this.onHeader(this.offset - TAR_BLOCK, out);
        }
      }
    }
  }

  private onHeader(at: number, out: TarRecord[]): void {
    const buf = this.header;
    this.lastHeaderOffset = at;
    if (isZeroBlock(buf)) {
      this.lastWasZero = true;
      return;
    }
    this.lastWasZero = false;
    const ok = checksumOk(buf);
    if (ok !== true) {
      throw tarCorrupt(
        this.shard,
        at,
        ok === undefined ? 'unreadable checksum field' : 'header checksum mismatch',
      );
    }
    if (!hasKnownMagic(buf)) throw tarCorrupt(this.shard, at, 'not a ustar/GNU/PAX header (unknown magic)');
    const typeflag = buf[156] ?? 0;
    const rawSize = parseSize(buf);
    if (rawSize === undefined) throw tarCorrupt(this.shard, at, 'unreadable size field');
    this.memberStart ??= at;
    this.readingFrom = this.memberStart;
    if (EXTENSION_TYPES.has(typeflag)) {
      this.memberEnd = at + TAR_BLOCK + padded(rawSize);
      if (typeflag === 0x78 /* x */) {
        if (rawSize > MAX_PAX_BYTES) throw tarCorrupt(this.shard, at, `PAX header of ${rawSize} bytes`);
        this.pax = new Uint8Array(rawSize);
        this.paxFill = 0;
        this.paxPadding = padded(rawSize) - rawSize;
        this.state = rawSize > 0 ? 'pax' : 'header';
      } else {
        this.skipLeft = padded(rawSize);
        this.state = this.skipLeft > 0 ? 'skip' : 'header';
      }
      return;
    }
    const size = this.paxSizeOverride ?? rawSize;
    const dataLength = typeflag === DIRECTORY ? 0 : padded(size);
    const record: TarRecord = {
      headerOffset: this.memberStart,
      ustarOffset: at,
      dataOffset: at + TAR_BLOCK,
      size: typeflag === DIRECTORY ? 0 : size,
      typeflag,
      end: at + TAR_BLOCK + dataLength,
    };
    this.memberEnd = record.end;
    this.memberStart = undefined;
    this.paxSizeOverride = undefined;
    out.push(record);
    this.skipLeft = dataLength;
    this.state = dataLength > 0 ? 'skip' : 'header';
  }

  /** Call at the end of the stream: fails unless the archive ended cleanly. */
  finish(): void {
    if (this.state !== 'header' || this.headerFill !== 0 || this.memberStart !== undefined) {
      const start =
        this.state === 'header' && this.memberStart === undefined
          ? this.offset - this.headerFill
          : this.readingFrom;
      throw tarTruncated(
        this.shard,
        start,
        `member starting at offset ${start} needs bytes up to ${Math.max(this.memberEnd, this.offset + 1)}, ` +
          `but the object ends at ${this.offset}`,
      );
    }
    if (!this.lastWasZero) {
      throw tarTruncated(
        this.shard,
        this.offset,
        'no end-of-archive marker (zero block) after the last member; the object was probably cut at a member boundary',
      );
    }
  }
}
