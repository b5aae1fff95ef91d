// `sadp shards build`: write WebDataset shards (+ indexes + manifest) from
// Fashion-MNIST, an image folder, or synthetic ImageNet-shaped samples.
// `sadp shards index`: index shards written by any tool.
//
// Progress goes to stderr: a bar on a terminal, otherwise a line every few
// seconds with rate and ETA. The final summary is one JSON line on stdout.
import { SingleBar, Presets } from 'cli-progress';
import type { Command } from 'commander';
import { SadpError, Status } from '../../common/errors.js';
import {
  buildShards,
  fashionMnistSource,
  imageFolderSource,
  indexShards,
  syntheticSource,
  BUILD_DEFAULTS,
  type DatasetManifest,
  type IndexProgress,
  type SampleSource,
} from '../../loader/index.js';
import { intArg } from '../args.js';
import { addS3Flags, runAction, s3OptionsFromFlags, type S3Flags } from './s3.js';

/** Parses `64MiB`, `1.5GB`, `500k`, `1048576`. */
export function parseBytes(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$/i.exec(value);
  if (!m) throw new Error(`not a byte size: ${value} (e.g. 64MiB, 500MB, 1048576)`);
  const unit = (m[2] ?? '').toLowerCase();
  const base = m[3] ? 1024 : unit === '' ? 1 : 1000;
  const power = ' kmgt'.indexOf(unit || ' ');
  const n = Math.round(Number(m[1]) * base ** power);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`byte size out of range: ${value}`);
  return n;
}

