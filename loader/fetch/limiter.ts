// The range reader's GET limiter is the shared priority pool (common/pool):
// waiters queue by priority so the batch a trainer waits on is not stuck
// behind every other stream's prefetches.
export { createPool as createLimiter } from '../../common/pool.js';
