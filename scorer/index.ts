// Public API of the scorer component: the SADP math (pure functions over
// typed arrays) and the scorer service built on it.
export * from './math/index.js';
export * from './service/index.js';
export { StateErrorCode } from './state/index.js';
