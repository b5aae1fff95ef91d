// Test helpers for real gRPC servers on loopback port 0.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../../common/paths.js';

export function bindLoopback(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

/** Calls grpc.health.v1.Health/Check and returns the status name. */
export async function healthStatus(address: string, service: string): Promise<string> {
  const def = protoLoader.loadSync('health.proto', {
    includeDirs: [join(packageRoot, 'node_modules/grpc-health-check/proto/health/v1')],
    enums: String,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access
  const Health = (grpc.loadPackageDefinition(def) as any).grpc.health.v1.Health as typeof grpc.Client;
  const client = new Health(address, grpc.credentials.createInsecure()) as grpc.Client & {
    check(req: { service: string }, cb: (err: Error | null, r: { status: string }) => void): void;
  };
  try {
    return await new Promise<string>((resolve, reject) =>
      client.check({ service }, (err, r) => (err ? reject(err) : resolve(r.status))),
    );
  } finally {
    client.close();
  }
}
