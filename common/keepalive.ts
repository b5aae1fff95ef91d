// HTTP/2 keepalive for every gRPC server and channel: one ping interval knob
// per component (`keepaliveTimeMs`, each with its own default) and the ping
// timeout, whose default is stated here (the trainer's client exposes it as
// `keepaliveTimeoutMs`).
import type { ChannelOptions } from '@grpc/grpc-js';

/**
 * How long a keepalive ping may go unanswered before the connection is
 * dropped, by default: 20 s (a loaded peer may answer late; a shorter timeout
 * would drop live connections).
 */
export const KEEPALIVE_TIMEOUT_MS = 20_000;

/** The grpc-js options for a ping every `timeMs`, each allowed `timeoutMs` to be answered. */
export function keepaliveOptions(timeMs: number, timeoutMs = KEEPALIVE_TIMEOUT_MS): ChannelOptions {
  return { 'grpc.keepalive_time_ms': timeMs, 'grpc.keepalive_timeout_ms': timeoutMs };
}
