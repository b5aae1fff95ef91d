// Free loopback ports for the flags and tools that cannot listen on port 0
// and report the port they got (metrics flags, nginx, Prometheus, the
// manifests' fixed ports). A port found free is closed again before the
// caller binds it, and in that moment the kernel may hand the same port to
// any outgoing connection (the loaders keep hundreds open) if it lies in the
// ephemeral range: so the ports come from below that range, which the kernel
// never assigns on its own (a fresh clone's CI lost a race there once).
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** Lowest port tried: above the fixed ports tests and benches use (9000, 9200, 50051, 50052 lie outside too). */
const FLOOR = 20_000;

/** [low, high) of ports the kernel never assigns by itself, or undefined where that is not known. */
function unassignedRange(): [number, number] | undefined {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return low !== undefined && low - FLOOR >= 1_000 ? [FLOOR, low] : undefined;
  } catch {
    return undefined;
  }
}

function listen(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve(true);
    });
  });
}

/** Distinct free loopback ports, held open together so none is handed out twice. */
export async function freePorts(n: number): Promise<number[]> {
  const range = unassignedRange();
  const servers: Server[] = [];
  try {
    while (servers.length < n) {
      const s = createServer();
      // Outside Linux: any port the kernel gives (the ephemeral range).
      if (await listen(s, range ? randomInt(range[0], range[1]) : 0)) servers.push(s);
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
