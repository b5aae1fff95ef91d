// Validation of a trainer's Ack against what this stream sent: the batch
// exists and was sent, scores and losses line up with ids, every id was
// delivered to this rank up to that batch, and every value is a finite
// number >= 0. Nothing invalid reaches the score forwarder.
import type { SadpError } from '../../../common/errors.js';
import { Status } from '../../../common/errors.js';
import type { sadp } from '../../../proto/index.js';
import { deliveredTo, type EpochLayout } from '../jobs/epoch-layout.js';
import type { EpochState } from '../jobs/job-registry.js';
import { rpcError } from './stream-messages.js';
import { invalidScore, isValidScore } from '../../../common/scores.js';

export interface AckContext {
  layout: EpochLayout;
  state: EpochState;
  rank: number;
  /** The last batch whose sending started. */
  lastSent: number;
  jobId: string;
  epoch: number;
}

export interface CheckedAck {
  index: number;
  ids: number[];
  scores: number[];
  losses: number[];
}

/** The ack's fields, or a SadpError (OUT_OF_RANGE, FAILED_PRECONDITION, SADP_ACK_INVALID or SADP_SCORE_INVALID) naming the batch, rank and id. */
export function checkAck(ack: sadp.v1.Ack.$Properties, c: AckContext): CheckedAck {
  const { layout, state, rank } = c;
  const index = ack.index ?? 0;
  const ids = ack.ids ?? [];
  const scores = ack.scores ?? [];
  const losses = ack.losses ?? [];
  const what = `ack for batch ${index} of rank ${rank} (job ${c.jobId} epoch ${c.epoch})`;
  if (index >= layout.steps) {
    throw rpcError(
      Status.OUT_OF_RANGE,
      `${what}: the rank has ${layout.steps} batches (0..${layout.steps - 1})`,
    );
  }
  if (index > c.lastSent) {
    throw rpcError(
      Status.FAILED_PRECONDITION,
      `${what}: that batch was not sent yet (last sent: ${c.lastSent})`,
    );
  }
  const invalid = (msg: string): SadpError =>
    rpcError(Status.INVALID_ARGUMENT, `${what}: ${msg}`, 'SADP_ACK_INVALID');
  if (scores.length !== 0 && scores.length !== ids.length) {
    throw invalid(`${scores.length} scores for ${ids.length} ids (give one per id, or none)`);
  }
  if (losses.length !== 0 && losses.length !== ids.length) {
    throw invalid(`${losses.length} losses for ${ids.length} ids (give one per id, or none)`);
  }
  if (ids.length > 0 && scores.length === 0 && losses.length === 0) {
    throw invalid(`${ids.length} ids but neither scores nor losses`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    const o = id < state.orderIndexOf.length ? (state.orderIndexOf[id] as number) : -1;
    if (o < 0) throw invalid(`ids[${i}] = ${id} is not selected in this epoch's plan`);
    if (!deliveredTo(layout, o, rank, index)) {
      throw invalid(`ids[${i}] = ${id} was not delivered to rank ${rank} in batches 0..${index}`);
    }
    if (scores.length > 0) {
      const s = scores[i] as number;
      if (!isValidScore(s)) throw invalidScore(`${what}: scores[${i}] = ${s} (id ${id})`);
    }
    if (losses.length > 0) {
      const l = losses[i] as number;
      if (!isValidScore(l)) throw invalidScore(`${what}: losses[${i}] = ${l} (id ${id})`);
    }
  }
  return { index, ids, scores, losses };
}
