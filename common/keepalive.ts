// HTTP/2 keepalive for every gRPC server and channel: one ping interval knob
// per component (`keepaliveTimeMs`, each with its own default) and one
// timeout, stated here.
import type { ChannelOptions } from '@grpc/grpc-js';

/** How long a keepalive ping may go unanswered before the connection is dropped. */
const KEEPALIVE_TIMEOUT_MS = 20_000;

/**
 * The grpc-js options for a ping every `timeMs`, each allowed
 * KEEPALIVE_TIMEOUT_MS to be answered (a loaded peer may answer late; a
 * shorter timeout would drop live connections).
 */
export function keepaliveOptions(timeMs: number): ChannelOptions {
  return { 'grpc.keepalive_time_ms': timeMs, 'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS };
}
