// Public API of the scorer component: what the loader, the CLI, benches and
// tests use. The SADP math (pure functions over typed arrays):
export {
  POLICY_NAMES,
  cappedProbabilities,
  cappedProbabilitiesSorted,
  decodePlan,
  defaultHyperparameters,
  encodePlan,
  planDigest,
  planEpoch,
  pruneRatioAt,
  releasePlanWorkspace,
  smoothedProbabilities,
  uniform,
  type EpochPlan,
  type PlanInput,
  type PolicyName,
} from './math/index.js';
// The scorer service (transport-free core and its gRPC server).
export {
  Job,
  createScorerServer,
  openScorerCore,
  resolveJobSpec,
  type ScorerCore,
  type ScorerServer,
  type ScorerServerOptions,
} from './service/index.js';
// Its client, and the wire conversions server and client share.
export {
  createScorerClient,
  isRetryableScorerError,
  SCORER_CLIENT_DEFAULTS,
  scorerError,
  type Plan,
  type ScorerClient,
} from './client/index.js';
export { policyFromEnum, u64ToBigInt } from './wire.js';
// The `scorer` config section.
export { SCORER_DEFAULTS, scorerConfigSchema } from './service/config.js';
