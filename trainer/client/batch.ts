// What a trainer receives: one batch as flat typed arrays (ids, weights,
// padding flags) plus the raw member bytes per field, and the epoch's info.
import type { sadp } from '../../proto/index.js';
import { invalidArgument } from '../../common/errors.js';
import { invalidScore, isValidScore } from '../../common/scores.js';
import { protocolError } from './errors.js';

/** The shape of one epoch for this rank (EpochInfo on the wire, uint64 as number). */
export interface EpochInfo {
  readonly jobId: string;
  readonly epoch: number;
  readonly datasetSize: number;
  /** Examples selected by the plan, before padding. */
  readonly selectedCount: number;
  readonly samplesPerRank: number;
  /** Batches every rank receives this epoch. */
  readonly steps: number;
  readonly padded: number;
  /** r_k and S_k of this epoch. */
  readonly pruneRatio: number;
  readonly expectedSize: number;
  readonly planDigest: string;
  readonly fields: readonly string[];
  readonly datasetBytes: number;
  readonly selectedBytes: number;
  /** K, the job's number of epochs. */
  readonly epochs: number;
  /**
   * Bytes the answering loader received from storage so far for this epoch,
   * all ranks it served (DescribeEpoch only; 0 on a stream's info).
   */
  readonly storageBytesReceived: number;
}

export function toEpochInfo(m: sadp.v1.EpochInfo.$Properties): EpochInfo {
  return {
    jobId: m.jobId ?? '',
    epoch: m.epoch ?? 0,
    datasetSize: m.datasetSize ?? 0,
    selectedCount: m.selectedCount ?? 0,
    samplesPerRank: m.samplesPerRank ?? 0,
    steps: m.steps ?? 0,
    padded: m.padded ?? 0,
    pruneRatio: m.pruneRatio ?? 0,
    expectedSize: m.expectedSize ?? 0,
    planDigest: m.planDigest ?? '',
    fields: [...(m.fields ?? [])],
    datasetBytes: Number(m.datasetBytes ?? 0),
    selectedBytes: Number(m.selectedBytes ?? 0),
    epochs: m.epochs ?? 0,
    storageBytesReceived: Number(m.storageBytesReceived ?? 0),
  };
}

/** What a trainer reports with `batch.ack()`: one value per sample of the batch, padded ones included, or none. */
export interface AckReport {
  /** Spike-aware scores G_i for the unweighted loss; finite and >= 0. */
  scores?: Float32Array | Float64Array | readonly number[];
  /** Unweighted per-sample losses; finite and >= 0. */
  losses?: Float32Array | Float64Array | readonly number[];
}

export interface Batch {
  /** Position in this rank's epoch, 0 .. info.steps - 1. */
  readonly index: number;
  /** Samples in the batch (the last batch of an epoch may be shorter). */
  readonly size: number;
  readonly ids: Uint32Array;
  readonly keys: readonly string[];
  /**
   * Member bytes by field (extension), one entry per sample in batch order.
   * A sample without that member has a zero-length array.
   */
  readonly fields: Readonly<Record<string, readonly Uint8Array[]>>;
  /** Importance weights: multiply each sample's loss by its weight. */
  readonly weights: Float32Array;
  /** 1 for a repeat added to equalise rank lengths (train on it; its score is not reported). */
  readonly padded: Uint8Array;
  readonly info: EpochInfo;
  /**
   * Acknowledges this batch (credit for the loader) and reports its scores.
   * Calling it again replaces the scores; not calling it at all acks the
   * batch without scores when the next batch is requested.
   */
  ack(report?: AckReport): Promise<void>;
}

/** An ack as kept for resending: ids of the non-padded samples and their values. */
export interface AckRecord {
  index: number;
  ids: Uint32Array;
  scores: Float64Array | undefined;
  losses: Float64Array | undefined;
}

