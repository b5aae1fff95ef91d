// Cuts a fetched batch into BatchPart messages whose encoded size stays under
// the byte cap, so no message exceeds a client's receive limit: samples are
// grouped greedily in batch order, and a sample larger than the cap on its
// own is split across consecutive parts (Sample.continued in loader.proto).
import type { FetchedSample } from '../../fetch/index.js';
import { SadpError } from '../../../common/errors.js';
import type { BatchSpec } from '../supply/batch-fetch.js';
import {
  encodeBatchPartResponse,
  selfEncodingPart,
  type WritablePart,
  type PartPlan,
  type SamplePiece,
} from './batch-encoder.js';

/** Protobuf framing of a BatchPart besides its samples (response tag, index, part, parts). */
const PART_OVERHEAD = 32;
/** Sample framing besides key and fields: tag+len (<= 6), id (<= 6), key tag+len (<= 6), weight (9), padded (2), continued (2). */
const SAMPLE_OVERHEAD = 31;
/** Map entry framing besides name and bytes: tag+len (<= 6), key tag+len (<= 6), value tag+len (<= 6). */
const ENTRY_OVERHEAD = 18;

/** Upper bound on the encoded size of one Sample (or piece) inside a BatchPart. */
export function sampleEncodedBound(sample: Pick<FetchedSample, 'key' | 'fields'>): number {
  let n = SAMPLE_OVERHEAD + Buffer.byteLength(sample.key);
  for (const [ext, bytes] of Object.entries(sample.fields)) {
    n += ENTRY_OVERHEAD + Buffer.byteLength(ext) + bytes.byteLength;
  }
  return n;
}

export interface SplitResult {
  /** Each part, encoded as a StreamEpochResponse (ready to write). */
  parts: Buffer[];
  /** Ids of the samples split across parts (larger than the cap on their own). */
  split: number[];
}

/**
 * Pieces of a sample too large for one part, each (with the part framing)
 * within `maxMessageBytes`: fields in order, each cut into as few slices as
 * fit. The first piece carries key, weight and padded; the others are
 * continuations.
 */
export function splitSample(
  s: FetchedSample,
  weight: number,
  padded: boolean,
  maxMessageBytes: number,
): SamplePiece[] {
  const avail = maxMessageBytes - PART_OVERHEAD - SAMPLE_OVERHEAD - Buffer.byteLength(s.key);
  const pieces: SamplePiece[] = [];
  let piece: SamplePiece = { id: s.id, key: s.key, fields: {}, weight, padded, continued: false };
  let used = 0;
  const next = (): void => {
    pieces.push(piece);
    piece = { id: s.id, key: '', fields: {}, weight: 0, padded: false, continued: true };
    used = 0;
  };
  for (const [ext, bytes] of Object.entries(s.fields)) {
    const framing = ENTRY_OVERHEAD + Buffer.byteLength(ext);
    if (framing + 1 > avail) {
      throw new SadpError(
        'SADP_MESSAGE_TOO_LARGE',
        `sample ${s.key} (id ${s.id}): field name .${ext} does not fit a ${maxMessageBytes}-byte message`,
      );
    }
    let at = 0;
    for (;;) {
      if (used + framing + Math.min(1, bytes.byteLength - at) > avail) next();
      const take = Math.min(bytes.byteLength - at, avail - used - framing);
      piece.fields[ext] = bytes.subarray(at, at + take);
      used += framing + take;
      at += take;
      if (at >= bytes.byteLength) break;
    }
  }
  pieces.push(piece);
  return pieces;
}

/** Part plans of a batch (exposed for tests; `splitBatch` encodes them). */
export function planParts(spec: BatchSpec, samples: FetchedSample[], maxMessageBytes: number): PartPlan[] {
  const groups: SamplePiece[][] = [];
  let current: SamplePiece[] = [];
  let size = PART_OVERHEAD;
  const flush = (): void => {
    groups.push(current);
    current = [];
    size = PART_OVERHEAD;
  };
  for (let k = 0; k < samples.length; k++) {
    const s = samples[k] as FetchedSample;
    const bound = sampleEncodedBound(s);
    const weight = spec.weights[k] as number;
    const padded = spec.padded[k] === 1;
    if (bound + PART_OVERHEAD > maxMessageBytes) {
      if (current.length > 0) flush();
      const pieces = splitSample(s, weight, padded, maxMessageBytes);
      for (let i = 0; i < pieces.length - 1; i++) {
        current.push(pieces[i] as SamplePiece);
        flush();
      }
      const last = pieces[pieces.length - 1] as SamplePiece;
      current.push(last);
      size += sampleEncodedBound(last);
      continue;
    }
    if (current.length > 0 && size + bound > maxMessageBytes) flush();
    current.push({ id: s.id, key: s.key, fields: s.fields, weight, padded, continued: false });
    size += bound;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  return groups.map((g, i) => ({ index: spec.index, part: i, parts: groups.length, samples: g }));
}

/** The batch's parts, encoded; each at most `maxMessageBytes`. */
export function splitBatch(spec: BatchSpec, samples: FetchedSample[], maxMessageBytes: number): SplitResult {
  const plans = planParts(spec, samples, maxMessageBytes);
  return { parts: plans.map(encodeBatchPartResponse), split: splitIds(plans) };
}

/** The batch's parts as messages that encode themselves when written (what the stream sends). */
export function splitBatchForWrite(
  spec: BatchSpec,
  samples: FetchedSample[],
  maxMessageBytes: number,
): { parts: WritablePart[]; split: number[] } {
  const plans = planParts(spec, samples, maxMessageBytes);
  return { parts: plans.map(selfEncodingPart), split: splitIds(plans) };
}

function splitIds(plans: readonly PartPlan[]): number[] {
  const split: number[] = [];
  for (const p of plans)
    for (const s of p.samples) if (s.continued && split.at(-1) !== s.id) split.push(s.id);
  return split;
}
