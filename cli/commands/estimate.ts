// `sadp estimate`: before a run is paid for, the GETs, bytes, dollars and
// read time of every epoch, planned with the loader's own shuffle, rank split
// and read planner, against reading every shard whole. From a manifest (the
// real sample sizes) or from N and a mean sample size. Prints a table, or
// JSON with --json; --plot writes a Vega-Lite spec of bytes per epoch.
import { writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { SadpError, Status } from '../../common/errors.js';
import {
  ESTIMATE_POLICIES,
  LINK_PRESETS,
  READ_PLANNER_MODES,
  estimatePlotSpec,
  estimateRun,
  layoutOfDataset,
  openDataset,
  resolveRangeReaderOptions,
  syntheticLayout,
  type DatasetLayout,
  type EstimateOptions,
  type LinkModel,
  type LinkPreset,
  type ReadPlannerMode,
  type RunEstimate,
  type ShuffleMode,
  LOADER_DEFAULTS,
  IN_FLIGHT_FLOOR,
  SHUFFLE_MODES,
} from '../../loader/index.js';
import { intArg, numArg } from '../args.js';
import { parseBytes } from './shards.js';
import { addS3Flags, runAction, s3OptionsFromFlags, type S3Flags } from './s3.js';

type RunFlags = Pick<
  EstimateOptions,
  'policy' | 'pruneRatio' | 'maxPruneRatio' | 'epochs' | 'worldSize' | 'batchSize' | 'loaders' | 'prefixes'
>;

interface EstimateFlags extends S3Flags, RunFlags {
  manifest?: string;
  samples?: number;
  meanBytes: number;
  shardBytes: number;
  shuffle: ShuffleMode;
  shuffleBlockShards: number;
  preset: LinkPreset;
  latencyMs?: number;
  bandwidth?: number;
  getPrice?: number;
  egressPrice?: number;
  planner: ReadPlannerMode;
  window?: number;
  gapBytes?: number;
  maxWasteRatio?: number;
  costPerRequestUs?: number;
  costPerByteUs?: number;
  concurrency: number;
  json?: boolean;
  plot?: string;
}

/** The loader's defaults, from the range reader that owns them. */
const READER_DEFAULTS = resolveRangeReaderOptions();

const fmtBytes = (b: number): string => {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) {
    b /= 1000;
    i++;
  }
  return `${b.toFixed(b >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
};
const fmtCount = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtDollars = (d: number): string =>
  d === 0
    ? '$0'
    : d < 0.01
      ? `$${d.toFixed(4)}`
      : d < 10
        ? `$${d.toFixed(2)}`
        : `$${Math.round(d).toLocaleString('en-US')}`;
const fmtSeconds = (s: number): string =>
  s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;

function table(est: RunEstimate, link: LinkModel): string {
  const head = ['epoch', 'r_k', 'selected', 'GETs', 'bytes', 'GET/s needed', 'time', 'bound', 'cost'];
  const rows = est.epochs.map((e) => [
    String(e.epoch),
    e.pruneRatio.toFixed(3),
    fmtCount(e.selected),
    fmtCount(e.gets),
    fmtBytes(e.bytesFetched),
    `${fmtCount(e.getRateNeeded)}${e.getRateNeeded > est.getRateLimit ? ' (!)' : ''}`,
    fmtSeconds(e.seconds),
    e.bound,
    fmtDollars(e.dollars),
  ]);
  const w = est.total.whole;
  const t = est.total;
  rows.push(
    [
      'total',
      '',
      '',
      fmtCount(t.gets),
      fmtBytes(t.bytesFetched),
      '',
      fmtSeconds(t.seconds),
      '',
      fmtDollars(t.dollars),
    ],
    [
      'whole shards',
      '',
      '',
      fmtCount(w.gets),
      fmtBytes(w.bytes),
      '',
      fmtSeconds(w.seconds),
      '',
      fmtDollars(w.dollars),
    ],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const p = est.planner;
  const notes = [
    `planner: ${p.mode}, time = max(CPU ${p.cost.perRequestUs.toFixed(0)} us per GET + ${p.cost.perByteUs.toPrecision(2)} us per byte` +
      (p.cost.latencyUs === undefined
        ? ''
        : `, latency ${(p.cost.latencyUs / 1000).toPrecision(3)} ms over ${p.cost.concurrency ?? 1} GETs in flight`) +
      (p.cost.linkPerByteUs === undefined
        ? ''
        : `, link ${p.cost.linkPerByteUs.toPrecision(2)} us per byte`) +
      `) (break-even gap ${fmtBytes(p.breakEvenGapBytes)}), ` +
      (p.windowBatches === 1 ? 'one read per batch' : `one read per ${p.windowBatches} batches of a rank`),
    `link: ${link.latencyMs} ms per GET, ${fmtBytes(link.bandwidthBytesPerSecond)}/s, $${link.getPricePer1000} per 1,000 GETs, ` +
      `$${link.egressPricePerGB + link.retrievalPricePerGB}/GB; GET rate limit ${fmtCount(est.getRateLimit)}/s`,
    `pruned run vs whole shards: ${(100 * (1 - t.bytesFetched / w.bytes)).toFixed(1)}% fewer bytes, ` +
      `${(t.gets / w.gets).toFixed(1)}x the GETs, ${fmtDollars(t.dollars)} vs ${fmtDollars(w.dollars)}`,
  ];
  if (est.epochs.some((e) => e.getRateNeeded > est.getRateLimit))
    notes.push(
      '(!) above the GET rate limit: spread shards over more prefixes (--prefixes) or use shard-block shuffle',
    );
  return [line(head), ...rows.map(line), '', ...notes].join('\n');
}

async function layoutFrom(flags: EstimateFlags): Promise<DatasetLayout> {
  if (flags.manifest) {
    const dataset = await openDataset(flags.manifest, { s3: s3OptionsFromFlags(flags) });
    return layoutOfDataset(dataset);
  }
  if (flags.samples === undefined || flags.samples < 1) {
    throw new SadpError('SADP_CONFIG_INVALID', 'give --manifest <url> or --samples <n> (with --mean-bytes)', {
      status: Status.INVALID_ARGUMENT,
    });
  }
  return syntheticLayout({
    samples: flags.samples,
    meanBytes: flags.meanBytes,
    shardBytes: flags.shardBytes,
  });
}

function readerFrom(flags: EstimateFlags): NonNullable<EstimateOptions['reader']> {
  const fixed = [flags.costPerRequestUs, flags.costPerByteUs].filter((v) => v !== undefined).length;
  if (fixed === 1) {
    throw new SadpError(
      'SADP_CONFIG_INVALID',
      'a fixed cost model needs both --cost-per-request-us and --cost-per-byte-us',
      { status: Status.INVALID_ARGUMENT },
    );
  }
  return {
    planner: flags.planner,
    concurrency: flags.concurrency,
    ...(flags.gapBytes === undefined ? {} : { gapBytes: flags.gapBytes }),
    ...(flags.maxWasteRatio === undefined ? {} : { maxWasteRatio: flags.maxWasteRatio }),
    ...(fixed === 2
      ? { cost: { perRequestUs: flags.costPerRequestUs!, perByteUs: flags.costPerByteUs! } }
      : {}),
  };
}

async function estimate(flags: EstimateFlags): Promise<void> {
  const preset = LINK_PRESETS[flags.preset];
  const link: LinkModel = {
    ...preset,
    ...(flags.latencyMs === undefined ? {} : { latencyMs: flags.latencyMs }),
    ...(flags.bandwidth === undefined ? {} : { bandwidthBytesPerSecond: flags.bandwidth }),
    ...(flags.getPrice === undefined ? {} : { getPricePer1000: flags.getPrice }),
    ...(flags.egressPrice === undefined ? {} : { egressPricePerGB: flags.egressPrice }),
  };
  const run: RunFlags = {
    policy: flags.policy,
    pruneRatio: flags.pruneRatio,
    ...(flags.maxPruneRatio === undefined ? {} : { maxPruneRatio: flags.maxPruneRatio }),
    epochs: flags.epochs,
    worldSize: flags.worldSize,
    batchSize: flags.batchSize,
    loaders: flags.loaders,
    prefixes: flags.prefixes,
  };
  const est = estimateRun({
    ...run,
    dataset: await layoutFrom(flags),
    link,
    reader: readerFrom(flags),
    windowBatches: flags.window,
    shuffle: flags.shuffle,
    shuffleBlockShards: flags.shuffleBlockShards,
  });
  if (flags.plot) await writeFile(flags.plot, `${JSON.stringify(estimatePlotSpec(est), null, 1)}\n`);
  process.stdout.write(flags.json ? `${JSON.stringify({ link, ...est })}\n` : `${table(est, link)}\n`);
}

export function registerEstimateCommand(program: Command): void {
  addS3Flags(
    program
      .command('estimate')
      .description(
        'Estimate a run before paying for it: per epoch and in total the GETs, bytes, GET rate, dollars and read time, ' +
          'planned with the loader’s own shuffle, rank split and read planner (its mode, and a cost model from the link), ' +
          'against reading every shard whole.',
      )
      .option('--manifest <url>', 'dataset manifest: the real sample sizes and shards')
      .option('--samples <n>', 'without a manifest: number of samples N', intArg('--samples', 1))
      .option(
        '--mean-bytes <n>',
        'without a manifest: mean sample size (lognormal, sigma 0.5)',
        intArg('--mean-bytes', 1),
        110_000,
      )
      .option('--shard-bytes <size>', 'without a manifest: shard size', parseBytes, 256 * 1024 * 1024)
      .addOption(
        new Option('--policy <name>', 'pruning policy').choices([...ESTIMATE_POLICIES]).default('sadp'),
      )
      .option('--prune-ratio <r>', 'average pruning ratio r', numArg('--prune-ratio', 0), 0.5)
      .option(
        '--max-prune-ratio <rmax>',
        'r_max; default from the paper’s Table II',
        numArg('--max-prune-ratio', 0),
      )
      .option('--epochs <k>', 'epochs K', intArg('--epochs', 1), 10)
      .option('--world-size <w>', 'trainer ranks', intArg('--world-size', 1), 8)
      .option('--batch-size <b>', 'samples per batch per rank', intArg('--batch-size', 1), 256)
      .addOption(
        new Option('--shuffle <mode>', 'loader shuffle')
          .choices([...SHUFFLE_MODES])
          .default(LOADER_DEFAULTS.shuffle),
      )
      .option(
        '--shuffle-block-shards <n>',
        'shards per block (shard-block) or buffered (shard-buffer)',
        intArg('--shuffle-block-shards', 1),
        LOADER_DEFAULTS.shuffleBlockShards,
      )
      .addOption(
        new Option('--planner <mode>', 'the loader’s read planner (its --read-planner)')
          .choices([...READ_PLANNER_MODES])
          .default(READER_DEFAULTS.planner),
      )
      .option(
        '--window <batches>',
        'consecutive batches of a rank the loader plans as one read: its --prefetch-batches (default: the loader’s)',
        intArg('--window', 1),
      )
      .option(
        '--gap-bytes <n>',
        `ranges planner: merge gaps below this (default ${READER_DEFAULTS.gapBytes})`,
        intArg('--gap-bytes', 0),
      )
      .option(
        '--max-waste-ratio <x>',
        `pruned bytes read within this fraction of the selected bytes (default ${READER_DEFAULTS.maxWasteRatio})`,
        numArg('--max-waste-ratio', 0),
      )
      .option(
        '--cost-per-request-us <us>',
        'fixed planner cost of one GET (with --cost-per-byte-us); default from the link model',
        numArg('--cost-per-request-us', 0),
      )
      .option(
        '--cost-per-byte-us <us>',
        'fixed planner cost of one byte (with --cost-per-request-us)',
        numArg('--cost-per-byte-us', 0),
      )
      .addOption(
        new Option('--preset <link>', 'link model').choices(Object.keys(LINK_PRESETS)).default('s3-standard'),
      )
      .option('--latency-ms <ms>', 'override: time to first byte per GET', numArg('--latency-ms', 0))
      .option('--bandwidth <bytes/s>', 'override: aggregate bandwidth from storage', numArg('--bandwidth', 1))
      .option('--get-price <usd>', 'override: dollars per 1,000 GETs', numArg('--get-price', 0))
      .option('--egress-price <usd>', 'override: dollars per GB transferred out', numArg('--egress-price', 0))
      .option('--loaders <n>', 'loader replicas', intArg('--loaders', 1), 1)
      .option('--concurrency <n>', 'GETs in flight per loader', intArg('--concurrency', 1), IN_FLIGHT_FLOOR)
      .option('--prefixes <n>', 'S3 prefixes the shards are spread over', intArg('--prefixes', 1), 1)
      .option('--json', 'print JSON instead of the table')
      .option(
        '--plot <file>',
        'write a Vega-Lite spec of bytes per epoch (vega-lite, vega-embed or the online editor render it)',
      ),
  ).action(runAction((flags: EstimateFlags) => estimate(flags)));
}