export function assembleBatch(
  index: number,
  pieces: readonly sadp.v1.Sample.$Properties[],
  info: EpochInfo,
  ack: (batch: Batch, report?: AckReport) => Promise<void>,
): Batch {
  const samples = joinPieces(index, pieces);
  const size = samples.length;
  const ids = new Uint32Array(size);
  const weights = new Float32Array(size);
  const padded = new Uint8Array(size);
  const keys = new Array<string>(size);
  const fields: Record<string, Uint8Array[]> = {};
  const empty = new Uint8Array(0);
  const names = new Set<string>(info.fields);
  for (const s of samples) for (const f of Object.keys(s.fields ?? {})) names.add(f);
  for (const f of names) fields[f] = new Array<Uint8Array>(size).fill(empty);
  for (let j = 0; j < size; j++) {
    const s = samples[j]!;
    ids[j] = s.id ?? 0;
    weights[j] = s.weight ?? 0;
    padded[j] = s.padded ? 1 : 0;
    keys[j] = s.key ?? '';
    for (const [f, bytes] of Object.entries(s.fields ?? {})) fields[f]![j] = bytes;
  }
  const batch: Batch = {
    index,
    size,
    ids,
    keys,
    fields,
    weights,
    padded,
    info,
    ack: (report) => ack(batch, report),
  };
  return batch;
}

/**
 * Joins the pieces of samples split across parts (Sample.continued): each
 * field's bytes are the concatenation of its slices, copied once. Samples
 * that came whole are returned as they are (their bytes stay views into the
 * received message).
 */
function joinPieces(
  index: number,
  pieces: readonly sadp.v1.Sample.$Properties[],
): readonly sadp.v1.Sample.$Properties[] {
  if (!pieces.some((p) => p.continued)) return pieces;
  const out: sadp.v1.Sample.$Properties[] = [];
  for (let k = 0; k < pieces.length; k++) {
    const first = pieces[k]!;
    if (first.continued) {
      throw protocolError(
        `batch ${index}: continuation of sample id ${first.id ?? 0} without its first piece`,
      );
    }
    let end = k + 1;
    while (end < pieces.length && pieces[end]!.continued) {
      if ((pieces[end]!.id ?? 0) !== (first.id ?? 0)) {
        throw protocolError(
          `batch ${index}: continuation of sample id ${pieces[end]!.id ?? 0} follows sample id ${first.id ?? 0}`,
        );
      }
      end++;
    }
    if (end === k + 1) {
      out.push(first);
      continue;
    }
    const chunks = new Map<string, Uint8Array[]>();
    for (let j = k; j < end; j++) {
      for (const [f, bytes] of Object.entries(pieces[j]!.fields ?? {})) {
        const list = chunks.get(f);
        if (list) list.push(bytes);
        else chunks.set(f, [bytes]);
      }
    }
    const fields: Record<string, Uint8Array> = {};
    for (const [f, list] of chunks) fields[f] = list.length === 1 ? list[0]! : Buffer.concat(list);
    out.push({ id: first.id, key: first.key, weight: first.weight, padded: first.padded, fields });
    k = end - 1;
  }
  return out;
}

function checkValues(
  what: 'scores' | 'losses',
  values: AckReport['scores'],
  batch: Batch,
  kept: number,
): Float64Array | undefined {
  if (values === undefined || values.length === 0) return undefined;
  if (values.length !== batch.size) {
    throw invalidArgument(
      'SADP_ACK_INVALID',
      `ack of batch ${batch.index}: ${values.length} ${what} for ${batch.size} samples`,
    );
  }
  const out = new Float64Array(kept);
  let k = 0;
  for (let j = 0; j < batch.size; j++) {
    if (batch.padded[j]) continue;
    const v = values[j]!;
    if (!isValidScore(v)) {
      throw invalidScore(
        `ack of batch ${batch.index}: ${what} of sample id ${batch.ids[j]} (key ${batch.keys[j]}) = ${v}`,
      );
    }
    out[k++] = v;
  }
  return out;
}

/** Validates a report and keeps only the non-padded samples (copies: the caller may reuse its buffers). */
export function toAckRecord(batch: Batch, report: AckReport | undefined): AckRecord {
  let kept = 0;
  for (let j = 0; j < batch.size; j++) if (!batch.padded[j]) kept++;
  const scores = checkValues('scores', report?.scores, batch, kept);
  const losses = checkValues('losses', report?.losses, batch, kept);
  const ids = new Uint32Array(scores || losses ? kept : 0);
  if (scores || losses) {
    let k = 0;
    for (let j = 0; j < batch.size; j++) if (!batch.padded[j]) ids[k++] = batch.ids[j]!;
  }
  return { index: batch.index, ids, scores, losses };
}
