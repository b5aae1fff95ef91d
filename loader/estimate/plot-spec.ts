// A Vega-Lite spec of an estimate (bytes fetched per epoch, pruned vs whole
// shards): `sadp estimate --plot` writes it; any Vega-Lite renderer draws it.
import type { RunEstimate } from './estimate.js';

/** A Vega-Lite spec: bytes fetched per epoch, pruned vs whole shards. */
export function estimatePlotSpec(est: RunEstimate): Record<string, unknown> {
  const values = est.epochs.flatMap((e) => [
    {
      epoch: e.epoch,
      reading: `pruned plan (${est.planner.mode} planner)`,
      GB: e.bytesFetched / 1e9,
      GETs: e.gets,
    },
    { epoch: e.epoch, reading: 'whole shards', GB: e.whole.bytes / 1e9, GETs: e.whole.gets },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Bytes fetched per epoch',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative' },
      y: { field: 'GB', type: 'quantitative', title: 'GB fetched' },
      color: { field: 'reading', type: 'nominal' },
    },
    width: 480,
    height: 240,
  };
}
