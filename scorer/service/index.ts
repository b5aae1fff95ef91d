// The scorer service: transport-free core (jobs, durable reports, plans) and
// its gRPC server.
export {
  CoreErrorCode,
  openScorerCore,
  type EpochStats,
  type JobInfo,
  type ScorerCore,
  type ScorerCoreOptions,
} from './core.js';
export { Job, MAX_REPORT_ENTRIES, ReportErrorCode, type ReportInput } from './job.js';
export { SpecErrorCode, checkJobId, resolveJobSpec, type JobSpecInput } from './spec.js';
export {
  DEFAULT_PLAN_CHUNK,
  MAX_PLAN_CHUNK,
  bigIntToU64,
  createScorerServer,
  policyToEnum,
  u64ToBigInt,
  type ScorerServer,
  type ScorerServerOptions,
} from './server.js';
export {
  createScorerAuth,
  type Caller,
  type ScorerAuth,
  type ScorerAuthMode,
  type ScorerAuthOptions,
} from './auth.js';
