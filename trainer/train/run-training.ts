// The training loop behind `sadp train`: one rank of a data-parallel job
// trains a spiking network on the batches the loader streams, minimising the
// importance-weighted loss, and acknowledges every batch with the
// spike-aware scores and unweighted losses of its samples. Checkpoints hold
// the weights, the optimizer and the stream position, so a killed trainer
// resumes at its cursor.
import * as tf from '@tensorflow/tfjs';
import { SadpError, Status, errorMessage } from '../../common/errors.js';
import { selectBackend, type BackendSelection } from '../backend.js';
import {
  createLoaderClient,
  decodeImageBatch,
  LoaderCallError,
  type EpochInfo,
  type EpochStream,
  type LoaderClient,
} from '../client/index.js';
import {
  createSpikingCnn,
  createSpikingMlp,
  decodeWeights,
  encodeWeights,
  type NamedWeights,
  type SpikingModel,
} from '../snn/index.js';
import {
  checkCompatible,
  checkpointPath,
  fromPendingJson,
  readCheckpoint,
  toPendingJson,
  writeCheckpoint,
  type CheckpointMeta,
  type EpochAccumulator,
} from './checkpoint.js';
import { loadEvalSet, type EvalSet } from './eval-data.js';
import { CosineSchedule, estimateTotalSteps, type EpochShape } from './lr-schedule.js';
import { resolveTrainOptions, type ResolvedTrainOptions, type TrainOptions } from './options.js';

export interface EpochSummary {
  epoch: number;
  epochs: number;
  /** Batches of this rank in the epoch (EpochInfo.steps) and samples trained. */
  steps: number;
  samples: number;
  /** Importance-weighted mean training loss (what the steps minimised). */
  loss: number;
  /** Unweighted mean training loss. */
  unweightedLoss: number;
  /** On the test split, when configured. */
  testAccuracy: number | undefined;
  testLoss: number | undefined;
  /** Examples the plan selected, of datasetSize. */
  selected: number;
  datasetSize: number;
  /** Realized pruning ratio 1 - selected / N, and the schedule's r_k. */
  pruneRatio: number;
  targetPruneRatio: number;
  /** Importance weights of this rank's non-padded samples. */
  meanWeight: number;
  maxWeight: number;
  /** Mean fraction of LIF neuron-steps that fired. */
  spikeRate: number;
  /** Training throughput of this process in the epoch (excludes evaluation). */
  samplesPerSecond: number;
  trainSeconds: number;
  /** Bytes of this epoch's selected samples (what the plan selects, all ranks), and the running total. */
  selectedBytes: number;
  selectedBytesTotal: number;
  /** What full-data epochs would have read so far. */
  datasetBytesTotal: number;
  /**
   * Bytes the loader this rank talks to actually received from storage for
   * the epoch, for every rank it served (retries and merged gaps included),
   * asked with DescribeEpoch when the rank finished; undefined when the
   * loader did not answer. Other loader replicas' reads are not in it.
   */
  loaderBytesReceived: number | undefined;
  /** Learning rate of the epoch's last step; optimizer steps so far; the run's estimated total. */
  lr: number;
  step: number;
  totalStepsEstimate: number;
  /** Cursor the epoch resumed at (0 for a fresh epoch). */
  resumedAt: number;
  /** Streams reopened (reconnects) during the epoch. */
  reopens: number;
}

export interface BatchProgress {
  epoch: number;
  /** Batches done in the epoch (resumed ones included) of `steps`. */
  done: number;
  steps: number;
  loss: number;
  lr: number;
  samplesPerSecond: number;
  /** Remaining batches at this process's batch rate in the epoch so far. */
  etaSeconds: number;
}

export interface TrainHooks {
  onBackend?(selection: BackendSelection): void;
  onResume?(meta: Readonly<CheckpointMeta>, path: string): void;
  onEpochStart?(start: { epoch: number; epochs: number; info: EpochInfo; cursor: number }): void;
  onBatch?(progress: BatchProgress): void;
  onEpoch?(summary: EpochSummary): void;
  onCheckpoint?(saved: { path: string; epoch: number; cursor: number }): void;
}

function freshAccumulator(): EpochAccumulator {
  return {
    batches: 0,
    samples: 0,
    weightedLossSum: 0,
    unweightedLossSum: 0,
    weightSum: 0,
    weightMax: 0,
    weightCount: 0,
    spikeRateSum: 0,
  };
}

