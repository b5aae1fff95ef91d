// The scorer's client: what the loader, the CLI, tests and benchmarks use to
// talk to a scorer service.
export { createScorerClient, SCORER_CLIENT_DEFAULTS, type ScorerClient } from './scorer-client.js';
export { isRetryableScorerError, scorerError } from './errors.js';
export type { Plan } from './plan-stream.js';
