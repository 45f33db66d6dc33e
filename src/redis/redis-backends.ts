import type { Backends, BackendOptions } from '../backends.ts';
import { RedisBroker } from '../broker/redis-broker.ts';
import { ConfigError, type Config } from '../config.ts';
import { BullmqExecutor } from '../executor/bullmq-executor.ts';
import { globalHistoryBytes } from '../retained-bytes.ts';
import { RedisTaskStore } from '../store/redis-task-store.ts';
import { connectRedis, createRedisConnection } from './connection.ts';

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
export async function createRedisBackends(url: string, config: Config, options: BackendOptions): Promise<Backends> {
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
  let executor: BullmqExecutor;
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
