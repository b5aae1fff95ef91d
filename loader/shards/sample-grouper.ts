// Groups tar members into WebDataset samples while a shard streams past, the
// way webdataset 1.x groups them (member-name.ts has the naming rules):
// consecutive members with one key form a sample; directories, links, devices,
// meta members and members without an extension belong to no sample and are
// skipped without ending the current one (webdataset's `continue`), so a
// sample's byte range [offset, end) may hold such entries between its members.
// Every skipped entry is counted by reason: nothing disappears unreported.
// Two rules are stricter than webdataset's (loader/shards/README.md says why):
// an extension repeated in a sample and a key that comes back after another
// key (a split sample) are SADP_SHARD_INVALID.
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

/** Tar entries that are in no sample, by reason. */
export interface SkippedEntries {
  /** Directories, links, devices, FIFOs. */
  notFile: number;
  /** `__name__` at the top level, or under a `__name__/` directory. */
  meta: number;
  /** Files whose basename has no extension (`README`, `.hidden`). */
  noExtension: number;
}

export function noneSkipped(): SkippedEntries {
  return { notFile: 0, meta: 0, noExtension: 0 };
}

export class SampleGrouper {
  readonly samples: SampleEntry[] = [];
  readonly extensions = new Set<string>();
  readonly skipped: SkippedEntries = noneSkipped();
  private current: SampleEntry | undefined;
  private readonly seen = new Set<string>();

  constructor(private readonly shard: string) {}

  /** Adds one member in stream order; `regular` is false for directories, links and devices. */
  add(name: string, regular: boolean, member: Omit<MemberEntry, 'name' | 'ext'>, end: number): void {
    // Old (v7) tar marks a directory as a file whose name ends in '/'.
    if (!regular || name.endsWith('/')) {
      this.skipped.notFile++;
      return;
    }
    const { key, ext, skip } = splitMemberName(name);
    if (skip === 'meta') {
      this.skipped.meta++;
      return;
    }
    if (skip === 'no-extension') {
      this.skipped.noExtension++;
      return;
    }
    const cur = this.current;
    if (cur && cur.key === key) {
      if (cur.members.some((m) => m.ext === ext)) {
        throw shardInvalid(
          this.shard,
          member.headerOffset,
          `member ${JSON.stringify(name)} repeats field "${ext}" of sample ${JSON.stringify(key)}`,
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
