// Process lifecycle for long-running commands: the first SIGTERM/SIGINT starts
// a graceful shutdown bounded by a deadline, a second signal or the deadline
// forces exit. Shutdown steps run in reverse order of registration (last
// started, first stopped), like a stack of resources.
import type { Logger } from './logger.js';

type ShutdownStep = { name: string; close: (graceMs: number) => Promise<void> };

export interface Lifecycle {
  /** Registers a resource to close on shutdown. */
  add(step: ShutdownStep): void;
  /** Resolves when shutdown has finished (by signal or by `shutdown()`). */
  readonly done: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

export function createLifecycle(options: { graceMs: number; logger: Logger; exit?: boolean }): Lifecycle {
  const steps: ShutdownStep[] = [];
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let shutting: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    if (shutting) return shutting;
    options.logger.info({ reason, graceMs: options.graceMs }, 'shutting down');
    const force = setTimeout(() => {
      options.logger.error({ graceMs: options.graceMs }, 'graceful shutdown exceeded its deadline; exiting');
      if (options.exit !== false) process.exit(1);
    }, options.graceMs + 2_000);
    force.unref();
    shutting = (async () => {
      for (const step of [...steps].reverse()) {
        try {
          await step.close(options.graceMs);
        } catch (err) {
          options.logger.error({ err, step: step.name }, 'error while closing');
        }
      }
      clearTimeout(force);
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.off(sig, onSignal);
      resolveDone();
    })();
    return shutting;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (shutting) {
      options.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    void shutdown(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  return { add: (step) => steps.push(step), done, shutdown };
}
