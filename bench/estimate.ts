// `npm run bench:estimate`: the I/O and cost estimate at ImageNet-1k scale
// (N = 1,281,167, ~110 KB samples, ~1,280 shards of ~110 MB; SADP r = 0.35,
// 8 ranks x 256, 90 epochs on S3 Standard), as `sadp estimate` computes it,
// written to bench/results/estimate-imagenet.{json,svg}.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { packageRoot } from '../common/paths.js';
import { LINK_PRESETS, estimatePlotSpec, estimateRun, syntheticLayout } from '../loader/index.js';
import { renderVegaLiteSvg } from './plot.js';

const started = performance.now();
const dataset = syntheticLayout({ samples: 1_281_167, meanBytes: 110_000, shardBytes: 110 * 1024 * 1024 });
const est = estimateRun({
  dataset,
  policy: 'sadp',
  pruneRatio: 0.35,
  epochs: 90,
  worldSize: 8,
  batchSize: 256,
  link: LINK_PRESETS['s3-standard'],
});
const out = join(packageRoot, 'bench', 'results');
await writeFile(
  join(out, 'estimate-imagenet.json'),
  `${JSON.stringify({ shards: dataset.shardBytes.length, ...est, seconds: (performance.now() - started) / 1000 }, null, 1)}\n`,
);
await writeFile(
  join(out, 'estimate-imagenet.svg'),
  await renderVegaLiteSvg(estimatePlotSpec(est) as unknown as TopLevelSpec),
);
const t = est.total;
process.stdout.write(
  `90 epochs: ${t.gets} GETs, ${(t.bytesFetched / 1e12).toFixed(2)} TB, $${t.dollars.toFixed(2)}, ${(t.seconds / 3600).toFixed(1)} h of reads; ` +
    `whole shards: ${t.whole.gets} GETs, ${(t.whole.bytes / 1e12).toFixed(2)} TB, $${t.whole.dollars.toFixed(2)}, ${(t.whole.seconds / 3600).toFixed(1)} h\n`,
);
