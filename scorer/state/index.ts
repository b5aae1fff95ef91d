// Durable state of the scorer: binary formats, the object layout on a store,
// and recovery after a restart. Internal to the scorer component.
export {
  FLAG_LOSS,
  FLAG_SCORE,
  StateErrorCode,
  decodeLog,
  decodePlanEnvelope,
  decodeSnapshot,
  encodeLog,
  encodePlanEnvelope,
  encodeSnapshot,
  type ReportRecord,
  type SnapshotRecord,
} from './codec.js';
export { StateStore, type JobRecord } from './state-store.js';
export { recoverJob } from './recovery.js';
