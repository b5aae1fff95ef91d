// Per-config aggregates of the accuracy benchmark, the paper's targets
// checked against them, the markdown table for BENCHMARKS.md and the plot.
import { mean, sampleStandardDeviation } from 'simple-statistics';
import type { PolicyName } from '../../scorer/index.js';
import { writeLinePanelsSvg, type LinePanel, type LinePoint } from '../plot.js';
import type { RunResult } from './run.js';

interface Stat {
  mean: number;
  /** Sample standard deviation (n - 1); 0 for a single run. */
  std: number;
  min: number;
  max: number;
  n: number;
}

export interface ConfigSummary {
  config: string;
  policy: PolicyName;
  /** Nominal r (0 for full data). */
  pruneRatio: number;
  smoothing: number;
  maxPruneRatio: number;
  seeds: number[];
  /** Final test accuracy in [0, 1]. */
  accuracy: Stat;
  /** Mean accuracy minus full data's mean accuracy (same seeds), in [0, 1] units. */
  accuracyVsFull?: number;
  /** 1 - samples trained / (N K). */
  realizedPruneFraction: Stat;
  trainSeconds: Stat;
  cpuSeconds: Stat;
  /** Per seed: this run's training wall (CPU) time over the full-data run's of that seed. */
  timeRatio?: Stat;
  cpuTimeRatio?: Stat;
  /** What the time ratio would be if time were proportional to samples: 1 - mean realized fraction. */
  idealTimeRatio: number;
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** null when the grid lacks a config the check needs. */
  met: boolean | null;
}

function stat(values: number[]): Stat {
  return {
    mean: mean(values),
    std: values.length > 1 ? sampleStandardDeviation(values) : 0,
    min: Math.min(...values),
    max: Math.max(...values),
    n: values.length,
  };
}

/** One summary per config, in the order configs first appear in `runs`. */
export function summarize(runs: readonly RunResult[]): ConfigSummary[] {
  const byConfig = new Map<string, RunResult[]>();
  for (const r of runs) byConfig.set(r.config, [...(byConfig.get(r.config) ?? []), r]);
  const full = byConfig.get('full');
  const fullBySeed = new Map(full?.map((r) => [r.seed, r]));
  const fullAccuracy = full ? mean(full.map((r) => r.testAccuracy)) : undefined;
  return [...byConfig.values()].map((group) => {
    const first = group[0]!;
    const paired = group.flatMap((r) => {
      const f = fullBySeed.get(r.seed);
      return f ? [{ wall: r.trainSeconds / f.trainSeconds, cpu: r.cpuSeconds / f.cpuSeconds }] : [];
    });
    const accuracy = stat(group.map((r) => r.testAccuracy));
    const realized = stat(group.map((r) => r.realizedPruneFraction));
    return {
      config: first.config,
      policy: first.policy,
      pruneRatio: first.pruneRatio,
      smoothing: first.smoothing,
      maxPruneRatio: first.maxPruneRatio,
      seeds: group.map((r) => r.seed),
      accuracy,
      accuracyVsFull: fullAccuracy === undefined ? undefined : accuracy.mean - fullAccuracy,
      realizedPruneFraction: realized,
      trainSeconds: stat(group.map((r) => r.trainSeconds)),
      cpuSeconds: stat(group.map((r) => r.cpuSeconds)),
      timeRatio: paired.length > 0 ? stat(paired.map((p) => p.wall)) : undefined,
      cpuTimeRatio: paired.length > 0 ? stat(paired.map((p) => p.cpu)) : undefined,
      idealTimeRatio: 1 - realized.mean,
    };
  });
}

const pct = (x: number, digits = 2): string => (100 * x).toFixed(digits);

/** The paper's claims (arXiv 2510.04098), checked as they are; nothing was tuned to meet them. */
export function checkTargets(configs: readonly ConfigSummary[]): TargetCheck[] {
  const find = (policy: PolicyName, r: number) =>
    configs.find((c) => c.policy === policy && (policy === 'full' || c.pruneRatio === r));
  const checks: TargetCheck[] = [];
  const full = find('full', 0);
  const sadp3 = find('sadp', 0.3);
  checks.push(
    full && sadp3
      ? {
          target: 'SADP within 0.5 points of full data at r = 0.3',
          measured: `SADP ${pct(sadp3.accuracy.mean)}% vs full ${pct(full.accuracy.mean)}% (${signed(100 * (sadp3.accuracy.mean - full.accuracy.mean))} points)`,
          met: sadp3.accuracy.mean >= full.accuracy.mean - 0.005,
        }
      : { target: 'SADP within 0.5 points of full data at r = 0.3', measured: 'not run', met: null },
  );
  const sadp7 = find('sadp', 0.7);
  const rivals = (['random', 'infobatch'] as const).map((p) => find(p, 0.7));
  checks.push(
    sadp7 && rivals.every((c) => c !== undefined)
      ? {
          target: 'SADP ahead of random and InfoBatch at r = 0.7',
          measured: `SADP ${pct(sadp7.accuracy.mean)}%, random ${pct(rivals[0]!.accuracy.mean)}%, InfoBatch ${pct(rivals[1]!.accuracy.mean)}%`,
          met: rivals.every((c) => sadp7.accuracy.mean > c.accuracy.mean),
        }
      : { target: 'SADP ahead of random and InfoBatch at r = 0.7', measured: 'not run', met: null },
  );
  for (const c of configs.filter((x) => x.policy === 'sadp')) {
    const target = `SADP wall-time ratio within 0.05 of 1 - r at r = ${c.pruneRatio}`;
    checks.push(
      c.timeRatio
        ? {
            target,
            measured: `${c.timeRatio.mean.toFixed(3)} vs ${(1 - c.pruneRatio).toFixed(2)} (CPU-time ratio ${c.cpuTimeRatio!.mean.toFixed(3)}, samples ratio ${c.idealTimeRatio.toFixed(3)})`,
            met: Math.abs(c.timeRatio.mean - (1 - c.pruneRatio)) <= 0.05,
          }
        : { target, measured: 'no full-data run to compare with', met: null },
    );
  }
  return checks;
}

