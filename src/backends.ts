import type { Logger } from 'pino';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { Executor } from './executor/executor.ts';
import { PiscinaExecutor } from './executor/piscina-executor.ts';
import { globalHistoryBytes } from './retained-bytes.ts';
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
  /** Whether the backends can be reached now; /readyz answers 503 while they cannot. */
  reachable(): boolean;
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
 * The one place that picks implementations. Without REDIS_URL, everything in this process:
 * records and event logs in memory, tasks queued and run on this process's worker threads.
 * With it, Redis mode (src/redis/redis-backends.ts), loaded only then, so the embedded
 * service never loads BullMQ or ioredis.
 */
export async function createBackends(config: Config, options: BackendOptions): Promise<Backends> {
  if (config.redisUrl !== undefined) {
    const { createRedisBackends } = await import('./redis/redis-backends.ts');
    return createRedisBackends(config.redisUrl, config, options);
  }
  return {
    store: new MemoryTaskStore(),
    broker: new MemoryBroker({
      progressHistory: config.progressHistory,
      globalHistory: config.eventHistory,
      globalHistoryBytes: globalHistoryBytes(config.maxRetainedBytes),
    }),
    executor: createPiscinaExecutor(config, options),
    reachable: () => true,
  };
}

function createPiscinaExecutor(config: Config, { workerUrl, taskModules, logger, clock }: BackendOptions): Executor {
  return new PiscinaExecutor({
    workerUrl,
    taskModules,
    maxWorkers: config.maxWorkers,
    maxQueue: config.maxQueue,
    cancelGraceMs: config.cancelGraceMs,
    workerMaxHeapMb: config.workerMaxHeapMb,
    logger,
    ...(clock ? { clock } : {}),
  });
}
