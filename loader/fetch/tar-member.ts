// Reads one tar member's header chain (PAX / GNU extension headers, then the
// ustar header) out of bytes already in memory, with the shard layer's header
// parser. The range reader uses it to check every fetched member against the
// shard index instead of trusting offsets blindly: a shard rewritten in
// place, a wrong index or a flipped byte must fail loudly, never hand a
// trainer the wrong bytes.
import {
  MAX_EXTENSION_BYTES,
  TAR_BLOCK,
  TarHeaderError,
  TarType,
  decodeHeader,
  decodePax,
  decodeString,
  isExtensionType,
  isRegularType,
  padded,
} from '../shards/index.js';

export { TarHeaderError };

export interface ParsedMember {
  /** Full path (PAX `path` > GNU long name > ustar prefix/name). */
  name: string;
  size: number;
  /** Offset of the first data byte relative to the buffer. */
  dataStart: number;
}

/** Extension headers a member may carry before its ustar header; more means garbage. */
const MAX_EXTENSION_HEADERS = 8;

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
    if (pos < 0 || pos + TAR_BLOCK > buf.length)
      throw new TarHeaderError('header runs past the fetched range', pos);
    const header = decodeHeader(buf.subarray(pos, pos + TAR_BLOCK), pos);
    const { typeflag: type, size } = header;
    if (isExtensionType(type)) {
      if (size > MAX_EXTENSION_BYTES) throw new TarHeaderError(`extension header of ${size} bytes`, pos);
      const payloadStart = pos + TAR_BLOCK;
      if (payloadStart + size > buf.length)
        throw new TarHeaderError('extension header runs past the fetched range', pos);
      const payload = buf.subarray(payloadStart, payloadStart + size);
      if (type === TarType.pax) {
        const records = decodePax(payload, pos);
        if (records.path !== undefined) paxPath = records.path;
        if (records.size !== undefined) paxSize = records.size;
      } else if (type === TarType.gnuLongName) {
        gnuName = decodeString(payload, 0, payload.length);
      }
      // Global PAX headers and GNU long link names do not change a regular file's path or size.
      pos = payloadStart + padded(size);
      continue;
    }
    if (!isRegularType(type)) {
      throw new TarHeaderError(`member type '${String.fromCharCode(type)}' is not a regular file`, pos);
    }
    return { name: paxPath ?? gnuName ?? header.name, size: paxSize ?? size, dataStart: pos + TAR_BLOCK };
  }
  throw new TarHeaderError(`more than ${MAX_EXTENSION_HEADERS} extension headers`, pos);
}
