// Free loopback ports for the flags and tools that cannot listen on port 0
// and report the port they got (metrics flags, nginx, Prometheus). The port
// is free when handed out; the caller binds it right after.
import { createServer, type Server } from 'node:net';

/** Distinct free loopback ports, held open together so none is handed out twice. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** One free loopback port. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}
