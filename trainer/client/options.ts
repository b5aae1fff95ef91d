// Options of the loader client, their defaults (LOADER_CLIENT_DEFAULTS, each
// documented on its option), and the gRPC channel they compile to, resolved
// once by createLoaderClient.
import type * as grpc from '@grpc/grpc-js';
import { invalidArgument } from '../../common/errors.js';
import { KEEPALIVE_TIMEOUT_MS, keepaliveOptions } from '../../common/keepalive.js';
import { clientTlsCredentials, type TlsOptions } from '../../common/tls.js';

export type { TlsOptions } from '../../common/tls.js';

interface ReconnectOptions {
  /**
   * Consecutive failed (re)connects before the epoch fails; the count resets
   * whenever a stream delivers a batch. Default 10.
   */
  maxAttempts?: number;
  /** First backoff step. Default 250 ms. */
  baseDelayMs?: number;
  /** Cap of one backoff step. Default 10 s: with equal jitter, 10 attempts wait >= ~20 s in all (a pod restart). */
  maxDelayMs?: number;
}

export interface LoaderClientOptions {
  /**
   * The loader service: `host:port` (a DNS name may resolve to several
   * replicas, e.g. a headless Service), or a gRPC target naming the
   * replicas, `ipv4:10.0.0.5:50052,10.0.0.6:50052` / `ipv6:[::1]:50052,...`.
   */
  address: string;
  /**
   * How calls spread over the addresses the target resolves to. Default
   * `round_robin`: the channel connects to every replica and sends each new
   * epoch stream (and each reconnect) to the next one, starting at a random
   * replica, so trainer ranks spread over loader replicas by design.
   * `pick_first` uses the first address that connects (DNS order).
   */
  loadBalancing?: 'round_robin' | 'pick_first';
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** `true` = TLS with the system roots; an object adds a CA and/or a client certificate. */
  tls?: true | TlsOptions;
  /**
   * Deadline of unary calls and of a stream's first response (EpochInfo),
   * which may wait for the scorer to compute the epoch's plan. Not applied
   * to the stream as a whole: an epoch can last hours. Default 60 s.
   */
  deadlineMs?: number;
  /**
   * A stream that delivers nothing for this long while the trainer waits
   * for a batch is treated as broken and reopened at the cursor (a wedged
   * loader; keepalive only catches dead connections). 0 disables. Default 120 s.
   */
  idleTimeoutMs?: number;
  /**
   * Largest message accepted. Default 8 MiB: twice the loader's default
   * 3 MiB part cap, so a loader configured a little higher still works.
   */
  maxReceiveMessageBytes?: number;
  reconnect?: ReconnectOptions;
  /**
   * HTTP/2 keepalive ping interval. Default 30 s: far below the idle
   * timeouts of cloud L4 load balancers (AWS NLB drops idle flows after
   * 350 s), so a stream survives a long training step.
   */
  keepaliveTimeMs?: number;
  /**
   * How long a keepalive ping may go unanswered before the connection is
   * treated as dead (the stream then reopens at its cursor). Default 20 s:
   * a loaded loader may answer late, and a shorter timeout would drop live
   * connections; lower it to notice a vanished peer sooner.
   */
  keepaliveTimeoutMs?: number;
  /**
   * HTTP/2 flow-control window in bytes. Default 8 MiB: a few 3 MiB parts
   * in flight, so one batch is not throttled to one window per round trip
   * on a long-distance link (grpc-js' default is 64 KiB-ish).
   */
  flowControlWindow?: number;
  /**
   * Acks whose scores are not yet confirmed by ScoresCommitted, kept for
   * resending after a reconnect. Beyond this the oldest are dropped (and
   * counted in `stats.droppedAcks`): a loader that never commits cannot
   * grow the trainer's memory without bound. Default 1024 batches
   * (about 2.5 MB at batch size 128).
   */
  maxPendingAcks?: number;
  /** Extra grpc-js channel options (tests, proxies). */
  channelOptions?: grpc.ChannelOptions;
}

