import type { Logger } from 'pino';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import { RedisBroker } from './broker/redis-broker.ts';
import type { Clock } from './clock.ts';
import { ConfigError, type Config } from './config.ts';
import type { Executor } from './executor/executor.ts';
import { PiscinaExecutor } from './executor/piscina-executor.ts';
import type { TaskStore } from './store/task-store.ts';
import { MemoryTaskStore } from './store/memory-task-store.ts';
import { RedisTaskStore } from './store/redis-task-store.ts';
import { connectRedis, createRedisConnection } from './redis/connection.ts';

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
 * How long a task's event log may outlive its retention if no instance evicts it (every
 * instance gone for good): the log then expires by itself.
 */
const ORPHAN_GRACE_MS = 60 * 60 * 1000;

/** Longest time between two sweeps of the shared store for ended tasks due for eviction. */
const SHARED_SWEEP_MAX_MS = 30_000;

/**
 * The one place that picks implementations. Without REDIS_URL, everything in this process
 * (records and event logs in memory); with it, records and event logs in Redis, shared by
 * every instance with the same REDIS_URL and REDIS_PREFIX. Tasks run on this process's
 * worker threads.
 */
export async function createBackends(config: Config, options: BackendOptions): Promise<Backends> {
  const executor = createExecutor(config, options);
  if (config.redisUrl === undefined) {
    return {
      store: new MemoryTaskStore(),
      broker: new MemoryBroker({ progressHistory: config.progressHistory, globalHistory: config.eventHistory }),
      executor,
      reachable: () => true,
    };
  }
  try {
    return { ...(await createRedisBackends(config.redisUrl, config, options.logger)), executor };
  } catch (error) {
    await executor.close();
    throw error;
  }
}

function createExecutor(config: Config, { workerUrl, taskModules, logger, clock }: BackendOptions): Executor {
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

/** The Redis store and broker, each on its own connection; refuses to start if Redis does not answer. */
async function createRedisBackends(url: string, config: Config, logger: Logger) {
  const prefix = config.redisPrefix;
  const connect = (role: string) => createRedisConnection(url, { connectionName: `taskstream:${prefix}:${role}` }, logger);
  const connections = [connect('store'), connect('broker')] as const;
  try {
    await Promise.all(connections.map(connectRedis));
  } catch (error) {
    for (const redis of connections) redis.disconnect();
    throw new ConfigError(`REDIS_URL=${JSON.stringify(redacted(url))}: cannot connect to Redis (${(error as Error).message})`);
  }
  const store = new RedisTaskStore({ redis: connections[0], prefix, ownConnection: true });
  const broker = new RedisBroker({
    redis: connections[1],
    prefix,
    progressHistory: config.progressHistory,
    globalHistory: config.eventHistory,
    orphanTtlMs: config.retentionMs + ORPHAN_GRACE_MS,
    logger,
    ownConnection: true,
  });
  try {
    await broker.start();
  } catch (error) {
    await Promise.all([broker.close(), store.close()]);
    throw new ConfigError(`REDIS_URL=${JSON.stringify(redacted(url))}: cannot read events from Redis (${(error as Error).message})`);
  }
  return {
    store,
    broker,
    reachable: () => connections.every((redis) => redis.status === 'ready') && broker.reading,
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
