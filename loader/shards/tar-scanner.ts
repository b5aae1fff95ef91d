// Byte offsets of tar members, computed from the raw stream.
//
// tar-stream decodes headers (ustar prefix, PAX and GNU long names, encodings)
// but does not say where a member's first header starts; the loader needs
// that to fetch a sample by byte range. This scanner walks the same bytes
// block by block: it validates each header's checksum and magic, reads the
// size (octal or GNU base-256, PAX `size` override), groups PAX (x, g) and GNU
// (L, K) extension headers with the member they describe, and skips data plus
// padding. Headers are decoded by tar-header.ts, the parser the cutter uses
// too; names come from tar-stream, matched 1:1
// in order (both skip zero blocks and treat directories as data-less, like
// tar-stream does). Memory: one 512-byte header plus at most MAX_PAX_BYTES of
// a PAX header being read.
import { SadpError, Status } from '../../common/errors.js';
import { TAR_BLOCK, padded } from './format.js';
import {
  MAX_EXTENSION_BYTES,
  TarHeaderError,
  TarType,
  decodeHeader,
  decodePax,
  isExtensionType,
  isZeroBlock,
} from './tar-header.js';

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

export function tarCorrupt(shard: string, offset: number, why: string, cause?: unknown): SadpError {
  return new SadpError('SADP_TAR_CORRUPT', `${shard}: corrupt tar header at offset ${offset}: ${why}`, {
    status: Status.DATA_LOSS,
    cause,
  });
}

function tarTruncated(shard: string, offset: number, why: string): SadpError {
  return new SadpError('SADP_TAR_TRUNCATED', `${shard}: truncated at offset ${offset}: ${why}`, {
    status: Status.DATA_LOSS,
  });
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
  private paxAt = 0;
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
          this.paxSizeOverride = this.decodePax(pax) ?? this.paxSizeOverride;
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
    let header;
    try {
      header = decodeHeader(buf, at);
    } catch (err) {
      if (err instanceof TarHeaderError) throw tarCorrupt(this.shard, err.at, err.message, err);
      throw err;
    }
    const { typeflag, size: rawSize } = header;
    this.memberStart ??= at;
    this.readingFrom = this.memberStart;
    if (isExtensionType(typeflag)) {
      this.memberEnd = at + TAR_BLOCK + padded(rawSize);
      if (typeflag === TarType.pax) {
        if (rawSize > MAX_EXTENSION_BYTES) throw tarCorrupt(this.shard, at, `PAX header of ${rawSize} bytes`);
        this.paxAt = at;
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
    const dataLength = typeflag === TarType.directory ? 0 : padded(size);
    const record: TarRecord = {
      headerOffset: this.memberStart,
      ustarOffset: at,
      dataOffset: at + TAR_BLOCK,
      size: typeflag === TarType.directory ? 0 : size,
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

  /** The `size` record of a PAX header just read, if any. */
  private decodePax(pax: Uint8Array): number | undefined {
    try {
      return decodePax(pax, this.paxAt).size;
    } catch (err) {
      if (err instanceof TarHeaderError) throw tarCorrupt(this.shard, err.at, err.message, err);
      throw err;
    }
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
