// Cuts one sample out of a fetched byte range and checks every member's
// header against the shard index (count, names, sizes, offsets), so a shard
// rewritten in place or a wrong index fails instead of yielding wrong bytes.
import { SadpError, Status } from '../../common/errors.js';
import { padded, splitMemberName, type ShardIndex } from '../shards/index.js';
import { TarHeaderError, parseMemberAt } from './tar-member.js';

/** One sample cut out of a fetched range. */
export interface FetchedSample {
  id: number;
  key: string;
  /** Extension -> member bytes. Views into the fetched range (no copy). */
  fields: Record<string, Uint8Array>;
  /** The sample's length in the shard, headers and padding included (end - offset). */
  bytes: number;
}

/**
 * `buf` holds shard bytes [bufStart, bufStart + buf.length) of `shardKey`;
 * returns sample `id` with its fields as views into `buf`.
 */
export function cutSample(
  buf: Uint8Array,
  bufStart: number,
  index: ShardIndex,
  id: number,
  shardKey: string,
): FetchedSample {
  const sample = index.samples[id - index.firstId];
  if (!sample) {
    throw new SadpError('SADP_INDEX_INVALID', `sample ${id} is not in the index of shard ${shardKey}`, {
      status: Status.FAILED_PRECONDITION,
    });
  }
  const corrupt = (offset: number, what: string, cause?: unknown): SadpError =>
    new SadpError(
      'SADP_TAR_CORRUPT',
      `shard ${shardKey} at byte ${offset} (sample ${id} "${sample.key}"): ${what}`,
      { status: Status.DATA_LOSS, cause },
    );
  const bufEnd = bufStart + buf.length;
  if (sample.offset < bufStart || sample.end > bufEnd) {
    throw new SadpError(
      'SADP_INDEX_INVALID',
      `sample ${id} of shard ${shardKey} spans [${sample.offset}, ${sample.end}) outside the fetched range [${bufStart}, ${bufEnd})`,
      { status: Status.FAILED_PRECONDITION },
    );
  }
  if (sample.members.length === 0) throw corrupt(sample.offset, 'the index lists no members');

  const fields: Record<string, Uint8Array> = {};
  let expected = sample.offset;
  for (const member of sample.members) {
    // Entries in no sample (a directory, a meta member) may sit between two
    // members of one sample, as webdataset allows; they are fetched, not used.
    if (member.headerOffset < expected) {
      throw corrupt(
        member.headerOffset,
        `index member "${member.name}" starts before the previous one ends (${expected})`,
      );
    }
    let parsed;
    try {
      parsed = parseMemberAt(buf, member.headerOffset - bufStart);
    } catch (err) {
      if (err instanceof TarHeaderError) throw corrupt(bufStart + err.at, err.message, err);
      throw err;
    }
    const dataOffset = bufStart + parsed.dataStart;
    if (parsed.name !== member.name) {
      throw corrupt(member.headerOffset, `member is "${parsed.name}", the index says "${member.name}"`);
    }
    if (parsed.size !== member.size || dataOffset !== member.dataOffset) {
      throw corrupt(
        member.headerOffset,
        `member "${member.name}" has ${parsed.size} bytes at ${dataOffset}, the index says ${member.size} at ${member.dataOffset}`,
      );
    }
    const { ext } = splitMemberName(parsed.name);
    if (ext !== member.ext) {
      throw corrupt(
        member.headerOffset,
        `member "${member.name}" has extension "${ext}", the index says "${member.ext}"`,
      );
    }
    if (Object.hasOwn(fields, ext))
      throw corrupt(member.headerOffset, `field "${ext}" appears twice in one sample`);
    expected = dataOffset + padded(parsed.size);
    if (expected > bufEnd)
      throw corrupt(member.headerOffset, `member "${member.name}" runs past the sample's range`);
    fields[ext] = buf.subarray(parsed.dataStart, parsed.dataStart + parsed.size);
  }
  if (expected !== sample.end) {
    throw corrupt(expected, `members end at ${expected}, the index says the sample ends at ${sample.end}`);
  }
  return { id, key: sample.key, fields, bytes: sample.end - sample.offset };
}
