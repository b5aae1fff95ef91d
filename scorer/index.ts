// Public API of the scorer component: the SADP math (pure functions over
// typed arrays), the scorer service built on it, its client and the wire
// conversions both share.
export * from './math/index.js';
export * from './service/index.js';
export * from './client/index.js';
export { bigIntToU64, policyFromEnum, policyToEnum, u64ToBigInt } from './wire.js';
export { StateErrorCode } from './state/index.js';
