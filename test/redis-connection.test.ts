import { afterEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { AppError } from '../src/errors.ts';
import { call, connectRedis, createRedisConnection } from '../src/redis/connection.ts';
import { openRedis, RedisProxy } from './helpers/redis.ts';
import { until } from './helpers/timeout.ts';

describe('a Redis connection of the service', () => {
  const opened: { close(): unknown }[] = [];
  afterEach(async () => {
    for (const item of opened.splice(0).reverse()) await item.close();
  });
  const track = (redis: Redis) => {
    opened.push({ close: () => redis.disconnect() });
    return redis;
  };

  it('fails a command fast with backend_unavailable while Redis is away, and works again once it is back', async () => {
    const proxy = await RedisProxy.start();
    opened.push(proxy);
    const redis = track(await openRedis(proxy.url));
    expect(await call(redis.ping())).toBe('PONG');

    await proxy.cut();
    const started = performance.now();
    const failure = await call(redis.ping()).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(AppError);
    expect(failure).toMatchObject({ code: 'backend_unavailable', status: 503 });
    expect((failure as AppError).retryAfterSeconds).toBeGreaterThan(0);
    expect(performance.now() - started, 'ms until the command failed').toBeLessThan(3000);

    await proxy.restore();
    await until(() => redis.status === 'ready', 'the connection to reconnect by itself');
    expect(await call(redis.ping())).toBe('PONG');
  });

  it('answers backend_unavailable for a command that gets no reply', async () => {
    const redis = track(await openRedis());
    const blocked = track(await openRedis());
    // CLIENT PAUSE would stop the shared server for everyone: block one connection instead.
    const failure = await call(blocked.blpop(`taskstream-never-${process.pid}`, 0)).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'backend_unavailable' });
    expect(await call(redis.ping())).toBe('PONG');
  });

  it('refuses to start against a Redis that does not answer, saying why', async () => {
    const proxy = await RedisProxy.start();
    await proxy.cut();
    const redis = createRedisConnection(proxy.url);
    await expect(connectRedis(redis)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('keeps real command errors as they are', async () => {
    const redis = track(await openRedis());
    const failure = await call(redis.call('NO-SUCH-COMMAND')).catch((error: unknown) => error);
    expect(failure).not.toBeInstanceOf(AppError);
    expect(String(failure)).toMatch(/unknown command/i);
  });
});
