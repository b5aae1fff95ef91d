// How V8 weighs Buffer (external) memory when it decides on a full GC. By
// default V8 starts a full mark-compact each time ~64 MB of external memory
// was allocated since the last one, whatever the heap holds; a loader moves
// every sample through a few Buffers (socket reads, range slabs, gRPC frames),
// so at r = 0 it ran a full GC of its ~40 MB heap several times a second and
// those GCs (mostly on V8's helper threads, invisible in a --cpu-prof
// profile) took ~40 % of its CPU (bench:loader-cpu). With external memory
// accounted in V8's global limit, that limit grows with the live heap and
// Buffers like any other allocation limit; short-lived Buffers still die in
// scavenges. The growth factor is pinned at 1.5: V8's own (up to 4x) let the
// RSS peak reach ~720 MiB in bench:loader-cpu, over deploy/k8s's 768 MiB
// limit with little headroom; at 1.5x it stayed ~530-570 MiB (V8 default:
// ~465) for ~65 % of the CPU per sample of V8's default.
// The settings are process-wide and only ever switched on.
import v8 from 'node:v8';

export const BUFFER_GC_MODES = ['heap-limit', 'v8-default'] as const;
export type BufferGcMode = (typeof BUFFER_GC_MODES)[number];

const HEAP_LIMIT_FLAGS = ['--external-memory-accounted-in-global-limit', '--heap-growing-percent=50'];
let applied = false;

/**
 * Whether this V8 has the flag: V8 13 (Node 24) has it, V8 12.4 (Node 22)
 * does not, and setting an unknown flag only prints an error, so ask first.
 */
export const BUFFER_GC_SUPPORTED = Number(process.versions.v8.split('.')[0]) >= 13;

/**
 * Applies `mode` to this process (`v8-default` leaves V8 as it is). False when
 * `heap-limit` was asked for on a V8 without the flag (V8's default GC runs).
 */
export function applyBufferGc(mode: BufferGcMode): boolean {
  if (mode !== 'heap-limit' || applied) return true;
  if (!BUFFER_GC_SUPPORTED) return false;
  for (const flag of HEAP_LIMIT_FLAGS) v8.setFlagsFromString(flag);
  applied = true;
  return true;
}
