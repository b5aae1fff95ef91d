// The wire protocol: generated message classes (proto/gen, from
// proto/sadp/v1/*.proto) and the gRPC service definitions built on them. The
// definitions encode with protobufjs' static code (no reflection on the hot
// path); server reflection and health checking are added by helpers here so
// every server exposes the same surface.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { sadp } from './gen/sadp.js';
import { packageRoot } from '../common/paths.js';

export { sadp };
export const pb = sadp.v1;

interface MessageType<T> {
  encode(message: T, writer?: unknown): { finish(): Uint8Array };
  decode(reader: Uint8Array): T;
}

/** Key of the method by which a message encodes itself (see SelfEncoding). */
export const ENCODE_SELF: unique symbol = Symbol('sadp.encodeSelf');

/** Where the patched grpc-js looks for DeferredBytes' framed form (a registered symbol: no import). */
export const GRPC_FRAMED: unique symbol = Symbol.for('grpc-js.framedMessage');

/**
 * Bytes written on demand: what grpc-js's server reads of a serialized
 * message (its byteLength, then copy() into the frame it allocates, at
 * offset 5 after the length prefix), so a message is encoded straight into
 * grpc-js's frame instead of into a buffer grpc-js then copies.
 * test/loader/service/session/deferred-part-grpc.test.ts checks it over a real gRPC stream.
 */
export interface DeferredBytes {
  readonly byteLength: number;
  /** Writes the bytes into `target` from `targetStart`; returns how many. */
  copy(target: Uint8Array, targetStart?: number): number;
  /**
   * The whole gRPC frame (flag byte, 4-byte length, the bytes) in a buffer
   * the caller owns: this project's patch of grpc-js (patches/) sends it as
   * is, without allocating a frame of its own and copying into it.
   */
  [GRPC_FRAMED]?(): Buffer;
}

/**
 * A message that encodes itself when grpc-js serializes it (the loader's batch
 * parts), as bytes or as DeferredBytes (server responses only).
 */
export interface SelfEncoding {
  [ENCODE_SELF](): Buffer | DeferredBytes;
}

/**
 * Encodes with the generated code; bytes pass through unchanged and a
 * SelfEncoding message encodes itself, so a server can write messages it
 * encodes itself (the loader's batch parts).
 */
