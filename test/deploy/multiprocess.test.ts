// The Kubernetes manifests, run for real as separate local processes: the
// dev overlay's embedded S3, scorer and two loaders, and the example trainer
// Job's four ranks, each with its container's exact args and environment
// (local-cluster.ts: only ports, Service names, mount paths and the
// completion index are adapted, by mechanical rules). The dataset and the job
// are made with the commands docs/deploy.md gives, adapted the same way.
// Two epochs of 2,048 Fashion-MNIST examples end to end on loopback; every service must pass its probes until SIGTERM and then stop
// within its grace period.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../common/paths.js';
import { TRAIN_DEFAULTS } from '../../trainer/train/options.js';
import { runSadp } from '../helpers/processes.js';
import { EXAMPLES, exampleObjects, find, rendered, type K8sObject } from './manifests.js';
import {
  createLocalCluster,
  findCommand,
  flagValue,
  shellCommands,
  withFlag,
  type LocalCluster,
  type LocalPod,
  type PodProcess,
} from './local-cluster.js';

/** Examples written to S3: two batches (of the default 128) per rank in each epoch, and still fast. */
const EXAMPLES_COUNT = 2048;
/** Epochs of the job (docs/deploy.md says 10): two cross an epoch boundary. */
const EPOCHS = 2;
/** Whole-run bound for the trainer ranks (a loaded 2-core machine starts four TF.js processes slowly). */
const TRAIN_TIMEOUT_MS = 150_000;

const docs = readFileSync(join(packageRoot, 'docs', 'deploy.md'), 'utf8');
const trainerJobFile = EXAMPLES.find((f) => f.endsWith('trainer-job.yaml'))!;

/** `epoch 1/2  loss 2.1234  selected 1012/2048 (pruned ...` (stdout of `sadp train`, one line per epoch). */
const SUMMARY = /^epoch (\d+)\/(\d+)\s+loss (\S+)\s+.*\bselected (\d+)\/(\d+) /;
/** `epoch 1/2: 2 batches from 0, 1012 of 2048 examples selected` (stderr of `sadp train`). */
const EPOCH_START = /^epoch (\d+)\/(\d+): (\d+) batches from (\d+), (\d+) of (\d+) examples selected/;

interface EpochLine {
  epoch: number;
  epochs: number;
  steps?: number;
  loss?: number;
  selected: number;
  size: number;
}

function epochLines(p: PodProcess): Map<number, EpochLine> {
  const out = new Map<number, EpochLine>();
  for (const line of p.stdout) {
    const m = SUMMARY.exec(line);
    if (!m) continue;
    const epoch = Number(m[1]) - 1;
    out.set(epoch, {
      ...out.get(epoch),
      epoch,
      epochs: Number(m[2]),
      loss: Number(m[3]),
      selected: Number(m[4]),
      size: Number(m[5]),
    });
  }
  for (const line of p.stderr) {
    const m = EPOCH_START.exec(line);
    if (!m) continue;
    const epoch = Number(m[1]) - 1;
    const prev = out.get(epoch);
    out.set(epoch, {
      epoch,
      epochs: Number(m[2]),
      selected: Number(m[5]),
      size: Number(m[6]),
      ...prev,
      steps: Number(m[3]),
    });
  }
  return out;
}

function json<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new Error(`${what}: not JSON: ${text}`, { cause });
  }
}

/** The last JSON line of a command's stdout. */
function lastJsonLine<T>(stdout: string, what: string): T {
  const line = stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .at(-1);
  return json<T>(line ?? '', what);
}

async function healthy(cluster: LocalCluster, p: PodProcess): Promise<void> {
  assert.ok(p.running, `${p.pod.name} exited: ${p.describe()}`);
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
    const failure = await cluster.probe(p.pod, kind);
    assert.equal(failure, undefined, `${p.pod.name}: ${failure}\n${p.describe()}`);
  }
}

/** The /metrics endpoint the ServiceMonitor scrapes (the container port named `metrics`). */
async function servesMetrics(p: PodProcess): Promise<void> {
  const declared = p.pod.container.ports?.find((x) => x.name === 'metrics')?.containerPort;
  if (declared === undefined) return;
  const res = await fetch(`http://127.0.0.1:${p.pod.ports.get(declared)}/metrics`);
  const body = await res.text();
  assert.equal(res.status, 200, `${p.pod.name} /metrics`);
  assert.match(body, /^sadp_/m, `${p.pod.name} /metrics has sadp_ series`);
}

async function stopsGracefully(p: PodProcess): Promise<void> {
  const { exit, killed, ms } = await p.terminate();
  assert.ok(
    !killed,
    `${p.pod.name} ignored SIGTERM for its grace period (${p.pod.graceMs} ms)\n${p.describe()}`,
  );
  assert.deepEqual(
    exit,
    { code: 0, signal: null },
    `${p.pod.name} exit after SIGTERM (${Math.round(ms)} ms)\n${p.describe()}`,
  );
}

