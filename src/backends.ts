import type { Logger } from 'pino';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import type { Clock } from './clock.ts';
import { ConfigError, type Config } from './config.ts';
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
 * With it, Redis mode (see createRedisBackends).
 */
export async function createBackends(config: Config, options: BackendOptions): Promise<Backends> {
  if (config.redisUrl !== undefined) {
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

/**
 * How long a task's event log may outlive its retention if no instance evicts it (every
 * instance gone for good): the log then expires by itself.
 */
const ORPHAN_GRACE_MS = 60 * 60 * 1000;

/** Longest time between two sweeps of the shared store for ended tasks due for eviction. */
const SHARED_SWEEP_MAX_MS = 30_000;

/**
 * Redis mode: records and event logs in Redis, tasks in one BullMQ queue, all shared by
 * every instance with the same REDIS_URL and REDIS_PREFIX; each instance runs the jobs it
 * takes on its own worker threads. Refuses to start if Redis does not answer.
 */
async function createRedisBackends(url: string, config: Config, options: BackendOptions): Promise<Backends> {
  // Loaded only in Redis mode: the embedded service never loads BullMQ or ioredis.
  const [{ connectRedis, createRedisConnection }, { RedisTaskStore }, { RedisBroker }, { BullmqExecutor }] = await Promise.all([
    import('./redis/connection.ts'),
    import('./store/redis-task-store.ts'),
    import('./broker/redis-broker.ts'),
    import('./executor/bullmq-executor.ts'),
  ]).catch((error: unknown) => {
    // bullmq and ioredis are optional dependencies: an install may have left them out.
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /bullmq|ioredis/.test(String(error))) {
      throw new ConfigError('REDIS_URL is set, but Redis mode needs the bullmq and ioredis packages: npm install bullmq@6.7 ioredis@6.0');
    }
    throw error;
  });
  const { logger } = options;
  const prefix = config.redisPrefix;
  const connect = (role: string) => createRedisConnection(url, { connectionName: `taskstream:${prefix}:${role}` }, logger);
  const connections = [connect('store'), connect('broker')] as const;
  const refuse = (what: string, error: unknown) =>
    new ConfigError(`REDIS_URL=${JSON.stringify(redacted(url))}: ${what} (${(error as Error).message})`);
  try {
    await Promise.all(connections.map(connectRedis));
  } catch (error) {
    for (const redis of connections) redis.disconnect();
    throw refuse('cannot connect to Redis', error);
  }
  // ioredis carries on in database 0 when the URL's database does not exist: refuse instead.
  const database = Number(new URL(url).pathname.slice(1) || 0);
  const reply = await connections[0].call('CLIENT', 'INFO').catch(() => undefined);
  const selected = /\bdb=(\d+)/.exec(String(reply ?? ''))?.[1];
  if (selected !== undefined && Number(selected) !== database) {
    for (const redis of connections) redis.disconnect();
    throw new ConfigError(`REDIS_URL=${JSON.stringify(redacted(url))}: database ${database} does not exist on this Redis`);
  }
  const store = new RedisTaskStore({ redis: connections[0], prefix, ownConnection: true });
  const broker = new RedisBroker({
    redis: connections[1],
    prefix,
    progressHistory: config.progressHistory,
    globalHistory: config.eventHistory,
    globalHistoryBytes: globalHistoryBytes(config.maxRetainedBytes),
    orphanTtlMs: config.retentionMs + ORPHAN_GRACE_MS,
    logger,
    ownConnection: true,
  });
  try {
    await broker.start();
  } catch (error) {
    await Promise.all([broker.close(), store.close()]);
    throw refuse('cannot read events from Redis', error);
  }
  let executor: Awaited<ReturnType<typeof BullmqExecutor.start>>;
  try {
    executor = await BullmqExecutor.start({
      redisUrl: url,
      prefix,
      workerUrl: options.workerUrl,
      taskModules: options.taskModules,
      maxWorkers: config.maxWorkers,
      maxQueue: config.maxQueue,
      cancelGraceMs: config.cancelGraceMs,
      workerMaxHeapMb: config.workerMaxHeapMb,
      workerLostAfterMs: config.workerLostAfterMs,
      logger,
    });
  } catch (error) {
    await Promise.all([broker.close(), store.close()]);
    throw refuse('cannot start the task queue', error);
  }
  return {
    store,
    broker,
    executor,
    reachable: () => connections.every((redis) => redis.status === 'ready') && broker.reading && executor.reachable,
    // Tasks that other instances (or an earlier run) ended are evicted by whichever sweeps first.
    reaperSweepMs: Math.min(Math.max(config.retentionMs, 1000), SHARED_SWEEP_MAX_MS),
  };
}

/** A URL fit for a log or an error message: its password hidden. */
function redacted(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}
