// Trainer checkpoints: model weights, optimizer state and the position in
// the loader's stream, written atomically (temp file, fsync, rename, fsync
// of the directory) so a crash leaves either the old or the new checkpoint.
//
// File `<dir>/rank-<r>.ckpt`:
//   "SADPCKP1" | u32 LE meta length | meta JSON | u32 LE model length |
//   model bytes (trainer/snn encodeWeights) | u32 LE optimizer length |
//   optimizer bytes (same encoding)
// The rank is in the name so ranks may share a directory; job, world size,
// batch size and model are checked against the run on resume.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SadpError, Status } from '../../common/errors.js';
import type { AckRecord } from '../client/index.js';
import type { EpochShape } from './lr-schedule.js';

const MAGIC = 'SADPCKP1';
/** A meta header larger than this is corrupt (bounds the JSON parse). */
const MAX_META_BYTES = 64 * 1024 * 1024;

/** Running sums of the epoch in progress, so a resumed epoch reports the whole epoch. */
export interface EpochAccumulator {
  batches: number;
  samples: number;
  weightedLossSum: number;
  unweightedLossSum: number;
  weightSum: number;
  weightMax: number;
  weightCount: number;
  spikeRateSum: number;
}

export interface CheckpointMeta {
  format: 'sadp-trainer-checkpoint';
  version: 1;
  job: string;
  rank: number;
  worldSize: number;
  batchSize: number;
  model: string;
  /** Epoch to continue and batches of it already acknowledged. */
  epoch: number;
  cursor: number;
  committedThrough: number;
  /** Plan digest of `epoch` when cursor > 0 (a changed plan cannot be resumed). */
  planDigest: string;
  /** Optimizer steps taken in the whole run. */
  step: number;
  /** Completed epochs' shapes (for the LR schedule). */
  history: EpochShape[];
  /** Selected and dataset bytes of completed epochs. */
  bytesFetched: number;
  datasetBytes: number;
  accumulator: EpochAccumulator;
  /** Scored acks the loader had not confirmed yet: resent on resume. */
  pendingAcks: Array<{ index: number; ids: number[]; scores?: number[]; losses?: number[] }>;
  savedAt: string;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  model: Uint8Array;
  optimizer: Uint8Array;
}

export function checkpointPath(dir: string, rank: number): string {
  return join(dir, `rank-${rank}.ckpt`);
}

export function toPendingJson(acks: readonly AckRecord[]): CheckpointMeta['pendingAcks'] {
  return acks.map((a) => ({
    index: a.index,
    ids: Array.from(a.ids),
    scores: a.scores && Array.from(a.scores),
    losses: a.losses && Array.from(a.losses),
  }));
}

export function fromPendingJson(acks: CheckpointMeta['pendingAcks']): AckRecord[] {
  return acks.map((a) => ({
    index: a.index,
    ids: Uint32Array.from(a.ids),
    scores: a.scores ? Float64Array.from(a.scores) : undefined,
    losses: a.losses ? Float64Array.from(a.losses) : undefined,
  }));
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

export async function writeCheckpoint(dir: string, ckpt: Checkpoint): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = checkpointPath(dir, ckpt.meta.rank);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const meta = new TextEncoder().encode(JSON.stringify(ckpt.meta));
  const parts = [
    new TextEncoder().encode(MAGIC),
    u32(meta.length),
    meta,
    u32(ckpt.model.length),
    ckpt.model,
    u32(ckpt.optimizer.length),
    ckpt.optimizer,
  ];
  const file = await open(tmp, 'w');
  try {
    for (const p of parts) await file.write(p);
    await file.sync();
  } catch (err) {
    await file.close();
    await rm(tmp, { force: true });
    throw new SadpError('SADP_CHECKPOINT_WRITE', `cannot write checkpoint ${tmp}`, {
      status: Status.UNAVAILABLE,
      cause: err,
    });
  }
  await file.close();
  await rename(tmp, path);
  // The rename is durable only once the directory entry is.
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
  return path;
}

/** The rank's checkpoint in `dir`, or undefined when there is none. */
export async function readCheckpoint(dir: string, rank: number): Promise<Checkpoint | undefined> {
  const path = checkpointPath(dir, rank);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SadpError('SADP_CHECKPOINT_READ', `cannot read checkpoint ${path}`, {
      status: Status.UNAVAILABLE,
      cause: err,
    });
  }
  const corrupt = (what: string, cause?: unknown): SadpError =>
    new SadpError('SADP_CHECKPOINT_CORRUPT', `checkpoint ${path} (${bytes.length} bytes): ${what}`, {
      status: Status.DATA_LOSS,
      cause,
    });
  let at = 0;
  const take = (n: number, what: string): Buffer => {
    if (at + n > bytes.length) throw corrupt(`${what} at offset ${at} runs past the end`);
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const len = (what: string): number => {
    const b = take(4, `${what} length`);
    return b.readUInt32LE(0);
  };
  if (take(MAGIC.length, 'magic').toString('latin1') !== MAGIC)
    throw corrupt(`no ${MAGIC} magic at offset 0`);
  const metaLen = len('meta');
  if (metaLen > MAX_META_BYTES)
    throw corrupt(`meta length ${metaLen} at offset ${MAGIC.length} is out of range`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(take(metaLen, 'meta').toString('utf8')) as CheckpointMeta;
  } catch (err) {
    if (err instanceof SadpError) throw err;
    throw corrupt(`meta at offset ${MAGIC.length + 4} is not JSON`, err);
  }
  if (meta.format !== 'sadp-trainer-checkpoint' || meta.version !== 1) {
    throw corrupt(
      `format ${String(meta.format)} version ${String(meta.version)} is not sadp-trainer-checkpoint 1`,
    );
  }
  const model = new Uint8Array(take(len('model'), 'model'));
  const optimizer = new Uint8Array(take(len('optimizer'), 'optimizer'));
  if (at !== bytes.length) throw corrupt(`${bytes.length - at} trailing bytes at offset ${at}`);
  return { meta, model, optimizer };
}

/** Refuses a checkpoint written by a different run shape. */
export function checkCompatible(
  meta: CheckpointMeta,
  run: { job: string; worldSize: number; batchSize: number; model: string },
  path: string,
): void {
  const diffs: string[] = [];
  if (meta.job !== run.job) diffs.push(`job '${meta.job}' vs '${run.job}'`);
  if (meta.worldSize !== run.worldSize) diffs.push(`world size ${meta.worldSize} vs ${run.worldSize}`);
  if (meta.batchSize !== run.batchSize) diffs.push(`batch size ${meta.batchSize} vs ${run.batchSize}`);
  if (meta.model !== run.model) diffs.push(`model ${meta.model} vs ${run.model}`);
  if (diffs.length > 0) {
    throw new SadpError(
      'SADP_CHECKPOINT_MISMATCH',
      `checkpoint ${path} belongs to another run (checkpoint vs this run: ${diffs.join('; ')}); ` +
        'use another --checkpoint-dir or remove the file to start over',
      { status: Status.FAILED_PRECONDITION },
    );
  }
}