export interface ResolvedClientOptions {
  address: string;
  token: string | undefined;
  deadlineMs: number;
  idleTimeoutMs: number;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxPendingAcks: number;
  credentials: grpc.ChannelCredentials;
  channelOptions: grpc.ChannelOptions;
}

/** Every default of LoaderClientOptions, stated once (documented on each option above). */
export const LOADER_CLIENT_DEFAULTS = {
  loadBalancing: 'round_robin',
  deadlineMs: 60_000,
  idleTimeoutMs: 120_000,
  maxReceiveMessageBytes: 8 * 1024 * 1024,
  reconnect: { maxAttempts: 10, baseDelayMs: 250, maxDelayMs: 10_000 },
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
  flowControlWindow: 8 * 1024 * 1024,
  maxPendingAcks: 1024,
} as const;

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw invalidArgument(
      'SADP_INVALID_OPTION',
      `loader client option ${name} must be a positive number, got ${v}`,
    );
  }
  return v;
}

export function resolveClientOptions(options: LoaderClientOptions): ResolvedClientOptions {
  const hostPort = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
  const ipList =
    /^(ipv4:[0-9.]+:\d{1,5}(,[0-9.]+:\d{1,5})*|ipv6:\[[0-9a-fA-F:]+\]:\d{1,5}(,\[[0-9a-fA-F:]+\]:\d{1,5})*)$/;
  if (!hostPort.test(options.address) && !ipList.test(options.address)) {
    throw invalidArgument(
      'SADP_INVALID_OPTION',
      `loader address ${JSON.stringify(options.address)} is neither host:port (e.g. 127.0.0.1:50052) ` +
        'nor a list of replicas (ipv4:10.0.0.5:50052,10.0.0.6:50052)',
    );
  }
  const d = LOADER_CLIENT_DEFAULTS;
  const loadBalancing = options.loadBalancing ?? d.loadBalancing;
  if (loadBalancing !== 'round_robin' && loadBalancing !== 'pick_first') {
    throw invalidArgument(
      'SADP_INVALID_OPTION',
      `loadBalancing must be round_robin or pick_first, got ${JSON.stringify(loadBalancing)}`,
    );
  }
  const keepaliveTimeMs = positive('keepaliveTimeMs', options.keepaliveTimeMs, d.keepaliveTimeMs);
  const keepaliveTimeoutMs = positive('keepaliveTimeoutMs', options.keepaliveTimeoutMs, d.keepaliveTimeoutMs);
  const maxReceive = positive(
    'maxReceiveMessageBytes',
    options.maxReceiveMessageBytes,
    d.maxReceiveMessageBytes,
  );
  const window = positive('flowControlWindow', options.flowControlWindow, d.flowControlWindow);
  const tls = options.tls;
  // `true`: TLS verified against the system roots.
  const credentials = clientTlsCredentials(tls === true ? {} : tls);
  return {
    address: options.address,
    token: options.token,
    deadlineMs: positive('deadlineMs', options.deadlineMs, d.deadlineMs),
    idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs, d.idleTimeoutMs, true),
    maxAttempts: Math.floor(
      positive('reconnect.maxAttempts', options.reconnect?.maxAttempts, d.reconnect.maxAttempts),
    ),
    baseDelayMs: positive('reconnect.baseDelayMs', options.reconnect?.baseDelayMs, d.reconnect.baseDelayMs),
    maxDelayMs: positive('reconnect.maxDelayMs', options.reconnect?.maxDelayMs, d.reconnect.maxDelayMs),
    maxPendingAcks: Math.floor(positive('maxPendingAcks', options.maxPendingAcks, d.maxPendingAcks)),
    credentials,
    channelOptions: {
      ...keepaliveOptions(keepaliveTimeMs, keepaliveTimeoutMs),
      'grpc.max_receive_message_length': maxReceive,
      'grpc-node.flow_control_window': window,
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ [loadBalancing]: {} }] }),
      ...options.channelOptions,
    },
  };
}
