import { randomBytes } from 'node:crypto';
import { createServer, Socket, type Server } from 'node:net';
import type { Redis } from 'ioredis';
import { connectRedis, createRedisConnection } from '../../src/redis/connection.ts';

/** The Redis the tests use: the machine's own (CI starts one when none answers). */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test run uses: tests share one Redis and touch only their keys. */
export const testPrefix = (name = 'test') => `taskstream-${name}-${process.pid}-${randomBytes(4).toString('hex')}`;

/** A connected command connection, as the service makes them. */
export async function openRedis(url = TEST_REDIS_URL): Promise<Redis> {
  const redis = createRedisConnection(url);
  await connectRedis(redis);
  return redis;
}

/** Every key under `prefix` (SCAN, never KEYS on a shared server). */
export async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys.sort();
}

/** Deletes this run's keys (SCAN + DEL), never anyone else's. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await keysOf(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
}

/**
 * A TCP proxy in front of Redis that a test can cut and restore: "Redis goes away" without
 * touching the shared server.
 */
export class RedisProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #target: URL;
  #port = 0;

  private constructor(target: string) {
    this.#target = new URL(target);
    this.#server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(Number(this.#target.port || 6379), this.#target.hostname);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  static async start(target = TEST_REDIS_URL): Promise<RedisProxy> {
    const proxy = new RedisProxy(target);
    await proxy.#listen(0);
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.#port}`;
  }

  /** Redis "goes away": open connections drop and new ones are refused. */
  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  /** Redis is back, on the same port. */
  async restore(): Promise<void> {
    await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    if (this.#server.listening) await this.cut();
  }

  #listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        this.#port = (this.#server.address() as { port: number }).port;
        resolve();
      });
    });
  }
}
