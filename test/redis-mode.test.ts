import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.ts';
import { expectProblem, Harness, hasType, json, post, touch } from './helpers/harness.ts';
import { deleteKeys, keysOf, openRedis, RedisProxy, TEST_REDIS_URL, testPrefix } from './helpers/redis.ts';
import { startTestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

const harness = new Harness();
const proxies: RedisProxy[] = [];
afterEach(async () => {
  await harness.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
});

describe('Redis mode, one instance', () => {
  it('keeps tasks and their events in Redis under REDIS_PREFIX', async () => {
    const prefix = testPrefix('keys');
    const redis = await openRedis();
    try {
      const server = await harness.serve({ REDIS_PREFIX: prefix }, { mode: 'redis' });
      const task = await server.create({ type: 'sample', input: { steps: 2, step_ms: 1 } });
      const client = await harness.connect(server, `/api/tasks/${task.task_id}/events`);
      await withTimeout(client.ended, 'the task stream to end');
      const keys = await keysOf(redis, prefix);
      expect(keys).toContain(`${prefix}:task:${task.task_id}`);
      expect(keys).toContain(`${prefix}:events:${task.task_id}`);
      expect(client.events.map((event) => event.event)).toEqual([
        'task_started',
        'progress_update',
        'progress_update',
        'task_completed',
      ]);
    } finally {
      await harness.close();
      await deleteKeys(redis, prefix);
      redis.disconnect();
    }
  });

  it('evicts a task another instance ended once its retention is over, leaving none of its keys', async () => {
    const prefix = testPrefix('evict');
    const redis = await openRedis();
    try {
      const retentionMs = 4000;
      const env = { REDIS_PREFIX: prefix, RETENTION_MS: String(retentionMs) };
      const ending = await harness.serve(env, { mode: 'redis' });
      const sweeping = await harness.serve(env, { mode: 'redis' });
      const watch = await harness.connect(sweeping, '/api/events');
      // The service-wide keys exist from the first task on; per-task keys must all go.
      const first = await ending.create({ type: 'sample', input: { steps: 1, step_ms: 1 } });
      await watch.waitFor((events) => events.some((e) => e.event === 'task_removed' && e.json?.task_id === first.task_id), 'the first eviction', 15_000);
      const baseline = await keysOf(redis, prefix);

      const createdAt = Date.now();
      const tasks = await Promise.all(
        Array.from({ length: 5 }, () => ending.create({ type: 'sample', input: { steps: 3, step_ms: 1 } })),
      );
      const ids = tasks.map((task) => task.task_id as string);
      await watch.waitFor(
        (events) => ids.every((id) => events.some((e) => e.event === 'task_completed' && e.json?.task_id === id)),
        'every task to complete',
        15_000,
      );
      expect((await keysOf(redis, prefix)).length).toBeGreaterThanOrEqual(baseline.length + 10);
      // The instance that ran them goes away; the other one evicts them when they are due.
      await ending.close();
      expect(Date.now() - createdAt, 'ms before the first instance went away').toBeLessThan(retentionMs);
      const removed = await watch.waitFor(
        (events) => ids.every((id) => events.some((e) => e.event === 'task_removed' && e.json?.task_id === id)),
        'task_removed for every task',
        20_000,
      );
      expect(removed.filter((e) => e.event === 'task_removed' && ids.includes(e.json?.task_id)).map((e) => e.json?.data)).toEqual(
        ids.map(() => ({ reason: 'evicted' })),
      );
      for (const id of ids) await expectProblem(await sweeping.api(`/api/tasks/${id}`), 404, 'task_not_found');
      // Nothing of the tasks is left; the instance that went away also took its own keys.
      const left = await keysOf(redis, prefix);
      expect(left.filter((key) => !baseline.includes(key))).toEqual([]);
      expect(left.filter((key) => ids.some((id) => key.includes(id)))).toEqual([]);
    } finally {
      await harness.close();
      await deleteKeys(redis, prefix);
      redis.disconnect();
    }
  }, 60_000);

  it('refuses to start when Redis does not answer, naming REDIS_URL', async () => {
    const proxy = await RedisProxy.start();
    proxies.push(proxy);
    await proxy.cut();
    const failure = await startTestServer({ REDIS_URL: proxy.url }, { mode: 'redis' }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toContain('REDIS_URL=');
  });

  it('refuses to start when the database of REDIS_URL does not exist, rather than using database 0', async () => {
    const failure = await startTestServer({ REDIS_URL: `${TEST_REDIS_URL}/4000` }, { mode: 'redis' }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toContain('database 4000 does not exist');
  });

  it('answers 503 backend_unavailable while Redis is away, ends open streams, and carries on when it is back', async () => {
    const proxy = await RedisProxy.start();
    proxies.push(proxy);
    const server = await harness.serve({ REDIS_URL: proxy.url }, { mode: 'redis' });
    expect((await server.api('/readyz')).status).toBe(200);
    const dir = harness.dir();
    const task = await server.create({ type: 'gate', input: { dir } });
    const stream = await harness.connect(server, `/api/tasks/${task.task_id}/events`);
    // The gate reports its step 0 once started: after that, it only waits.
    await stream.waitFor(hasType('progress_update'), 'the accepted task to start and report');

    await proxy.cut();
    const refused = await post(server, '/api/tasks', { type: 'sample', input: { steps: 1 } });
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    await expectProblem(refused, 503, 'backend_unavailable');
    await expectProblem(await server.api(`/api/tasks/${task.task_id}`), 503, 'backend_unavailable');
    await until(async () => (await server.api('/readyz')).status === 503, '/readyz to turn 503');
    await expectProblem(await server.api('/readyz'), 503, 'backend_unavailable');
    await withTimeout(stream.ended, 'the open stream to end');

    await proxy.restore();
    await until(async () => (await server.api('/readyz')).status === 200, '/readyz to turn 200 again', 15_000);
    expect((await json(await server.api(`/api/tasks/${task.task_id}`))).task_id).toBe(task.task_id);
    // The task accepted before the outage is not lost: it runs on to its end.
    const resumed = await SseClient.connect(`${server.url}/api/tasks/${task.task_id}/events`, { 'last-event-id': stream.events.at(-1)!.id! });
    try {
      touch(dir, 'open');
      await withTimeout(resumed.ended, 'the accepted task to end');
      expect(resumed.events.map((event) => event.event)).toEqual(['task_completed']);
    } finally {
      resumed.close();
    }
    const later = await server.create({ type: 'sample', input: { steps: 1, step_ms: 1 } });
    const client = await SseClient.connect(`${server.url}/api/tasks/${later.task_id}/events`);
    try {
      await withTimeout(client.ended, 'a new task to run to its end');
      expect(client.events.at(-1)?.event).toBe('task_completed');
    } finally {
      client.close();
    }
  });
});
