// Child process of the accuracy benchmark: selects the backend, loads the
// data once, then trains the runs its parent sends, one at a time, and
// exits when the parent closes the channel.
import { errorMessage, isSadpError } from '../../common/errors.js';
import { selectBackend } from '../../trainer/index.js';
import type { FromWorker, ToWorker } from './pool.js';
import { loadAccuracyData, runAccuracyRun, warmUp, type AccuracyData } from './run.js';
import type { AccuracySettings } from './settings.js';

function send(msg: FromWorker): void {
  process.send?.(msg);
}

let ready: Promise<{ settings: AccuracySettings; data: AccuracyData }> | undefined;

async function init(settings: AccuracySettings): Promise<{ settings: AccuracySettings; data: AccuracyData }> {
  const backend = await selectBackend(settings.backend);
  const data = await loadAccuracyData(settings);
  await warmUp(settings, data);
  send({ type: 'ready', backend });
  return { settings, data };
}

function report(err: unknown): void {
  send({ type: 'error', message: errorMessage(err), code: isSadpError(err) ? err.code : undefined });
}

process.on('message', (raw) => {
  const msg = raw as ToWorker;
  if (msg.type === 'init') {
    ready = init(msg.settings);
    ready.catch(report);
    return;
  }
  if (!ready) return report(new Error('run before init'));
  ready
    .then(({ settings, data }) =>
      runAccuracyRun(msg.spec, settings, data, {
        hooks: { onEpoch: ({ spec, record }) => send({ type: 'epoch', spec, record }) },
      }),
    )
    .then((result) => send({ type: 'result', result }), report);
});
process.on('disconnect', () => process.exit(0));
