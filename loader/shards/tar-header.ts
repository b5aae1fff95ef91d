// The one tar header parser: numbers (octal, GNU base-256), the checksum, the
// ustar/GNU magic, names (ustar prefix, GNU long name) and PAX records. The
// indexer's offset scanner and the cutter's header-chain reader
// (loader/fetch/tar-member.ts) both decode headers here, so a shard the
// indexer accepts is read the same way when its samples are cut.
import { TAR_BLOCK } from './format.js';

/** Why a header could not be read; `at` is the offset of the bad block (callers add the shard). */
export class TarHeaderError extends Error {
  override readonly name = 'TarHeaderError';
  readonly at: number;
  constructor(message: string, at: number) {
    super(message);
    this.at = at;
  }
}

export const TarType = {
  file: 0x30, // '0'
  fileOld: 0, // '\0' (pre-POSIX)
  contiguous: 0x37, // '7'
  directory: 0x35, // '5'
  pax: 0x78, // 'x'
  paxGlobal: 0x67, // 'g'
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
} as const;

/** Bound on one extension header's payload, so a corrupt size cannot make us buffer megabytes (tar-stream uses 1 MiB too). */
export const MAX_EXTENSION_BYTES = 1 << 20;

/** PAX (x, g) and GNU long name/link (L, K) headers describe the member that follows. */
export function isExtensionType(typeflag: number): boolean {
  return (
    typeflag === TarType.pax ||
    typeflag === TarType.paxGlobal ||
    typeflag === TarType.gnuLongName ||
    typeflag === TarType.gnuLongLink
  );
}

/** Regular files: '0', NUL (old tar) and '7' (contiguous). */
export function isRegularType(typeflag: number): boolean {
  return typeflag === TarType.file || typeflag === TarType.fileOld || typeflag === TarType.contiguous;
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < TAR_BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** One decoded (non-zero) header block. */
export interface TarHeader {
  typeflag: number;
  /** The size field; a PAX `size` record may override it for the member that follows. */
  size: number;
  /** ustar name with its prefix (POSIX magic only); PAX and GNU long names override it. */
  name: string;
}

/**
 * Decodes the 512-byte header `block` found at offset `at`: checks the
 * checksum and the magic, reads typeflag, size and name. Throws
 * TarHeaderError for a zero block or a header that does not hold.
 */
export function decodeHeader(block: Uint8Array, at: number): TarHeader {
  if (block.length < TAR_BLOCK) throw new TarHeaderError('header runs past the end of the bytes', at);
  if (isZeroBlock(block))
    throw new TarHeaderError('zero block (end of archive) where a header was expected', at);
  verifyChecksum(block, at);
  if (!hasKnownMagic(block)) throw new TarHeaderError('not a ustar/GNU/PAX header (unknown magic)', at);
  let size: number;
  try {
    size = readNumber(block, 124, 12, at);
  } catch (err) {
    throw new TarHeaderError(`unreadable size field: ${(err as Error).message}`, at);
  }
  return { typeflag: block[156] ?? 0, size, name: ustarName(block) };
}

function verifyChecksum(block: Uint8Array, at: number): void {
  let stored: number;
  try {
    stored = readOctal(block, 148, 8, at);
  } catch (err) {
    throw new TarHeaderError(`unreadable checksum field: ${(err as Error).message}`, at);
  }
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < TAR_BLOCK; i++) {
    if (i >= 148 && i < 156) continue; // the checksum field counts as spaces
    const b = block[i] ?? 0;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some historic writers summed signed chars; accept either, as GNU tar does.
  if (stored !== unsigned && stored !== signed) {
    throw new TarHeaderError(`header checksum mismatch: stored ${stored}, computed ${unsigned}`, at);
  }
}

/** "ustar\0" (POSIX ustar/pax) or "ustar " (GNU/oldgnu). */
function hasKnownMagic(block: Uint8Array): boolean {
  return (
    block[257] === 0x75 &&
    block[258] === 0x73 &&
    block[259] === 0x74 &&
    block[260] === 0x61 &&
    block[261] === 0x72 &&
    (block[262] === 0 || block[262] === 0x20)
  );
}

/** A numeric field: octal ASCII, or GNU base-256 when the high bit of the first byte is set. */
function readNumber(block: Uint8Array, offset: number, length: number, at: number): number {
  const first = block[offset] ?? 0;
  if ((first & 0x80) === 0) return readOctal(block, offset, length, at);
  if ((first & 0x40) !== 0) throw new TarHeaderError('negative base-256 number', at);
  let n = first & 0x3f;
  for (let i = 1; i < length; i++) n = n * 256 + (block[offset + i] ?? 0);
  if (!Number.isSafeInteger(n)) throw new TarHeaderError('base-256 number too large', at);
  return n;
}

/** Octal ASCII, space/NUL padded on either side (as tar-stream and GNU tar read it). */
function readOctal(block: Uint8Array, offset: number, length: number, at: number): number {
  let n = 0;
  let i = offset;
  const end = offset + length;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  for (; i < end; i++) {
    const b = block[i] ?? 0;
    if (b === 0 || b === 0x20) break;
    if (b < 0x30 || b > 0x37)
      throw new TarHeaderError(`non-octal byte 0x${b.toString(16)} in numeric field`, at);
    n = n * 8 + (b - 0x30);
  }
  return n;
}

function ustarName(block: Uint8Array): string {
  const name = decodeString(block, 0, 100);
  // "ustar\0" (POSIX) has a prefix field; "ustar " (old GNU) uses those bytes for other things.
  if (block[262] !== 0) return name;
  const prefix = decodeString(block, 345, 155);
  return prefix ? `${prefix}/${name}` : name;
}

const utf8 = new TextDecoder('utf-8');

/** A NUL-terminated UTF-8 string, e.g. a GNU long name payload. */
export function decodeString(buf: Uint8Array, offset: number, length: number): string {
  let end = offset;
  const limit = offset + length;
  while (end < limit && buf[end] !== 0) end++;
  return utf8.decode(buf.subarray(offset, end));
}

/** What a PAX extended header says about the member that follows. */
export interface PaxRecords {
  path?: string;
  size?: number;
}

/** PAX records: "<len> <key>=<value>\n", len in bytes and counting itself. */
export function decodePax(payload: Uint8Array, at: number): PaxRecords {
  const out: PaxRecords = {};
  let p = 0;
  while (p < payload.length) {
    if (payload[p] === 0) break; // NUL padding after the last record
    let len = 0;
    let q = p;
    while (q < payload.length && payload[q] !== 0x20) {
      const b = payload[q] ?? 0;
      if (b < 0x30 || b > 0x39) throw new TarHeaderError('bad PAX record length', at);
      len = len * 10 + (b - 0x30);
      q++;
    }
    if (len <= q - p + 1 || p + len > payload.length) throw new TarHeaderError('bad PAX record length', at);
    const record = utf8.decode(payload.subarray(q + 1, p + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw new TarHeaderError('PAX record without "="', at);
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'size') {
      const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
      if (!Number.isSafeInteger(n)) throw new TarHeaderError(`bad PAX size "${value}"`, at);
      out.size = n;
    }
    p += len;
  }
  return out;
}
