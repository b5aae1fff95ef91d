// Groups tar members into WebDataset samples while a shard streams past,
// enforcing the rules the loader relies on: members of a sample are
// adjacent, an extension appears once per sample, a key never comes back
// after another key. Directories, links, other non-regular members and
// `__*__` meta members are skipped and end the current sample, so a sample's
// byte range [offset, end) holds its own members only.
import { SadpError, Status } from '../../common/errors.js';
import type { MemberEntry, SampleEntry } from './format.js';
import { splitMemberName } from './member-name.js';

function shardInvalid(shard: string, offset: number, why: string): SadpError {
  return new SadpError(
    'SADP_SHARD_INVALID',
    `${shard}: invalid WebDataset shard at offset ${offset}: ${why}`,
    {
      status: Status.DATA_LOSS,
    },
  );
}

export class SampleGrouper {
  readonly samples: SampleEntry[] = [];
  readonly extensions = new Set<string>();
  private current: SampleEntry | undefined;
  private readonly seen = new Set<string>();

  constructor(private readonly shard: string) {}

  /** Adds one member in stream order; `regular` is false for directories, links and devices. */
  add(name: string, regular: boolean, member: Omit<MemberEntry, 'name' | 'ext'>, end: number): void {
    const { key, ext, meta } = splitMemberName(name);
    if (!regular || meta || name.endsWith('/')) {
      this.close();
      return;
    }
    const cur = this.current;
    if (cur && cur.key === key) {
      if (cur.members.some((m) => m.ext === ext)) {
        throw shardInvalid(
          this.shard,
          member.headerOffset,
          `member ${JSON.stringify(name)} repeats extension "${ext}" of sample ${JSON.stringify(key)}`,
        );
      }
      cur.members.push({ name, ext, ...member });
      cur.end = end;
    } else {
      this.close();
      if (this.seen.has(key)) {
        throw shardInvalid(
          this.shard,
          member.headerOffset,
          `member ${JSON.stringify(name)} continues sample ${JSON.stringify(key)} after other members (split sample)`,
        );
      }
      this.current = { key, offset: member.headerOffset, end, members: [{ name, ext, ...member }] };
    }
    this.extensions.add(ext);
  }

  /** Closes the open sample; call once at the end of the shard. */
  close(): void {
    if (!this.current) return;
    this.seen.add(this.current.key);
    this.samples.push(this.current);
    this.current = undefined;
  }
}
