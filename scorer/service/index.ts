// The scorer service: transport-free core (jobs, durable reports, plans) and
// its gRPC server.
export { openScorerCore, type ScorerCore } from './core.js';
export { Job } from './job.js';
export { resolveJobSpec } from './spec.js';
export { createScorerServer, type ScorerServer, type ScorerServerOptions } from './server.js';