function modelDescriptor(o: ResolvedTrainOptions): string {
  const n = o.network;
  const shape =
    o.model === 'mlp'
      ? `hidden=${(n.hidden ?? [256]).join('x')}`
      : `channels=${(n.channels ?? [16, 32]).join('x')}`;
  return `${o.model} ${shape} T=${n.timeSteps ?? 4} classes=${o.image.classes}`;
}

function createModel(o: ResolvedTrainOptions): SpikingModel {
  const { width, height, channels, classes } = o.image;
  const common = { ...o.network, seed: o.network.seed ?? o.seed, classes };
  return o.model === 'mlp'
    ? createSpikingMlp({ ...common, inputSize: width * height * channels })
    : createSpikingCnn({ ...common, inputShape: [height, width, channels] });
}

/** TF.js has no LR scheduler; its optimizers read `learningRate` on every step. */
function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { learningRate?: unknown };
  if (typeof o.learningRate !== 'number') {
    throw new SadpError('SADP_TRAIN_LR', 'this TF.js optimizer has no numeric learningRate to schedule', {
      status: Status.INTERNAL,
    });
  }
  o.learningRate = lr;
}

async function saveOptimizer(optimizer: tf.Optimizer): Promise<Uint8Array> {
  const named = await optimizer.getWeights();
  const out: NamedWeights = {};
  for (const { name, tensor } of named) {
    out[name] = { shape: [...tensor.shape], values: Float32Array.from(await tensor.data()) };
  }
  // The first entry is a fresh scalar of the iteration count; the rest are the optimizer's own variables.
  named[0]?.tensor.dispose();
  return encodeWeights(out);
}

async function loadOptimizer(optimizer: tf.Optimizer, bytes: Uint8Array): Promise<void> {
  const named = Object.entries(decodeWeights(bytes)).map(([name, w]) => ({
    name,
    tensor: tf.tensor(w.values, w.shape, name === 'iter' ? 'int32' : 'float32'),
  }));
  try {
    await optimizer.setWeights(named);
  } finally {
    tf.dispose(named.map((n) => n.tensor));
  }
}

/** K of the job, from the loader's description of epoch 0 (EpochInfo.epochs). */
async function jobEpochs(
  client: LoaderClient,
  o: { job: string; worldSize: number; batchSize: number; signal?: AbortSignal },
): Promise<number> {
  const info = await client.epochInfo({
    job: o.job,
    epoch: 0,
    worldSize: o.worldSize,
    batchSize: o.batchSize,
    signal: o.signal,
  });
  if (info.epochs > 0) return info.epochs;
  throw new SadpError(
    'SADP_TRAIN_EPOCHS_UNKNOWN',
    `the loader at ${client.address} did not say how many epochs job ${o.job} has; pass epochs (--epochs)`,
    { status: Status.FAILED_PRECONDITION },
  );
}

interface RunState {
  epoch: number;
  cursor: number;
  planDigest: string;
  resend: CheckpointMeta['pendingAcks'];
  step: number;
  history: EpochShape[];
  bytesFetched: number;
  datasetBytes: number;
  acc: EpochAccumulator;
}

