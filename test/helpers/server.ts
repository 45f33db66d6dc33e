import { pino, type Logger } from 'pino';
import { ConfigSchema, type Config } from '../../src/config.ts';
import type { Clock } from '../../src/reaper.ts';
import { startTaskstream, type Taskstream } from '../../src/server.ts';
import { builtInTaskModules } from '../../workers/tasks/index.ts';
import { deleteKeys, openRedis, TEST_REDIS_URL, testPrefix } from './redis.ts';

/** Test-only task types (see test/fixtures). */
export const fixtureModules: URL[] = [
  'block',
  'spin',
  'ignore-cancel',
  'throws',
  'exits',
  'exhausts-heap',
  'bad-result',
  'flood',
  'gate',
  'flaky',
  'stall',
].map((name) => new URL(`../fixtures/${name}.ts`, import.meta.url));

export interface TestServer extends Taskstream {
  /** Where it keeps its tasks and events. */
  readonly mode: ServiceMode;
  /** fetch against the server: `api('/api/tasks', init)`. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** POST /api/tasks with a JSON body; returns the parsed snapshot (asserting 201). */
  create(body: unknown): Promise<any>;
}

/**
 * Where a test service keeps its tasks and events: in memory (the default service), or in
 * the test Redis under a key prefix of its own (Redis mode, one instance).
 */
export type ServiceMode = 'memory' | 'redis';
export const SERVICE_MODES: readonly ServiceMode[] = ['memory', 'redis'];

export interface TestServerOptions {
  clock?: Clock;
  logger?: Logger;
  mode?: ServiceMode;
}

/**
 * A real service on 127.0.0.1, port 0, with real worker threads: built-in and fixture task
 * types. Close it in afterEach (or with `await using`); in Redis mode, closing also deletes
 * every key it wrote.
 */
export async function startTestServer(env: Record<string, string> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const mode = options.mode ?? (process.env.TASKSTREAM_TEST_MODE as ServiceMode | undefined) ?? 'memory';
  const redisPrefix = mode === 'redis' ? testPrefix('http') : undefined;
  const config: Config = ConfigSchema.parse({
    PORT: '0',
    HOST: '127.0.0.1',
    MAX_WORKERS: '2',
    LOG_LEVEL: 'silent',
    ...(redisPrefix === undefined ? {} : { REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: redisPrefix }),
    ...env,
  });
  const taskstream = await startTaskstream(config, {
    taskModules: [...builtInTaskModules, ...fixtureModules],
    logger: options.logger ?? pino({ level: config.logLevel }),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const api = (path: string, init?: RequestInit) => fetch(`${taskstream.url}${path}`, init);
  const create = async (body: unknown) => {
    const response = await api('/api/tasks', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await response.json();
    if (response.status !== 201) throw new Error(`create answered ${response.status}: ${JSON.stringify(json)}`);
    return json;
  };
  if (redisPrefix !== undefined) {
    // Proof that this service really runs on Redis: its connections are named after the prefix.
    const redis = await openRedis(config.redisUrl);
    const clients = String(await redis.client('LIST'));
    redis.disconnect();
    if (!clients.includes(`name=taskstream:${config.redisPrefix}:`)) {
      await taskstream.close();
      throw new Error(`REDIS_URL is set but the service opened no Redis connection under ${config.redisPrefix}`);
    }
    const close = taskstream.close;
    let closing: Promise<void> | undefined;
    taskstream.close = () =>
      (closing ??= (async () => {
        await close();
        const redis = await openRedis();
        // Only a prefix of its own: a test that shares one between servers cleans it itself.
        if (config.redisPrefix === redisPrefix) await deleteKeys(redis, redisPrefix);
        redis.disconnect();
      })());
  }
  return Object.assign(taskstream, { api, create, mode });
}
