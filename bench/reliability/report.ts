// What every reliability benchmark shares: flags, progress lines with rate
// and ETA, the machine description and the JSON result file.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../common/paths.js';

export interface Flags {
  quick: boolean;
  /** `--name value` pairs. */
  values: Map<string, string>;
}

export function parseFlags(argv = process.argv.slice(2)): Flags {
  const values = new Map<string, string>();
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') quick = true;
    else if (a.startsWith('--')) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        values.set(a.slice(2), next);
        i++;
      } else values.set(a.slice(2), 'true');
    }
  }
  return { quick, values };
}

export function intFlag(flags: Flags, name: string, fallback: number): number {
  const v = flags.values.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

export function machine(): Record<string, unknown> {
  const cpu = cpus();
  return {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadavgAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** A progress line: `name  done/total  rate/s  ETA`. */
export function progress(name: string, done: number, total: number, startedMs: number, extra = ''): void {
  const elapsed = (performance.now() - startedMs) / 1000;
  const rate = done / Math.max(elapsed, 1e-9);
  const eta = rate > 0 ? (total - done) / rate : 0;
  process.stderr.write(
    `[${name}] ${done}/${total}  ${rate.toFixed(2)}/s  elapsed ${elapsed.toFixed(0)} s  ETA ${eta.toFixed(0)} s  ${extra}\n`,
  );
}

/** Writes bench/results/reliability-<name>.json and returns its path. */
export async function writeResult(name: string, body: Record<string, unknown>): Promise<string> {
  const dir = join(packageRoot, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `reliability-${name}.json`);
  const out = { bench: `reliability:${name}`, date: new Date().toISOString(), machine: machine(), ...body };
  await writeFile(path, `${JSON.stringify(out, null, 2)}\n`);
  return path;
}

/** A fixed-width text table for the console summary. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}
