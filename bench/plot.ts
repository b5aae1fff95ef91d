// Plots for benchmark results, rendered to SVG in Node by Vega-Lite (no
// browser, no canvas): scatter plots in panels, reusable by any benchmark.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Renders a Vega-Lite spec to an SVG document. */
export async function renderVegaLiteSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface ScatterPoint {
  x: number;
  y: number;
  /** Colour group, e.g. the epoch. */
  series?: string;
  /** Column panel, e.g. which proxy is on the x axis. */
  column?: string;
  /** Row panel, e.g. the model. */
  row?: string;
}

export interface ScatterOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  seriesLabel?: string;
  /** Axis scales. Default linear; `log` drops points <= 0. */
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
  /** Each panel gets its own x (y) domain. Default true for x, false for y. */
  independentX?: boolean;
  independentY?: boolean;
  /** One panel's size in pixels. Default 260 x 220. */
  width?: number;
  height?: number;
}

/** The Vega-Lite spec of a (faceted) scatter plot. */
export function scatterSpec(points: readonly ScatterPoint[], o: ScatterOptions): TopLevelSpec {
  const keep = points.filter(
    (p) =>
      Number.isFinite(p.x) &&
      Number.isFinite(p.y) &&
      (o.xScale !== 'log' || p.x > 0) &&
      (o.yScale !== 'log' || p.y > 0),
  );
  const hasColumn = keep.some((p) => p.column !== undefined);
  const hasRow = keep.some((p) => p.row !== undefined);
  const hasSeries = keep.some((p) => p.series !== undefined);
  const unit = {
    width: o.width ?? 260,
    height: o.height ?? 220,
    mark: { type: 'point' as const, filled: true, size: 12, opacity: 0.55 },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative' as const,
        title: o.xLabel,
        scale: { type: o.xScale ?? 'linear', zero: false },
      },
      y: {
        field: 'y',
        type: 'quantitative' as const,
        title: o.yLabel,
        scale: { type: o.yScale ?? 'linear', zero: false },
      },
      ...(hasSeries
        ? { color: { field: 'series', type: 'nominal' as const, title: o.seriesLabel ?? '' } }
        : {}),
    },
  };
  const data = { values: keep.map((p) => ({ ...p })) };
  if (!hasColumn && !hasRow)
    return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title: o.title, data, ...unit };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    data,
    facet: {
      ...(hasColumn
        ? {
            column: {
              field: 'column',
              type: 'nominal' as const,
              title: null,
              sort: firstSeen(keep, 'column'),
            },
          }
        : {}),
      ...(hasRow
        ? { row: { field: 'row', type: 'nominal' as const, title: null, sort: firstSeen(keep, 'row') } }
        : {}),
    },
    spec: unit,
    resolve: {
      scale: {
        x: (o.independentX ?? true) ? 'independent' : 'shared',
        y: (o.independentY ?? false) ? 'independent' : 'shared',
      },
    },
  };
}

/** Panels in the order their first point appears (Vega-Lite sorts by name otherwise). */
function firstSeen(points: readonly ScatterPoint[], key: 'column' | 'row'): string[] {
  return [...new Set(points.map((p) => p[key]).filter((v): v is string => v !== undefined))];
}

/** Writes a scatter plot to `path` (an .svg), creating its directory. */
export async function writeScatterSvg(
  path: string,
  points: readonly ScatterPoint[],
  o: ScatterOptions,
): Promise<void> {
  const svg = await renderVegaLiteSvg(scatterSpec(points, o));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, svg);
}

export interface LinePoint {
  x: number;
  y: number;
  /** Error bar from yLow to yHigh (e.g. mean -/+ std); none when absent. */
  yLow?: number;
  yHigh?: number;
  /** Line and colour group, e.g. the policy. */
  series: string;
  /** Drawn dashed without markers: a baseline or an ideal, not a measurement. */
  reference?: boolean;
}

export interface LinePanel {
  title: string;
  xLabel: string;
  yLabel: string;
  points: readonly LinePoint[];
  /** x axis starts at 0. Default true. */
  xZero?: boolean;
}

export interface LinePanelsOptions {
  title: string;
  seriesLabel?: string;
  /** One panel's size in pixels. Default 320 x 240. */
  width?: number;
  height?: number;
}

/**
 * Side-by-side panels of lines with markers and error bars, one line per
 * series, colours shared across panels; reference series are dashed.
 */
export function linePanelsSpec(panels: readonly LinePanel[], o: LinePanelsOptions): TopLevelSpec {
  const color = { field: 'series', type: 'nominal' as const, title: o.seriesLabel ?? '' };
  const unit = (p: LinePanel) => {
    const values = p.points
      .filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y))
      .map((q) => ({
        x: q.x,
        y: q.y,
        yLow: q.yLow ?? null,
        yHigh: q.yHigh ?? null,
        series: q.series,
        reference: q.reference ?? false,
      }));
    const x = {
      field: 'x',
      type: 'quantitative' as const,
      title: p.xLabel,
      scale: { zero: p.xZero ?? true },
    };
    const y = { field: 'y', type: 'quantitative' as const, title: p.yLabel, scale: { zero: false } };
    return {
      title: p.title,
      width: o.width ?? 320,
      height: o.height ?? 240,
      data: { values },
      layer: [
        {
          transform: [{ filter: '!datum.reference' }],
          mark: { type: 'line' as const, point: { filled: true, size: 40 } },
          encoding: { x, y, color },
        },
        {
          transform: [{ filter: '!datum.reference && isValid(datum.yLow) && isValid(datum.yHigh)' }],
          mark: { type: 'rule' as const },
          encoding: {
            x,
            y: { field: 'yLow', type: 'quantitative' as const },
            y2: { field: 'yHigh' },
            color,
          },
        },
        {
          transform: [{ filter: 'datum.reference' }],
          mark: { type: 'line' as const, strokeDash: [6, 4] },
          encoding: { x, y, color },
        },
      ],
    };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    hconcat: panels.map(unit),
    resolve: { scale: { color: 'shared' } },
  };
}

/** Writes side-by-side line panels to `path` (an .svg), creating its directory. */
export async function writeLinePanelsSvg(
  path: string,
  panels: readonly LinePanel[],
  o: LinePanelsOptions,
): Promise<void> {
  const svg = await renderVegaLiteSvg(linePanelsSpec(panels, o));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, svg);
}