export async function runTraining(options: TrainOptions, hooks: TrainHooks = {}): Promise<EpochSummary[]> {
  const o = resolveTrainOptions(options);
  // What the loader really read for an epoch; a figure to report, so a
  // failure to get it leaves it unknown rather than failing the run.
  const loaderBytesReceived = async (epoch: number): Promise<number | undefined> => {
    try {
      const info = await client.epochInfo({
        job: o.job,
        epoch,
        worldSize: o.worldSize,
        batchSize: o.batchSize,
        signal: options.signal,
      });
      return info.storageBytesReceived;
    } catch {
      return undefined;
    }
  };
  const signal = options.signal;
  const selection = await selectBackend(o.backend);
  hooks.onBackend?.(selection);
  const client = createLoaderClient({
    ...options.client,
    address: o.loader,
    token: options.token,
    tls: options.tls,
  });
  const model = createModel(o);
  const optimizer = tf.train.adam(o.lr);
  const descriptor = modelDescriptor(o);
  let stream: EpochStream | undefined;
  const state: RunState = {
    epoch: 0,
    cursor: 0,
    planDigest: '',
    resend: [],
    step: 0,
    history: [],
    bytesFetched: 0,
    datasetBytes: 0,
    acc: freshAccumulator(),
  };

  const save = async (
    epoch: number,
    cursor: number,
    committed: number,
    pending: CheckpointMeta['pendingAcks'],
  ): Promise<void> => {
    if (!o.checkpointDir) return;
    const meta: CheckpointMeta = {
      format: 'sadp-trainer-checkpoint',
      version: 1,
      job: o.job,
      rank: o.rank,
      worldSize: o.worldSize,
      batchSize: o.batchSize,
      model: descriptor,
      epoch,
      cursor,
      committedThrough: committed,
      planDigest: cursor > 0 ? state.planDigest : '',
      step: state.step,
      history: state.history,
      bytesFetched: state.bytesFetched,
      datasetBytes: state.datasetBytes,
      accumulator: cursor > 0 ? state.acc : freshAccumulator(),
      pendingAcks: pending,
      savedAt: new Date().toISOString(),
    };
    const path = await writeCheckpoint(o.checkpointDir, {
      meta,
      model: model.saveWeights(),
      optimizer: await saveOptimizer(optimizer),
    });
    hooks.onCheckpoint?.({ path, epoch, cursor });
  };

  try {
    if (o.checkpointDir) {
      const ckpt = await readCheckpoint(o.checkpointDir, o.rank);
      if (ckpt) {
        const path = checkpointPath(o.checkpointDir, o.rank);
        checkCompatible(
          ckpt.meta,
          { job: o.job, worldSize: o.worldSize, batchSize: o.batchSize, model: descriptor },
          path,
        );
        model.loadWeights(ckpt.model);
        await loadOptimizer(optimizer, ckpt.optimizer);
        Object.assign(state, {
          epoch: ckpt.meta.epoch,
          cursor: ckpt.meta.cursor,
          planDigest: ckpt.meta.planDigest,
          resend: ckpt.meta.pendingAcks,
          step: ckpt.meta.step,
          history: ckpt.meta.history,
          bytesFetched: ckpt.meta.bytesFetched,
          datasetBytes: ckpt.meta.datasetBytes,
          acc: ckpt.meta.accumulator,
        });
        hooks.onResume?.(ckpt.meta, path);
      }
    }
    const epochs =
      o.epochs ??
      (await jobEpochs(client, { job: o.job, worldSize: o.worldSize, batchSize: o.batchSize, signal }));
    const evalSet: EvalSet | undefined = o.eval
      ? await loadEvalSet(o.eval, o.image, o.evalLimit, signal)
      : undefined;
    const schedule = new CosineSchedule(o.lr, o.minLr);
    const { width, height, channels } = o.image;
    const pixels = width * height * channels;
    const into = { inputs: new Float32Array(o.batchSize * pixels), labels: new Int32Array(o.batchSize) };
    const summaries: EpochSummary[] = [];
    let lr = o.lr;

    for (; state.epoch < epochs; state.epoch++) {
      const epoch = state.epoch;
      const resumedAt = state.cursor;
      stream = client.epoch({
        job: o.job,
        epoch,
        rank: o.rank,
        worldSize: o.worldSize,
        batchSize: o.batchSize,
        cursor: state.cursor,
        maxUnackedBatches: options.maxUnackedBatches,
        resendAcks: fromPendingJson(state.resend),
        signal,
      });
      let info: EpochInfo | undefined;
      let trainMs = 0;
      let samplesNow = 0;
      let batchesNow = 0;
      let batchStart = performance.now();
      const begin = (i: EpochInfo): void => {
        info = i;
        if (resumedAt > 0 && state.planDigest && i.planDigest !== state.planDigest) {
          throw new SadpError(
            'SADP_CHECKPOINT_MISMATCH',
            `epoch ${epoch} of job ${o.job} has plan ${i.planDigest}, the checkpoint was taken on plan ` +
              `${state.planDigest}: its cursor ${resumedAt} does not apply to this plan`,
            { status: Status.FAILED_PRECONDITION },
          );
        }
        state.planDigest = i.planDigest;
        schedule.setTotal(
          estimateTotalSteps(epochs, { epoch, steps: i.steps, pruneRatio: i.pruneRatio }, state.history),
        );
        hooks.onEpochStart?.({ epoch, epochs, info: i, cursor: resumedAt });
      };

      for await (const batch of stream) {
        if (!info) begin(batch.info);
        const size = batch.size;
        const { inputs, labels } = decodeImageBatch(batch, { ...o.image, into });
        lr = schedule.rate(state.step);
        setLearningRate(optimizer, lr);
        const res = await model.trainStep(
          inputs.subarray(0, size * pixels),
          labels.subarray(0, size),
          batch.weights,
          optimizer,
        );
        state.step++;
        await batch.ack({ scores: res.scores, losses: res.losses });

        const acc = state.acc;
        acc.batches++;
        acc.samples += size;
        acc.weightedLossSum += res.loss * size;
        acc.spikeRateSum += res.spikeRate;
        for (let j = 0; j < size; j++) {
          acc.unweightedLossSum += res.losses[j]!;
          if (batch.padded[j]) continue;
          const w = batch.weights[j]!;
          acc.weightSum += w;
          acc.weightCount++;
          if (w > acc.weightMax) acc.weightMax = w;
        }
        const now = performance.now();
        trainMs += now - batchStart;
        batchStart = now;
        samplesNow += size;
        batchesNow++;
        hooks.onBatch?.({
          epoch,
          done: batch.index + 1,
          steps: batch.info.steps,
          loss: res.loss,
          lr,
          samplesPerSecond: trainMs > 0 ? (samplesNow * 1000) / trainMs : 0,
          etaSeconds: ((batch.info.steps - batch.index - 1) * trainMs) / batchesNow / 1000,
        });
        if ((batch.index + 1) % o.checkpointEveryBatches === 0 && batch.index + 1 < batch.info.steps) {
          await save(epoch, stream.cursor, stream.committedThrough, toPendingJson(stream.pendingAcks()));
          batchStart = performance.now(); // checkpoint time is not training time
        }
      }
      info ??= stream.info;
      if (!info) throw new SadpError('SADP_TRAIN_NO_INFO', `epoch ${epoch}: the loader sent no EpochInfo`);
      if (resumedAt === info.steps) begin(info); // resumed exactly at the end: nothing was streamed

      const evaluation = evalSet ? await model.evaluate(evalSet.inputs, evalSet.labels, 256) : undefined;
      state.bytesFetched += info.selectedBytes;
      state.datasetBytes += info.datasetBytes;
      state.history = [
        ...state.history.filter((h) => h.epoch !== epoch),
        { epoch, steps: info.steps, pruneRatio: info.pruneRatio },
      ];
      const acc = state.acc;
      const summary: EpochSummary = {
        epoch,
        epochs,
        steps: info.steps,
        samples: acc.samples,
        loss: acc.samples > 0 ? acc.weightedLossSum / acc.samples : 0,
        unweightedLoss: acc.samples > 0 ? acc.unweightedLossSum / acc.samples : 0,
        testAccuracy: evaluation?.accuracy,
        testLoss: evaluation?.loss,
        selected: info.selectedCount,
        datasetSize: info.datasetSize,
        pruneRatio: info.datasetSize > 0 ? 1 - info.selectedCount / info.datasetSize : 0,
        targetPruneRatio: info.pruneRatio,
        meanWeight: acc.weightCount > 0 ? acc.weightSum / acc.weightCount : 0,
        maxWeight: acc.weightMax,
        spikeRate: acc.batches > 0 ? acc.spikeRateSum / acc.batches : 0,
        samplesPerSecond: trainMs > 0 ? (samplesNow * 1000) / trainMs : 0,
        trainSeconds: trainMs / 1000,
        selectedBytes: info.selectedBytes,
        selectedBytesTotal: state.bytesFetched,
        loaderBytesReceived: await loaderBytesReceived(epoch),
        datasetBytesTotal: state.datasetBytes,
        lr,
        step: state.step,
        totalStepsEstimate: schedule.totalSteps,
        resumedAt,
        reopens: stream.stats.reopens,
      };
      // The epoch is complete and its scores committed: the next start is epoch + 1 at cursor 0.
      state.cursor = 0;
      state.resend = [];
      state.acc = freshAccumulator();
      await save(epoch + 1, 0, -1, []);
      stream = undefined;
      summaries.push(summary);
      hooks.onEpoch?.(summary);
    }
    return summaries;
  } catch (err) {
    // Interrupted mid-epoch (aborted, or the loader gone for good): the model
    // matches the stream's cursor, so keep that position for a restart.
    if ((signal?.aborted || err instanceof LoaderCallError) && stream && o.checkpointDir) {
      try {
        await save(state.epoch, stream.cursor, stream.committedThrough, toPendingJson(stream.pendingAcks()));
      } catch (saveErr) {
        throw new SadpError(
          'SADP_CHECKPOINT_WRITE',
          `training was interrupted (${errorMessage(err)}) and the checkpoint could not be written: ${errorMessage(saveErr)}`,
          { status: Status.UNAVAILABLE, cause: saveErr },
        );
      }
    }
    throw err;
  } finally {
    client.close();
    model.dispose();
    optimizer.dispose();
  }
}
