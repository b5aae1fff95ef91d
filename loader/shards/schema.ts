// Validation of manifests and shard indexes read from storage. The manifest
// and each index's header go through zod (errors name the field); the
// per-sample arrays of an index (ImageNet: 1.28M samples) are checked by a
// plain loop, which is an order of magnitude faster than a schema walk.
import { z } from 'zod';
import { SadpError, Status } from '../../common/errors.js';
import { TAR_BLOCK, type DatasetManifest, type ShardEntry, type ShardIndex } from './format.js';

const count = z.number().int().nonnegative();

/** Sample ids are uint32 on the wire (proto), so a dataset holds at most 2^32 - 1 samples. */
const MAX_SAMPLES = 0xffffffff;

const shardEntrySchema = z.object({
  url: z.string().min(1),
  size: count,
  etag: z.string(),
  samples: count,
  firstId: count,
  index: z.string().min(1),
  bytes: count,
});

const manifestSchema = z.object({
  format: z.literal('sadp-webdataset'),
  version: z.literal(1),
  samples: count,
  bytes: count,
  fields: z.array(z.string()),
  shards: z.array(shardEntrySchema),
  source: z.string(),
  createdAt: z.string(),
});

const indexHeaderSchema = z.object({
  format: z.literal('sadp-shard-index'),
  version: z.literal(1),
  shard: z.string().min(1),
  size: count,
  etag: z.string(),
  firstId: count,
  samples: z.array(z.unknown()),
});

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}

export function manifestInvalid(url: string, why: string, cause?: unknown): SadpError {
  return new SadpError('SADP_MANIFEST_INVALID', `${url}: invalid dataset manifest: ${why}`, {
    status: Status.FAILED_PRECONDITION,
    cause,
  });
}

export function indexInvalid(shard: string, indexUrl: string, why: string): SadpError {
  return new SadpError('SADP_INDEX_INVALID', `shard ${shard}: invalid index ${indexUrl}: ${why}`, {
    status: Status.FAILED_PRECONDITION,
  });
}

export function parseJson(bytes: Uint8Array, onError: (why: string, cause: unknown) => Error): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8')) as unknown;
  } catch (err) {
    throw onError('not valid JSON', err);
  }
}

/** Validates a manifest's schema and its internal arithmetic (firstId contiguity, totals). */
export function validateManifest(value: unknown, url: string): DatasetManifest {
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) throw manifestInvalid(url, describeIssues(parsed.error), parsed.error);
  const manifest: DatasetManifest = parsed.data;
  let next = 0;
  let bytes = 0;
  manifest.shards.forEach((shard: ShardEntry, i) => {
    if (shard.firstId !== next) {
      throw manifestInvalid(
        url,
        `shards.${i}.firstId: shard ${shard.url} starts at id ${shard.firstId}, expected ${next} (ids must be dense in shard order)`,
      );
    }
    if (shard.bytes > shard.size) {
      throw manifestInvalid(
        url,
        `shards.${i}.bytes: ${shard.bytes} sample bytes exceed the ${shard.size}-byte shard ${shard.url}`,
      );
    }
    // Checked before anything is sized from these counts: every sample takes at
    // least one 512-byte header, and ids are 32-bit on the wire.
    if (shard.samples * TAR_BLOCK > shard.size) {
      throw manifestInvalid(
        url,
        `shards.${i}.samples: ${shard.samples} samples cannot fit in the ${shard.size}-byte shard ${shard.url} (each takes at least ${TAR_BLOCK} bytes)`,
      );
    }
    next += shard.samples;
    bytes += shard.bytes;
    if (next > MAX_SAMPLES) {
      throw manifestInvalid(
        url,
        `shards.${i}.samples: the dataset would have ${next} samples, more than ${MAX_SAMPLES} (sample ids are 32-bit)`,
      );
    }
  });
  if (manifest.samples !== next) {
    throw manifestInvalid(url, `samples: manifest says ${manifest.samples}, its shards hold ${next}`);
  }
  if (manifest.bytes !== bytes) {
    throw manifestInvalid(url, `bytes: manifest says ${manifest.bytes}, its shards hold ${bytes}`);
  }
  return manifest;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validates an index's structure: header fields, and per sample that offsets
 * are block-aligned, increasing, non-overlapping, within the shard, and that
 * members lie inside their sample.
 */
export function validateIndex(value: unknown, shard: string, indexUrl: string): ShardIndex {
  const parsed = indexHeaderSchema.safeParse(value);
  if (!parsed.success) throw indexInvalid(shard, indexUrl, describeIssues(parsed.error));
  const index = parsed.data as unknown as ShardIndex;
  let prevEnd = 0;
  for (let i = 0; i < index.samples.length; i++) {
    const s = index.samples[i] as unknown as Record<string, unknown>;
    const where = `samples.${i}`;
    if (
      typeof s !== 'object' ||
      s === null ||
      typeof s.key !== 'string' ||
      !isCount(s.offset) ||
      !isCount(s.end)
    ) {
      throw indexInvalid(
        shard,
        indexUrl,
        `${where}: needs key (string), offset and end (non-negative integers)`,
      );
    }
    const offset = s.offset;
    const end = s.end;
    if (offset % 512 !== 0 || end % 512 !== 0 || end <= offset || offset < prevEnd || end > index.size) {
      throw indexInvalid(
        shard,
        indexUrl,
        `${where} (key ${JSON.stringify(s.key)}): byte range [${offset}, ${end}) at offset ${offset} is not ` +
          `block-aligned, increasing and inside the ${index.size}-byte shard`,
      );
    }
    if (!Array.isArray(s.members) || s.members.length === 0) {
      throw indexInvalid(
        shard,
        indexUrl,
        `${where} (key ${JSON.stringify(s.key)}) at offset ${offset}: no members`,
      );
    }
    for (const m of s.members as unknown[]) {
      const mm = m as Record<string, unknown>;
      if (
        typeof mm !== 'object' ||
        mm === null ||
        typeof mm.name !== 'string' ||
        typeof mm.ext !== 'string' ||
        !isCount(mm.headerOffset) ||
        !isCount(mm.dataOffset) ||
        !isCount(mm.size) ||
        mm.headerOffset < offset ||
        mm.dataOffset < mm.headerOffset + 512 ||
        mm.dataOffset + mm.size > end
      ) {
        throw indexInvalid(
          shard,
          indexUrl,
          `${where} (key ${JSON.stringify(s.key)}) at offset ${offset}: bad member entry`,
        );
      }
    }
    prevEnd = end;
  }
  return index;
}