const MiB = 1024 * 1024;
const fmtBytes = (n: number): string =>
  n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`;
const fmtSecs = (s: number): string =>
  !Number.isFinite(s)
    ? '?'
    : s >= 3600
      ? `${(s / 3600).toFixed(1)} h`
      : s >= 60
        ? `${(s / 60).toFixed(1)} min`
        : `${Math.round(s)} s`;

/** A progress display: a bar on a TTY, periodic plain lines otherwise. */
function progressReporter(
  label: string,
  unit: string,
): {
  update(done: number, total: number | undefined, bytes: number): void;
  stop(): void;
} {
  const started = Date.now();
  if (process.stderr.isTTY) {
    const bar = new SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {mib} MiB | {rate} ${unit}/s | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
      },
      Presets.shades_classic,
    );
    let begun = false;
    return {
      update(done, total, bytes) {
        const secs = (Date.now() - started) / 1000;
        const payload = { mib: (bytes / MiB).toFixed(1), rate: secs > 0 ? Math.round(done / secs) : 0 };
        if (!begun) {
          bar.start(total ?? 0, done, payload);
          begun = true;
        } else {
          if (total !== undefined) bar.setTotal(total);
          bar.update(done, payload);
        }
      },
      stop: () => begun && bar.stop(),
    };
  }
  let last = 0;
  const intervalMs = 5_000;
  return {
    update(done, total, bytes) {
      const now = Date.now();
      if (now - last < intervalMs && done !== total) return;
      last = now;
      const secs = (now - started) / 1000;
      const rate = secs > 0 ? done / secs : 0;
      const eta = total !== undefined && rate > 0 ? (total - done) / rate : Number.NaN;
      const of = total === undefined ? '' : `/${total}`;
      process.stderr.write(
        `${label}: ${done}${of} ${unit}, ${fmtBytes(bytes)}, ${rate.toFixed(0)} ${unit}/s, ` +
          `${fmtBytes(secs > 0 ? bytes / secs : 0)}/s, elapsed ${fmtSecs(secs)}, ETA ${fmtSecs(eta)}\n`,
      );
    },
    stop() {},
  };
}

/** An AbortSignal that fires on the first SIGINT/SIGTERM (a second one exits). */
function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${sig}: stopping (again to exit now)\n`);
    controller.abort(new SadpError('SADP_CANCELLED', `interrupted by ${sig}`, { status: Status.CANCELLED }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The final line; `skipped` counts tar entries in no sample (index only), as webdataset would skip them. */
function summary(manifest: DatasetManifest, url: string, skipped?: IndexProgress['skipped']): void {
  process.stdout.write(
    `${JSON.stringify({
      event: 'done',
      manifest: url,
      samples: manifest.samples,
      shards: manifest.shards.length,
      bytes: manifest.bytes,
      fields: manifest.fields,
      ...(skipped ? { skipped } : {}),
    })}\n`,
  );
}

interface BuildFlags extends S3Flags {
  source: string;
  split: 'train' | 'test';
  input?: string;
  count?: number;
  seed: number;
  meanBytes: number;
  classes: number;
  out: string;
  shardBytes: number;
  prefix?: string;
}

function makeSource(flags: BuildFlags): SampleSource {
  switch (flags.source) {
    case 'fashion-mnist':
      return fashionMnistSource({ split: flags.split, dir: flags.input, limit: flags.count });
    case 'imagefolder':
      if (!flags.input)
        throw new SadpError('SADP_INVALID_OPTION', '--source imagefolder needs --input DIR', {
          status: Status.INVALID_ARGUMENT,
        });
      return imageFolderSource({ input: flags.input });
    case 'synthetic':
      if (flags.count === undefined) {
        throw new SadpError('SADP_INVALID_OPTION', '--source synthetic needs --count N', {
          status: Status.INVALID_ARGUMENT,
        });
      }
      return syntheticSource({
        count: flags.count,
        seed: flags.seed,
        meanBytes: flags.meanBytes,
        classes: flags.classes,
      });
    default:
      throw new SadpError(
        'SADP_INVALID_OPTION',
        `--source must be fashion-mnist, imagefolder or synthetic, got ${flags.source}`,
        { status: Status.INVALID_ARGUMENT },
      );
  }
}

async function build(flags: BuildFlags): Promise<void> {
  const source = makeSource(flags);
  const prefix = flags.prefix ?? (flags.source === 'fashion-mnist' ? flags.split : BUILD_DEFAULTS.prefix);
  const progress = progressReporter(`build ${source.name}`, 'samples');
  const { signal, dispose } = interruptSignal();
  try {
    const manifest = await buildShards(source, {
      out: flags.out,
      prefix,
      shardBytes: flags.shardBytes,
      s3: s3OptionsFromFlags(flags),
      signal,
      onProgress: (p) => progress.update(p.samples, p.total, p.bytes),
    });
    progress.stop();
    summary(manifest, `${flags.out.replace(/\/+$/, '')}/manifest.json`);
  } finally {
    progress.stop();
    dispose();
  }
}

interface IndexFlags extends S3Flags {
  out: string;
  concurrency: number;
}

async function index(patterns: string[], flags: IndexFlags): Promise<void> {
  const progress = progressReporter('index', 'shards');
  const { signal, dispose } = interruptSignal();
  let skipped: IndexProgress['skipped'] | undefined;
  try {
    const manifest = await indexShards(patterns, {
      out: flags.out,
      s3: s3OptionsFromFlags(flags),
      concurrency: flags.concurrency,
      signal,
      onProgress: (p) => {
        skipped = p.skipped;
        progress.update(p.shardsDone, p.shards, p.bytes);
      },
    });
    progress.stop();
    summary(
      manifest,
      flags.out.endsWith('.json') ? flags.out : `${flags.out.replace(/\/+$/, '')}/manifest.json`,
      skipped,
    );
  } finally {
    progress.stop();
    dispose();
  }
}

export function registerShardsCommand(program: Command): void {
  const shards = program
    .command('shards')
    .description('Write and index WebDataset tar shards (local or S3).');
  addS3Flags(
    shards
      .command('build')
      .description('Write samples into WebDataset shards, with one index per shard and a dataset manifest.')
      .requiredOption('--source <name>', 'fashion-mnist, imagefolder or synthetic')
      .option('--split <split>', 'fashion-mnist split: train or test', 'train')
      .option(
        '--input <dir>',
        'imagefolder: root with one folder per class; fashion-mnist: idx file directory',
      )
      .option(
        '--count <n>',
        'synthetic: number of samples; fashion-mnist: at most this many',
        intArg('--count'),
      )
      .option('--seed <s>', 'synthetic: PRNG seed', intArg('--seed'), 0)
      .option('--mean-bytes <n>', 'synthetic: mean payload size', intArg('--mean-bytes'), 110_000)
      .option('--classes <n>', 'synthetic: number of classes', intArg('--classes'), 1000)
      .requiredOption('--out <url>', 'dataset root: s3://bucket/prefix or a directory')
      .option('--shard-bytes <size>', 'target shard size, e.g. 64MiB', parseBytes, BUILD_DEFAULTS.shardBytes)
      .option('--prefix <name>', 'shard name prefix (<prefix>-000000.tar); default the split or train'),
  ).action(runAction((flags: BuildFlags) => build(flags)));

  addS3Flags(
    shards
      .command('index')
      .description(
        'Index existing tar shards (GNU tar, Python tarfile, webdataset, ...) and write a manifest. ' +
          'PATTERN: a URL, a brace pattern (train-{000000..000127}.tar), or a prefix ending in /; ' +
          'several are indexed in order (so an unquoted brace pattern the shell expanded works too, ' +
          'though quoting it avoids the shell’s argument-length limit).',
      )
      .argument('<pattern...>', 'shard URLs, brace patterns, or prefix/')
      .requiredOption('--out <url>', 'manifest to write: .../manifest.json (or a directory)')
      .option('--concurrency <n>', 'shards read at once', intArg('--concurrency'), 4),
  ).action(runAction((patterns: string[], flags: IndexFlags) => index(patterns, flags)));
}
