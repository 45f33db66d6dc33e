import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { AppError, errors } from '../errors.ts';

/** How long a command may wait for its reply before the caller gets `backend_unavailable`. */
export const COMMAND_TIMEOUT_MS = 2000;

/**
 * A Redis connection for commands. While Redis is away, commands fail at once instead of
 * queueing (no offline queue), and a command with no reply fails after COMMAND_TIMEOUT_MS,
 * so no request waits forever; the connection keeps reconnecting in the background.
 */
export function createRedisConnection(url: string, options: RedisOptions = {}, logger?: Logger): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    // RESP2 replies have the same shape on every Redis this runs on.
    protocol: 2,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    ...options,
  });
  reportConnection(redis, logger);
  return redis;
}

/**
 * Logs a connection's loss once per outage and its return. Also the listener ioredis needs:
 * without one, it prints every failed reconnect attempt.
 */
export function reportConnection(redis: Redis, logger: Logger | undefined): void {
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    logger?.warn({ err: error, connection: redis.options.connectionName }, 'Redis unreachable; retrying');
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    logger?.info({ connection: redis.options.connectionName }, 'Redis reachable again');
  });
}

/** Connects, or throws with the reason (the connection keeps no retry loop running then). */
export async function connectRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  // connect() rejects with "Connection is closed."; the 'error' event has the reason.
  let reason: Error | undefined;
  const remember = (error: Error) => (reason ??= error);
  redis.on('error', remember);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw reason ?? error;
  } finally {
    redis.off('error', remember);
  }
}

/** Replies that mean "Redis cannot serve now", not "this command is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|READONLY|MASTERDOWN|BUSY|OOM|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

/**
 * Errors of a Redis call as the service sees them: connection loss, timeouts and a busy or
 * loading server become AppError `backend_unavailable` (503 with Retry-After); anything
 * else is a bug and stays as it is.
 */
export function toAppError(error: unknown): unknown {
  if (error instanceof AppError) return error;
  if (error instanceof Error && error.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(error.message)) return error;
  return errors.backendUnavailable(error);
}

/** Runs a Redis call, translating its failure with toAppError. */
export async function call<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    throw toAppError(error);
  }
}
