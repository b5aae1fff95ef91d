// Cuts a fetched batch into BatchPart messages whose encoded size stays under
// the byte cap, so no message exceeds a client's receive limit.
import type { FetchedSample } from '../fetch/index.js';
import { pb, type sadp } from '../../proto/index.js';
import type { BatchSpec } from './batch-fetch.js';

/** Protobuf framing of a BatchPart besides its samples (index, part, parts, tags). */
const PART_OVERHEAD = 32;

/** Upper bound on the encoded size of one Sample inside a BatchPart. */
function sampleEncodedBound(sample: FetchedSample): number {
  // Sample: tag+len (<= 6), id (<= 6), key (<= 6 + key), weight (9), padded (2).
  let n = 29 + Buffer.byteLength(sample.key);
  for (const [ext, bytes] of Object.entries(sample.fields)) {
    // Map entry: tag+len (<= 6), key (<= 6 + ext), value (<= 6 + bytes).
    n += 18 + Buffer.byteLength(ext) + bytes.byteLength;
  }
  return n;
}

export interface SplitResult {
  parts: sadp.v1.BatchPart[];
  /** Samples larger than the cap on their own (sent alone in a part anyway). */
  oversized: number[];
}

/**
 * Greedy split in batch order. A sample that alone exceeds the cap still goes,
 * alone in its part; the caller logs it (the client must raise its receive
 * limit for such a dataset).
 */
export function splitBatch(spec: BatchSpec, samples: FetchedSample[], maxMessageBytes: number): SplitResult {
  const groups: sadp.v1.Sample[][] = [];
  const oversized: number[] = [];
  let current: sadp.v1.Sample[] = [];
  let size = PART_OVERHEAD;
  for (let k = 0; k < samples.length; k++) {
    const s = samples[k] as FetchedSample;
    const bound = sampleEncodedBound(s);
    if (bound + PART_OVERHEAD > maxMessageBytes) oversized.push(s.id);
    if (current.length > 0 && size + bound > maxMessageBytes) {
      groups.push(current);
      current = [];
      size = PART_OVERHEAD;
    }
    current.push(
      pb.Sample.create({
        id: s.id,
        key: s.key,
        fields: s.fields,
        weight: spec.weights[k],
        padded: spec.padded[k] === 1,
      }),
    );
    size += bound;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const parts = groups.map((g, i) =>
    pb.BatchPart.create({ index: spec.index, part: i, parts: groups.length, samples: g }),
  );
  return { parts, oversized };
}
