import type { Logger } from 'pino';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { Executor } from './executor/executor.ts';
import { PiscinaExecutor } from './executor/piscina-executor.ts';
import type { TaskStore } from './store/task-store.ts';
import { MemoryTaskStore } from './store/memory-task-store.ts';

/** The three seams the service runs on. */
export interface Backends {
  store: TaskStore;
  broker: Broker;
  executor: Executor;
  /**
   * How often the reaper sweeps the store for expired tasks that another process ended:
   * set when the store is shared. Alone, each task is evicted on time by the process that
   * ended it, and no sweep is needed.
   */
  reaperSweepMs?: number;
}

export interface BackendOptions {
  /** The worker entry module (workers/entry.ts, or its compiled .js). */
  workerUrl: URL;
  /** Task type → module URL, handed to every worker. */
  taskModules: Record<string, string>;
  logger: Logger;
  clock?: Clock | undefined;
}

/**
 * The one place that picks implementations. Today: everything in this process (records and
 * event logs in memory, tasks on this process's worker threads).
 */
export async function createBackends(config: Config, { workerUrl, taskModules, logger, clock }: BackendOptions): Promise<Backends> {
  return {
    store: new MemoryTaskStore(),
    broker: new MemoryBroker({ progressHistory: config.progressHistory, globalHistory: config.eventHistory }),
    executor: new PiscinaExecutor({
      workerUrl,
      taskModules,
      maxWorkers: config.maxWorkers,
      maxQueue: config.maxQueue,
      cancelGraceMs: config.cancelGraceMs,
      workerMaxHeapMb: config.workerMaxHeapMb,
      logger,
      ...(clock ? { clock } : {}),
    }),
  };
}
