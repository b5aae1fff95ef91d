// Which epoch a set of trainers is in, and which rank of it a stream serves.
// The world size and batch size fix an epoch's layout, so two sets of
// trainers of one (job, epoch) with different shapes are different epochs to
// the boundary and to warm batches. Map keys are derived here only, as typed
// ids, so no caller builds (or mixes up) key strings by hand.

/** One epoch of a job as a set of trainers sees it. */
export interface EpochShape {
  readonly jobId: string;
  readonly epoch: number;
  readonly world: number;
  readonly batchSize: number;
}

/** One rank's stream of an epoch shape. */
export interface RankKey extends EpochShape {
  readonly rank: number;
}

/** A RankKey as a map key. */
export type RankId = string & { readonly kind: 'RankId' };
/** The (world, batch size) of an epoch shape as a map key within its (job, epoch). */
export type ShapeId = string & { readonly kind: 'ShapeId' };

export function rankId(k: RankKey): RankId {
  return `${k.jobId}\u0000${k.epoch}\u0000${k.world}\u0000${k.batchSize}\u0000${k.rank}` as RankId;
}

export function shapeId(k: EpochShape): ShapeId {
  return `${k.world}/${k.batchSize}` as ShapeId;
}

/** The same shape at another epoch (the next one, at a boundary). */
export function atEpoch(shape: EpochShape, epoch: number): EpochShape {
  return { jobId: shape.jobId, epoch, world: shape.world, batchSize: shape.batchSize };
}

export function rankOf(shape: EpochShape, rank: number): RankKey {
  return { ...atEpoch(shape, shape.epoch), rank };
}
