// An independent tar oracle for tests: tar-stream's extract, not our parser.
import { extract } from 'tar-stream';

export interface TarMember {
  name: string;
  data: Buffer;
}

/**
 * Every entry of a tar, in order. Two zero blocks are appended so a byte range
 * of a shard (no end-of-archive marker of its own) parses as well as a whole
 * archive. `filesOnly` keeps regular files only (GNU tar adds directories).
 */
export async function tarMembers(
  bytes: Uint8Array,
  options: { filesOnly?: boolean } = {},
): Promise<TarMember[]> {
  const ex = extract();
  const members: TarMember[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const parts: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) parts.push(chunk);
      if (!options.filesOnly || entry.header.type === 'file') {
        members.push({ name: entry.header.name, data: Buffer.concat(parts) });
      }
    }
  })();
  ex.end(Buffer.concat([bytes, Buffer.alloc(1024)]));
  await done;
  return members;
}
