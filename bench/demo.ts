// `npm run bench:demo`: is the demo's synthetic fallback informative? Runs
// `sadp demo --dataset synthetic` (defaults: 12,000 images, 5 epochs, r = 0.5)
// once per policy and checks what the calibration promises: the full-data
// model ends in 85-90 %, random pruning clearly below it, SADP between.
// Writes bench/results/demo-synthetic.json; exits 1 when a target is missed.
//
//   npm run bench:demo [-- --policies full,random,sadp] [-- --epochs 5]
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../common/paths.js';
import { runSadp } from '../test/helpers/processes.js';

const { values } = parseArgs({
  options: {
    policies: { type: 'string', default: 'full,random,sadp' },
    epochs: { type: 'string', default: '5' },
  },
});

interface PolicyRun {
  policy: string;
  /** Test accuracy after each epoch, %. */
  accuracy: number[];
  fetched: string;
  seconds: number;
}

const load = { start: loadavg()[0] };
const runs: PolicyRun[] = [];
for (const policy of values.policies.split(',')) {
  const started = performance.now();
  const r = await runSadp(['demo', '--dataset', 'synthetic', '--policy', policy, '--epochs', values.epochs], {
    timeoutMs: 3_600_000,
  });
  if (r.code !== 0)
    throw new Error(`sadp demo --policy ${policy} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const accuracy = r.stdout
    .split('\n')
    .map((l) => /^\s+\d+\s+(\d+\.\d\d)%/.exec(l)?.[1])
    .filter((a): a is string => a !== undefined)
    .map(Number);
  const fetched = /fetched (.*) full-data bytes/.exec(r.stdout)?.[1] ?? '?';
  runs.push({ policy, accuracy, fetched, seconds: (performance.now() - started) / 1000 });
  process.stdout.write(
    `${policy.padEnd(8)} ${accuracy.map((a) => `${a.toFixed(2)}%`).join(' ')}  fetched ${fetched}\n`,
  );
}

const final = (policy: string): number | undefined => runs.find((r) => r.policy === policy)?.accuracy.at(-1);
const full = final('full');
const random = final('random');
const sadp = final('sadp');
const targets = [
  { target: 'full-data model ends in 85-90 %', met: full !== undefined && full >= 85 && full <= 90 },
  {
    target: 'random pruning at r = 0.5 clearly below full (>= 2 points)',
    met: full !== undefined && random !== undefined && random <= full - 2,
  },
  {
    target: 'SADP between random and full',
    met: full !== undefined && random !== undefined && sadp !== undefined && sadp >= random && sadp <= full,
  },
];
for (const t of targets) process.stdout.write(`${t.met ? 'met' : 'MISSED'}: ${t.target}\n`);
await writeFile(
  join(packageRoot, 'bench', 'results', 'demo-synthetic.json'),
  `${JSON.stringify({ date: new Date().toISOString(), load: { ...load, end: loadavg()[0] }, runs, targets }, null, 1)}\n`,
);
if (targets.some((t) => !t.met)) process.exitCode = 1;