function signed(x: number, digits = 2): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
}

const POLICY_LABEL: Record<PolicyName, string> = {
  full: 'full data',
  random: 'random',
  infobatch: 'InfoBatch',
  'sadp-loss': 'SADP (loss score)',
  sadp: 'SADP',
};

/** The table for BENCHMARKS.md, sorted by r then policy. */
export function markdownTable(configs: readonly ConfigSummary[]): string {
  const order: PolicyName[] = ['full', 'random', 'infobatch', 'sadp-loss', 'sadp'];
  const rows = [...configs].sort(
    (a, b) => a.pruneRatio - b.pruneRatio || order.indexOf(a.policy) - order.indexOf(b.policy),
  );
  const head = [
    '| policy | r | beta / r_max | realized pruned | test acc. % (mean ± std) | vs full (points) | train time s | time ratio (wall) | time ratio (CPU) | samples ratio |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const body = rows.map((c) =>
    [
      POLICY_LABEL[c.policy],
      c.policy === 'full' ? '0' : String(c.pruneRatio),
      c.policy === 'sadp' || c.policy === 'sadp-loss' ? `${c.smoothing} / ${c.maxPruneRatio}` : '-',
      `${pct(c.realizedPruneFraction.mean, 1)}%`,
      `${pct(c.accuracy.mean)} ± ${pct(c.accuracy.std)} (n=${c.accuracy.n})`,
      c.accuracyVsFull === undefined || c.policy === 'full' ? '-' : signed(100 * c.accuracyVsFull),
      `${c.trainSeconds.mean.toFixed(1)}`,
      c.timeRatio ? `${c.timeRatio.mean.toFixed(3)} ± ${c.timeRatio.std.toFixed(3)}` : '-',
      c.cpuTimeRatio ? c.cpuTimeRatio.mean.toFixed(3) : '-',
      c.idealTimeRatio.toFixed(3),
    ].join(' | '),
  );
  return [...head, ...body.map((r) => `| ${r} |`)].join('\n');
}

export function markdownTargets(checks: readonly TargetCheck[]): string {
  return checks
    .map((c) => `- ${c.met === null ? 'n/a' : c.met ? 'met' : 'NOT met'}: ${c.target}: ${c.measured}`)
    .join('\n');
}

/**
 * Left: test accuracy against the realized pruned fraction (InfoBatch's
 * realized fraction is well below its nominal r), full data as a dashed
 * line. Then training wall time and CPU time over full data's (CPU time
 * is what a loaded machine does not distort), with the ideal 1 - fraction.
 */
export async function writeAccuracyPlot(
  path: string,
  configs: readonly ConfigSummary[],
  title: string,
): Promise<void> {
  const pruned = configs.filter((c) => c.policy !== 'full');
  const full = configs.find((c) => c.policy === 'full');
  const maxX = Math.max(0.1, ...pruned.map((c) => c.realizedPruneFraction.mean));
  const acc: LinePoint[] = pruned.map((c) => ({
    x: c.realizedPruneFraction.mean,
    y: 100 * c.accuracy.mean,
    yLow: 100 * (c.accuracy.mean - c.accuracy.std),
    yHigh: 100 * (c.accuracy.mean + c.accuracy.std),
    series: POLICY_LABEL[c.policy],
  }));
  if (full) {
    for (const x of [0, maxX])
      acc.push({ x, y: 100 * full.accuracy.mean, series: 'full data', reference: true });
  }
  const ratioPoints = (pick: (c: ConfigSummary) => Stat | undefined): LinePoint[] => {
    const points: LinePoint[] = pruned.flatMap((c) => {
      const r = pick(c);
      return r
        ? [
            {
              x: c.realizedPruneFraction.mean,
              y: r.mean,
              yLow: r.mean - r.std,
              yHigh: r.mean + r.std,
              series: POLICY_LABEL[c.policy],
            },
          ]
        : [];
    });
    for (const x of [0, maxX]) points.push({ x, y: 1 - x, series: 'ideal (1 - pruned)', reference: true });
    return points;
  };
  const panels: LinePanel[] = [
    {
      title: 'Test accuracy (mean ± std over seeds)',
      xLabel: 'realized pruned fraction',
      yLabel: 'test accuracy (%)',
      points: acc,
    },
    {
      title: 'Training wall time relative to full data',
      xLabel: 'realized pruned fraction',
      yLabel: 'wall-time ratio (mean ± std)',
      points: ratioPoints((c) => c.timeRatio),
    },
    {
      title: 'Training CPU time relative to full data',
      xLabel: 'realized pruned fraction',
      yLabel: 'CPU-time ratio (mean ± std)',
      points: ratioPoints((c) => c.cpuTimeRatio),
    },
  ];
  await writeLinePanelsSvg(path, panels, {
    title,
    seriesLabel: 'policy',
    width: 270,
    height: 230,
  });
}
