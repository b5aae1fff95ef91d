// Prometheus metrics from one place. Each component gets-or-creates its
// metrics here, so building two servers in one process (tests, `sadp serve`)
// never registers a name twice, and `/metrics` is served by one small HTTP
// server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
let defaultsCollected = false;

export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: registry, prefix: 'sadp_process_' });
}

type Labels<L extends string> = readonly L[];

export function counter<L extends string = never>(
  name: string,
  help: string,
  labelNames: Labels<L> = [],
): Counter<L> {
  return (
    (registry.getSingleMetric(name) as Counter<L> | undefined) ??
    new Counter<L>({ name, help, labelNames: [...labelNames], registers: [registry] })
  );
}

export function gauge<L extends string = never>(
  name: string,
  help: string,
  labelNames: Labels<L> = [],
): Gauge<L> {
  return (
    (registry.getSingleMetric(name) as Gauge<L> | undefined) ??
    new Gauge<L>({ name, help, labelNames: [...labelNames], registers: [registry] })
  );
}

export function histogram<L extends string = never>(
  name: string,
  help: string,
  buckets: number[],
  labelNames: Labels<L> = [],
): Histogram<L> {
  return (
    (registry.getSingleMetric(name) as Histogram<L> | undefined) ??
    new Histogram<L>({ name, help, buckets, labelNames: [...labelNames], registers: [registry] })
  );
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `GET /metrics` in the Prometheus text format. Binds loopback unless told otherwise. */
export async function startMetricsServer(port: number, host = '127.0.0.1'): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
