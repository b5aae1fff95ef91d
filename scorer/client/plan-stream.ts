// Reassembles a GetPlan stream into one plan: chunks must agree with the
// first one's summary, arrive in order and contiguous, carry ascending ids
// inside the dataset, and hash to the announced digest.
import { SadpError, Status } from '../../common/errors.js';
import type { sadp } from '../../proto/index.js';
import { planDigest } from '../math/index.js';

/** An epoch's plan as a client receives it. */
export interface Plan {
  epoch: number;
  datasetSize: number;
  pruneRatio: number;
  expectedSize: number;
  digest: string;
  /** Selected ids, ascending. */
  ids: Uint32Array;
  /** weights[i] belongs to ids[i]. */
  weights: Float64Array;
  /** PlanChunk messages it came in. */
  chunks: number;
}

/** Reads `chunks` to the end; throws SADP_PLAN_CORRUPT (DATA_LOSS) naming `what` on any inconsistency. */
export async function readPlanStream(
  chunks: AsyncIterable<unknown>,
  epoch: number,
  what: string,
): Promise<Plan> {
  const corrupt = (msg: string): SadpError =>
    new SadpError('SADP_PLAN_CORRUPT', `${what}: ${msg}`, { status: Status.DATA_LOSS });
  let plan: Plan | undefined;
  let filled = 0;
  let sawLast = false;
  for await (const raw of chunks) {
    const chunk = raw as sadp.v1.PlanChunk;
    if (sawLast) throw corrupt('chunk after the last one');
    if (!plan) {
      plan = {
        epoch: chunk.epoch,
        datasetSize: chunk.datasetSize,
        pruneRatio: chunk.pruneRatio,
        expectedSize: chunk.expectedSize,
        digest: chunk.digest,
        ids: new Uint32Array(chunk.selectedCount),
        weights: new Float64Array(chunk.selectedCount),
        chunks: 0,
      };
      if (chunk.epoch !== epoch) throw corrupt(`scorer answered with epoch ${chunk.epoch}`);
    }
    plan.chunks++;
    if (chunk.digest !== plan.digest || chunk.selectedCount !== plan.ids.length) {
      throw corrupt(`chunk at offset ${chunk.offset} disagrees with the first chunk's summary`);
    }
    if (chunk.offset !== filled) throw corrupt(`chunk offset ${chunk.offset}, expected ${filled}`);
    if (chunk.ids.length !== chunk.weights.length || filled + chunk.ids.length > plan.ids.length) {
      throw corrupt(
        `chunk at offset ${chunk.offset} has ${chunk.ids.length} ids and ${chunk.weights.length} weights`,
      );
    }
    for (let i = 0; i < chunk.ids.length; i++) {
      const id = chunk.ids[i] as number;
      if (id >= plan.datasetSize || (filled > 0 && id <= (plan.ids[filled - 1] as number))) {
        throw corrupt(`id ${id} at position ${filled} is out of order or out of range`);
      }
      plan.ids[filled] = id;
      plan.weights[filled] = chunk.weights[i] as number;
      filled++;
    }
    sawLast = chunk.last;
  }
  if (!plan || !sawLast) throw corrupt('stream ended before the last chunk');
  if (filled !== plan.ids.length) throw corrupt(`got ${filled} of ${plan.ids.length} ids`);
  const digest = planDigest(plan.ids, plan.weights);
  if (digest !== plan.digest)
    throw corrupt(`digest ${digest} of the reassembled plan != announced ${plan.digest}`);
  return plan;
}
