// Reads one tar member's header chain (PAX / GNU extension headers, then the
// ustar header) out of bytes already in memory. The range reader uses it to
// check every fetched member against the shard index instead of trusting
// offsets blindly: a shard rewritten in place, a wrong index or a flipped byte
// must fail loudly, never hand a trainer the wrong bytes.
import { TAR_BLOCK, padded } from '../shards/index.js';

export interface ParsedMember {
  /** Full path (PAX `path` > GNU long name > ustar prefix/name). */
  name: string;
  size: number;
  /** Offset of the first data byte relative to the buffer. */
  dataStart: number;
}

/** Why a header chain could not be read; the caller adds shard and absolute offset. */
export class TarHeaderError extends Error {
  override readonly name = 'TarHeaderError';
  /** Offset of the bad block relative to the buffer. */
  readonly at: number;
  constructor(message: string, at: number) {
    super(message);
    this.at = at;
  }
}

const TYPE_FILE = 0x30; // '0'
const TYPE_FILE_OLD = 0; // '\0'
const TYPE_CONTIGUOUS = 0x37; // '7'
const TYPE_PAX = 0x78; // 'x'
const TYPE_PAX_GLOBAL = 0x67; // 'g'
const TYPE_GNU_LONG_NAME = 0x4c; // 'L'
const TYPE_GNU_LONG_LINK = 0x4b; // 'K'
/** Extension headers a member may carry before its ustar header; more means garbage. */
const MAX_EXTENSION_HEADERS = 8;
/** Bound on one extension header's payload, so a corrupt size cannot make us decode megabytes. */
const MAX_EXTENSION_BYTES = 1 << 20;

/**
 * Parses the member whose first header starts at `pos` in `buf`.
 * Throws TarHeaderError when a block is missing, has a bad checksum, or is
 * not a regular file.
 */
export function parseMemberAt(buf: Uint8Array, pos: number): ParsedMember {
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  let gnuName: string | undefined;
  for (let ext = 0; ext <= MAX_EXTENSION_HEADERS; ext++) {
    const block = readBlock(buf, pos);
    const type = block[156] ?? 0;
    const size = decodeNumber(block, 124, 12, pos);
    if (
      type === TYPE_PAX ||
      type === TYPE_PAX_GLOBAL ||
      type === TYPE_GNU_LONG_NAME ||
      type === TYPE_GNU_LONG_LINK
    ) {
      if (size > MAX_EXTENSION_BYTES) throw new TarHeaderError(`extension header of ${size} bytes`, pos);
      const payloadStart = pos + TAR_BLOCK;
      if (payloadStart + size > buf.length)
        throw new TarHeaderError('extension header runs past the fetched range', pos);
      const payload = buf.subarray(payloadStart, payloadStart + size);
      if (type === TYPE_PAX) {
        const records = decodePax(payload, pos);
        if (records.path !== undefined) paxPath = records.path;
        if (records.size !== undefined) {
          const n = Number(records.size);
          if (!Number.isSafeInteger(n) || n < 0)
            throw new TarHeaderError(`bad PAX size "${records.size}"`, pos);
          paxSize = n;
        }
      } else if (type === TYPE_GNU_LONG_NAME) {
        gnuName = decodeString(payload, 0, payload.length);
      }
      // Global PAX headers and GNU long link names do not change a regular file's path or size.
      pos = payloadStart + padded(size);
      continue;
    }
    if (type !== TYPE_FILE && type !== TYPE_FILE_OLD && type !== TYPE_CONTIGUOUS) {
      throw new TarHeaderError(`member type '${String.fromCharCode(type)}' is not a regular file`, pos);
    }
    return {
      name: paxPath ?? gnuName ?? ustarName(block),
      size: paxSize ?? size,
      dataStart: pos + TAR_BLOCK,
    };
  }
  throw new TarHeaderError(`more than ${MAX_EXTENSION_HEADERS} extension headers`, pos);
}

function readBlock(buf: Uint8Array, pos: number): Uint8Array {
  if (pos < 0 || pos + TAR_BLOCK > buf.length)
    throw new TarHeaderError('header runs past the fetched range', pos);
  const block = buf.subarray(pos, pos + TAR_BLOCK);
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  let zero = true;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = block[i] ?? 0;
    if (b !== 0) zero = false;
    if (i >= 148 && i < 156) continue;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (zero) throw new TarHeaderError('zero block (end of archive) where a header was expected', pos);
  const stored = decodeNumber(block, 148, 8, pos);
  // Some old writers summed signed bytes; accept either, as GNU tar does.
  if (stored !== unsigned && stored !== signed) {
    throw new TarHeaderError(`header checksum ${stored} != computed ${unsigned}`, pos);
  }
  return block;
}

function ustarName(block: Uint8Array): string {
  const name = decodeString(block, 0, 100);
  // "ustar\0" (POSIX) has a prefix field; "ustar " (old GNU) uses those bytes for other things.
  const posix = block[257] === 0x75 && block[262] === 0;
  if (!posix) return name;
  const prefix = decodeString(block, 345, 155);
  return prefix ? `${prefix}/${name}` : name;
}

const utf8 = new TextDecoder('utf-8');

function decodeString(buf: Uint8Array, offset: number, length: number): string {
  let end = offset;
  const limit = offset + length;
  while (end < limit && buf[end] !== 0) end++;
  return utf8.decode(buf.subarray(offset, end));
}

/** Octal ASCII (space/NUL padded) or GNU base-256 for sizes of 8 GiB and more. */
function decodeNumber(block: Uint8Array, offset: number, length: number, pos: number): number {
  const first = block[offset] ?? 0;
  if (first & 0x80) {
    if (first !== 0x80) throw new TarHeaderError('negative base-256 number', pos);
    let n = 0;
    for (let i = 1; i < length; i++) n = n * 256 + (block[offset + i] ?? 0);
    if (!Number.isSafeInteger(n)) throw new TarHeaderError('base-256 number too large', pos);
    return n;
  }
  let n = 0;
  let i = offset;
  const end = offset + length;
  while (i < end && block[i] === 0x20) i++;
  let digits = 0;
  for (; i < end; i++) {
    const b = block[i] ?? 0;
    if (b === 0 || b === 0x20) break;
    if (b < 0x30 || b > 0x37)
      throw new TarHeaderError(`non-octal byte 0x${b.toString(16)} in numeric field`, pos);
    n = n * 8 + (b - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : n;
}

/** PAX records: "<len> <key>=<value>\n", len in bytes and counting itself. */
function decodePax(payload: Uint8Array, pos: number): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < payload.length) {
    if (payload[p] === 0) break; // NUL padding after the last record
    let len = 0;
    let q = p;
    while (q < payload.length && payload[q] !== 0x20) {
      const b = payload[q] ?? 0;
      if (b < 0x30 || b > 0x39) throw new TarHeaderError('bad PAX record length', pos);
      len = len * 10 + (b - 0x30);
      q++;
    }
    if (len <= q - p + 1 || p + len > payload.length) throw new TarHeaderError('bad PAX record length', pos);
    const record = utf8.decode(payload.subarray(q + 1, p + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw new TarHeaderError('PAX record without "="', pos);
    out[record.slice(0, eq)] = record.slice(eq + 1);
    p += len;
  }
  return out;
}