const buildCommand = findCommand(shellCommands(docs), ['sadp', 'shards', 'build']);
const fashionMnistDir = flagValue(buildCommand, '--input');

test(
  'k8s manifests, multi-process run: dev overlay S3 + scorer + 2 loaders and the 4-rank trainer Job train 2 epochs on loopback',
  {
    timeout: 240_000,
    skip:
      fashionMnistDir !== undefined && !existsSync(fashionMnistDir)
        ? `docs/deploy.md builds from ${fashionMnistDir}, absent here`
        : false,
  },
  async (t) => {
    const token = randomBytes(32).toString('hex');
    const commands = shellCommands(docs, { TOKEN: token });

    // The job token Secret, created as docs/deploy.md step 6 says.
    const secretCmd = findCommand(commands, ['create', 'secret', 'generic', 'sadp-job-token']);
    const literal = /^--from-literal=([^=]+)=(.*)$/.exec(
      secretCmd.find((a) => a.startsWith('--from-literal=')) ?? '',
    );
    assert.ok(literal, `no --from-literal in \`${secretCmd.join(' ')}\``);
    const tokenSecret: K8sObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'sadp-job-token', namespace: flagValue(secretCmd, '-n') ?? 'default' },
      stringData: { [literal[1]!]: literal[2]! },
    };

    const dev = rendered('dev');
    // The HPA owns the loader count; two (within its range) so the ranks spread.
    const LOADERS = 2;
    const hpa = find(dev, 'HorizontalPodAutoscaler', 'sadp-loader').spec as {
      minReplicas: number;
      maxReplicas: number;
    };
    assert.ok(hpa.minReplicas <= LOADERS && LOADERS <= hpa.maxReplicas, 'the dev overlay allows two loaders');
    const root = mkdtempSync(join(tmpdir(), 'sadp-k8s-local-'));
    const cluster = await createLocalCluster({
      objects: [...dev, ...exampleObjects(trainerJobFile), tokenSecret],
      root,
      replicas: { 'sadp-loader': LOADERS },
    });
    t.after(async () => {
      await Promise.all(cluster.processes.map((p) => p.kill()));
      rmSync(root, { recursive: true, force: true });
    });
    const one = (workload: string): LocalPod => {
      const pods = cluster.podsOf(workload);
      assert.equal(pods.length, 1, `one ${workload} pod`);
      return pods[0]!;
    };
    const s3Pod = one('sadp-s3');
    const scorerPod = one('sadp-scorer');
    const loaderPods = cluster.podsOf('sadp-loader');
    const trainerPods = cluster.podsOf('sadp-trainer');
    assert.equal(loaderPods.length, LOADERS);
    assert.equal(trainerPods.length, 4, 'completions: 4');

    // 1. The embedded S3 server.
    const s3 = await cluster.start(s3Pod);
    await healthy(cluster, s3);

    // 2. The dataset, from "your machine" through the port-forward the docs set up.
    const forward = findCommand(commands, ['port-forward']);
    const fwd = /^svc\/(.+)$/.exec(forward.find((a) => a.startsWith('svc/')) ?? '');
    const fwdPorts = /^(\d+):(\d+)$/.exec(forward.at(-1) ?? '');
    assert.ok(fwd && fwdPorts, `port-forward svc/NAME LOCAL:REMOTE in \`${forward.join(' ')}\``);
    const forwarded = cluster.servicePort(fwd[1]!, Number(fwdPorts[2]));
    const build = [
      ...buildCommand.slice(1).map((a) => a.replaceAll(`127.0.0.1:${fwdPorts[1]}`, `127.0.0.1:${forwarded}`)),
      '--count',
      String(EXAMPLES_COUNT),
    ];
    const built = await runSadp(build, { timeoutMs: 60_000 });
    assert.equal(built.code, 0, `sadp ${build.join(' ')}\n${built.stdout}\n${built.stderr}`);
    const dataset = lastJsonLine<{ manifest: string; samples: number }>(built.stdout, 'shards build');
    assert.equal(dataset.samples, EXAMPLES_COUNT);

    // 3. The scorer, then the job, created from inside its pod (docs step 6).
    const scorer = await cluster.start(scorerPod);
    await healthy(cluster, scorer);
    const createCmd = findCommand(commands, ['sadp', 'scorer', 'create-job']);
    const execTarget = createCmd[createCmd.indexOf('exec') + 1];
    assert.equal(execTarget, `deploy/${scorerPod.workload.metadata.name}`, 'the docs exec into the scorer');
    let create = createCmd.slice(createCmd.indexOf('--') + 1);
    create = withFlag(create, '--epochs', String(EPOCHS));
    create = withFlag(create, '--dataset', dataset.manifest);
    const created = await cluster.exec(scorerPod, create);
    assert.equal(created.code, 0, `${create.join(' ')}\n${created.stdout}\n${created.stderr}`);
    // create-job took N from the manifest it opened (the docs give no --size).
    const createdJob = JSON.parse(created.stdout) as { spec: { datasetSize: number } };
    assert.equal(createdJob.spec.datasetSize, dataset.samples);
    const jobId = flagValue(create, '--job')!;
    assert.equal(
      flagValue(trainerPods[0]!.args, '--job'),
      jobId,
      'the trainer Job trains the job docs/deploy.md creates',
    );

    // 4. Two loaders.
    const loaders = await Promise.all(loaderPods.map((p) => cluster.start(p)));
    for (const l of loaders) await healthy(cluster, l);

    // 5. The trainer ranks, spread over the loaders (rank i -> loader i mod 2,
    //    as the headless Service's DNS answer would spread them).
    const byLoader = trainerPods.map((p) => flagValue(p.args, '--loader'));
    assert.equal(new Set(byLoader).size, LOADERS, `ranks use every loader: ${byLoader.join(', ')}`);
    const trainers = trainerPods.map((p) => cluster.launch(p));
    const timer = setTimeout(() => trainers.forEach((p) => void p.kill()), TRAIN_TIMEOUT_MS);
    const exits = await Promise.all(trainers.map((p) => p.exited));
    clearTimeout(timer);
    exits.forEach((exit, i) =>
      assert.deepEqual(exit, { code: 0, signal: null }, `rank ${i}\n${trainers[i]!.describe()}`),
    );

    // Services still healthy after the run, then drained by SIGTERM (loaders
    // first: they flush the scores they hold to the scorer).
    for (const p of [s3, scorer, ...loaders]) await healthy(cluster, p);
    for (const p of [scorer, ...loaders]) await servesMetrics(p);
    for (const l of loaders) await stopsGracefully(l);

    // 6. What each rank printed, against the scorer's plans.
    const perRank = trainers.map(epochLines);
    const plans = [];
    for (let epoch = 0; epoch < EPOCHS; epoch++) {
      const plan = await cluster.exec(scorerPod, [
        'sadp',
        'scorer',
        'plan',
        '--address',
        flagValue(create, '--address')!,
        '--job',
        jobId,
        '--epoch',
        String(epoch),
        '--ids',
      ]);
      assert.equal(plan.code, 0, plan.stderr);
      const p = json<{ selectedCount: number; digestVerified: boolean; ids: number[] }>(plan.stdout, 'plan');
      assert.ok(p.digestVerified, `plan of epoch ${epoch}: digest verified`);
      plans.push(p);
      const lines = perRank.map((m, rank) => {
        const line = m.get(epoch);
        assert.ok(
          line?.loss !== undefined,
          `rank ${rank} printed a summary for epoch ${epoch}\n${trainers[rank]!.describe()}`,
        );
        return line;
      });
      for (const [rank, line] of lines.entries()) {
        assert.equal(line.epochs, EPOCHS, `rank ${rank}`);
        assert.equal(line.size, dataset.samples, `rank ${rank}: dataset size`);
        assert.equal(line.selected, p.selectedCount, `rank ${rank}: epoch ${epoch} selected = the plan's`);
        assert.ok(Number.isFinite(line.loss), `rank ${rank}: loss ${line.loss}`);
        const samplesPerRank = Math.ceil(p.selectedCount / trainers.length);
        // The manifest leaves --batch-size at the CLI's default.
        const batchSize = Number(
          flagValue(trainerPods[rank]!.args, '--batch-size') ?? TRAIN_DEFAULTS.batchSize,
        );
        assert.equal(
          line.steps,
          Math.ceil(samplesPerRank / batchSize),
          `rank ${rank}: steps of epoch ${epoch}`,
        );
      }
      assert.ok(p.selectedCount > 0 && p.selectedCount < dataset.samples, `epoch ${epoch} prunes`);
    }

    // Every example trained in either epoch was scored, reported through its
    // rank's loader and committed at the scorer.
    const stats = await cluster.exec(scorerPod, [
      'sadp',
      'scorer',
      'stats',
      '--address',
      flagValue(create, '--address')!,
      '--job',
      jobId,
      '--epoch',
      String(EPOCHS - 1),
    ]);
    assert.equal(stats.code, 0, stats.stderr);
    const s = json<{ scoredFraction: number; scoresReceived: number }>(stats.stdout, 'stats');
    const trained = new Set(plans.flatMap((p) => p.ids));
    assert.equal(
      Math.round(s.scoredFraction * dataset.samples),
      trained.size,
      'scored examples = those trained',
    );
    assert.ok(
      s.scoresReceived >= plans.reduce((n, p) => n + p.selectedCount, 0),
      `scores received ${s.scoresReceived}`,
    );

    await stopsGracefully(scorer);
    await stopsGracefully(s3);

    // A read-only root filesystem in the cluster: nothing may be written outside the volumes.
    for (const pod of cluster.pods)
      assert.deepEqual(cluster.rootWrites(pod), [], `${pod.name} wrote to its working directory`);
  },
);