function serializer<T>(type: MessageType<T>): (value: T) => Buffer {
  return (value) => {
    if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    if (typeof (value as Partial<SelfEncoding>)[ENCODE_SELF] === 'function') {
      // DeferredBytes stand in for a Buffer: grpc-js only reads byteLength and calls copy().
      return (value as SelfEncoding)[ENCODE_SELF]() as Buffer;
    }
    const bytes = type.encode(value).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function method<Req, Res>(
  service: string,
  name: string,
  req: MessageType<Req>,
  res: MessageType<Res>,
  requestStream: boolean,
  responseStream: boolean,
): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/sadp.v1.${service}/${name}`,
    requestStream,
    responseStream,
    requestSerialize: serializer(req),
    requestDeserialize: (b) => req.decode(b),
    responseSerialize: serializer(res),
    responseDeserialize: (b) => res.decode(b),
    originalName: name[0]!.toLowerCase() + name.slice(1),
  };
}

type Msg<T extends abstract new (...args: never) => unknown> = InstanceType<T>;
const v1 = sadp.v1;

export const ScorerService = {
  createJob: method<Msg<typeof v1.CreateJobRequest>, Msg<typeof v1.Job>>(
    'Scorer',
    'CreateJob',
    v1.CreateJobRequest,
    v1.Job,
    false,
    false,
  ),
  describeJob: method<Msg<typeof v1.DescribeJobRequest>, Msg<typeof v1.Job>>(
    'Scorer',
    'DescribeJob',
    v1.DescribeJobRequest,
    v1.Job,
    false,
    false,
  ),
  reportScores: method<Msg<typeof v1.ReportScoresRequest>, Msg<typeof v1.ReportScoresResponse>>(
    'Scorer',
    'ReportScores',
    v1.ReportScoresRequest,
    v1.ReportScoresResponse,
    false,
    false,
  ),
  getPlan: method<Msg<typeof v1.GetPlanRequest>, Msg<typeof v1.PlanChunk>>(
    'Scorer',
    'GetPlan',
    v1.GetPlanRequest,
    v1.PlanChunk,
    false,
    true,
  ),
  getStats: method<Msg<typeof v1.GetStatsRequest>, Msg<typeof v1.JobStats>>(
    'Scorer',
    'GetStats',
    v1.GetStatsRequest,
    v1.JobStats,
    false,
    false,
  ),
} satisfies grpc.ServiceDefinition;

export const LoaderService = {
  streamEpoch: method<Msg<typeof v1.StreamEpochRequest>, Msg<typeof v1.StreamEpochResponse>>(
    'Loader',
    'StreamEpoch',
    v1.StreamEpochRequest,
    v1.StreamEpochResponse,
    true,
    true,
  ),
  describeEpoch: method<Msg<typeof v1.DescribeEpochRequest>, Msg<typeof v1.EpochInfo>>(
    'Loader',
    'DescribeEpoch',
    v1.DescribeEpochRequest,
    v1.EpochInfo,
    false,
    false,
  ),
} satisfies grpc.ServiceDefinition;

export const SCORER_SERVICE_NAME = 'sadp.v1.Scorer';
export const LOADER_SERVICE_NAME = 'sadp.v1.Loader';

type Unary<Req, Res> = {
  (req: Req, callback: grpc.requestCallback<Res>): grpc.ClientUnaryCall;
  (req: Req, metadata: grpc.Metadata, callback: grpc.requestCallback<Res>): grpc.ClientUnaryCall;
  (
    req: Req,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
};
type ServerStreaming<Req, Res> = (
  req: Req,
  metadata?: grpc.Metadata,
  options?: Partial<grpc.CallOptions>,
) => grpc.ClientReadableStream<Res>;
type Bidi<Req, Res> = (
  metadata?: grpc.Metadata,
  options?: Partial<grpc.CallOptions>,
) => grpc.ClientDuplexStream<Req, Res>;

/** Typed stubs; requests are plain `$Properties` objects or `create()`d messages. */
export interface ScorerClient extends grpc.Client {
  createJob: Unary<sadp.v1.CreateJobRequest.$Properties, sadp.v1.Job>;
  describeJob: Unary<sadp.v1.DescribeJobRequest.$Properties, sadp.v1.Job>;
  reportScores: Unary<sadp.v1.ReportScoresRequest.$Properties, sadp.v1.ReportScoresResponse>;
  getPlan: ServerStreaming<sadp.v1.GetPlanRequest.$Properties, sadp.v1.PlanChunk>;
  getStats: Unary<sadp.v1.GetStatsRequest.$Properties, sadp.v1.JobStats>;
}
export interface LoaderClient extends grpc.Client {
  streamEpoch: Bidi<sadp.v1.StreamEpochRequest.$Properties, sadp.v1.StreamEpochResponse>;
  describeEpoch: Unary<sadp.v1.DescribeEpochRequest.$Properties, sadp.v1.EpochInfo>;
}
type ClientConstructor<C> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => C;

export const ScorerClient = grpc.makeGenericClientConstructor(
  ScorerService,
  'Scorer',
) as unknown as ClientConstructor<ScorerClient>;
export const LoaderClient = grpc.makeGenericClientConstructor(
  LoaderService,
  'Loader',
) as unknown as ClientConstructor<LoaderClient>;

const protoFiles: readonly string[] = ['loader.proto', 'scorer.proto'].map((f) =>
  join(packageRoot, 'proto/sadp/v1', f),
);

/**
 * Adds gRPC server reflection for the sadp.v1 services and standard health
 * checking. Returns the health implementation so the caller can flip
 * services to NOT_SERVING on shutdown.
 */
export function addStandardServices(server: grpc.Server, services: readonly string[]): HealthImplementation {
  const definition = protoLoader.loadSync([...protoFiles], { keepCase: false });
  new ReflectionService(definition).addToServer(server);
  const statusMap: Record<string, 'SERVING'> = { '': 'SERVING' };
  for (const s of services) statusMap[s] = 'SERVING';
  const health = new HealthImplementation(statusMap);
  health.addToServer(server);
  return health;
}
