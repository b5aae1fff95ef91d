// What `sadp train` prints: a progress bar per epoch on a terminal (plain
// periodic lines with rate and ETA otherwise, or with --json), then one
// summary line per epoch on stdout (one JSON object per line with --json).
import cliProgress from 'cli-progress';
import type { BackendSelection } from '../backend.js';
import type { BatchProgress, EpochSummary, TrainHooks } from './run-training.js';

export interface ReporterOptions {
  json?: boolean;
  /** Summaries; default process.stdout. */
  out?: NodeJS.WriteStream;
  /** Progress; default process.stderr. */
  err?: NodeJS.WriteStream;
  /** Plain progress lines at most this often. Default 10 s. */
  intervalMs?: number;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v >= 100 || u === 0 ? 0 : 1)} ${units[u]}`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function formatSummary(s: EpochSummary): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const saved = s.datasetBytesTotal > 0 ? 1 - s.selectedBytesTotal / s.datasetBytesTotal : 0;
  return [
    `epoch ${s.epoch + 1}/${s.epochs}`,
    `loss ${s.loss.toFixed(4)}`,
    s.testAccuracy === undefined ? undefined : `test acc ${pct(s.testAccuracy)}`,
    `selected ${s.selected}/${s.datasetSize} (pruned ${pct(s.pruneRatio)}, r_k ${s.targetPruneRatio.toFixed(2)})`,
    `weight mean ${s.meanWeight.toFixed(2)} max ${s.maxWeight.toFixed(2)}`,
    `${Math.round(s.samplesPerSecond)} samples/s`,
    // The plan's figure and the loader's measured one, each named for what it is.
    `selected ${formatBytes(s.selectedBytesTotal)} of ${formatBytes(s.datasetBytesTotal)} so far (${pct(saved)} pruned)`,
    s.loaderBytesReceived === undefined
      ? undefined
      : `loader read ${formatBytes(s.loaderBytesReceived)} from storage this epoch`,
    `lr ${s.lr.toExponential(2)}`,
    s.reopens > 0 ? `${s.reopens} reconnect(s)` : undefined,
  ]
    .filter((x) => x !== undefined)
    .join('  ');
}

export interface TrainReporter extends TrainHooks {
  /** Stops any bar still drawing. */
  close(): void;
}

export function createTrainReporter(options: ReporterOptions = {}): TrainReporter {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const json = options.json ?? false;
  const intervalMs = options.intervalMs ?? 10_000;
  // A bar only on a terminal: piped or --json output gets plain lines a log can keep.
  const useBar = !json && Boolean(out.isTTY) && Boolean(err.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  let epochLabel = '';

  const line = (stream: NodeJS.WriteStream, text: string): void => {
    stream.write(`${text}\n`);
  };
  const emit = (event: Record<string, unknown>): void => line(out, JSON.stringify(event));

  return {
    onBackend(sel: BackendSelection) {
      const tried = sel.tried
        .filter((t) => t.error)
        .map((t) => `${t.name}: ${t.error}`)
        .join('; ');
      if (json) emit({ event: 'backend', backend: sel.name, tried: sel.tried });
      else line(out, `TF.js backend: ${sel.name}${tried ? ` (unavailable: ${tried})` : ''}`);
    },
    onResume(meta, path) {
      const msg = { event: 'resume', path, epoch: meta.epoch, cursor: meta.cursor, step: meta.step };
      if (json) emit(msg);
      else
        line(out, `resuming from ${path}: epoch ${meta.epoch + 1}, batch ${meta.cursor}, step ${meta.step}`);
    },
    onEpochStart({ epoch, epochs, info, cursor }) {
      epochLabel = `epoch ${epoch + 1}/${epochs}`;
      lastLine = performance.now();
      if (useBar) {
        bar = new cliProgress.SingleBar(
          {
            format: `${epochLabel} [{bar}] {value}/{total} batches | {rate} samples/s | loss {loss} | ETA {eta_formatted}`,
            stream: err,
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(info.steps, cursor, { rate: '-', loss: '-' });
      } else if (!json) {
        line(
          err,
          `${epochLabel}: ${info.steps} batches from ${cursor}, ${info.selectedCount} of ${info.datasetSize} examples selected`,
        );
      }
    },
    onBatch(p: BatchProgress) {
      if (bar) {
        bar.update(p.done, { rate: Math.round(p.samplesPerSecond), loss: p.loss.toFixed(4) });
        return;
      }
      const now = performance.now();
      if (now - lastLine < intervalMs && p.done < p.steps) return;
      lastLine = now;
      const fields = {
        event: 'progress',
        epoch: p.epoch,
        done: p.done,
        steps: p.steps,
        samplesPerSecond: Math.round(p.samplesPerSecond),
        etaSeconds: Math.round(p.etaSeconds),
        loss: p.loss,
        lr: p.lr,
      };
      if (json) line(err, JSON.stringify(fields));
      else {
        line(
          err,
          `${epochLabel}: ${p.done}/${p.steps} batches (${((100 * p.done) / p.steps).toFixed(0)}%)  ` +
            `${Math.round(p.samplesPerSecond)} samples/s  ETA ${formatSeconds(p.etaSeconds)}  ` +
            `loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}`,
        );
      }
    },
    onEpoch(summary: EpochSummary) {
      bar?.stop();
      bar = undefined;
      if (json) emit({ event: 'epoch', ...summary });
      else line(out, formatSummary(summary));
    },
    onCheckpoint({ path, epoch, cursor }) {
      if (json) line(err, JSON.stringify({ event: 'checkpoint', path, epoch, cursor }));
    },
    close() {
      bar?.stop();
      bar = undefined;
    },
  };
}
