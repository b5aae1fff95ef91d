// Former home of the cancellation helpers, kept only for the range reader's
// two files until their rewrite imports common/signals directly.
export { cancelledError, sleep } from './signals.js';
