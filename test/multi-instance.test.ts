import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectWellFormed, hasType, isTerminalEvent, JSON_HEADERS, ofType, TERMINAL_EVENTS, touch, type Problem } from './helpers/harness.ts';
import { spawnService, type ServiceProcess } from './helpers/process.ts';
import { deleteKeys, keysOf, openRedis, TEST_REDIS_URL, testPrefix } from './helpers/redis.ts';
import { SseClient, type SseEvent } from './helpers/sse.ts';
import { until } from './helpers/timeout.ts';

/**
 * Redis mode across real processes: two or three instances of the service (each its own
 * Node process, from source) on one Redis and prefix are one service.
 */

/** Short enough to keep the tests quick; the default (30 s) is checked in config.test.ts. */
const WORKER_LOST_AFTER_MS = 3000;
const TASK_MODULES = ['workers/tasks/sample.ts', ...['block', 'gate', 'ignore-cancel', 'spin'].map((name) => `test/fixtures/${name}.ts`)].join(',');

let redis: Redis;
let prefix: string;
let instances: ServiceProcess[] = [];
let clients: SseClient[] = [];
let dirs: string[] = [];

beforeAll(async () => {
  redis = await openRedis();
});

afterAll(() => {
  redis.disconnect();
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(
    instances.splice(0).map(async (instance) => {
      instance.child.kill('SIGKILL');
      await instance.exited;
    }),
  );
  await deleteKeys(redis, prefix);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function newPrefix(): string {
  prefix = testPrefix('multi');
  return prefix;
}

/** One more instance of the service on this test's Redis prefix. */
async function start(env: Record<string, string> = {}): Promise<ServiceProcess> {
  const instance = await spawnService('source', {
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    TASK_MODULES,
    MAX_WORKERS: '1',
    WORKER_LOST_AFTER_MS: String(WORKER_LOST_AFTER_MS),
    CANCEL_GRACE_MS: '300',
    LOG_LEVEL: 'info',
    ...env,
  });
  instances.push(instance);
  return instance;
}

const api = (instance: ServiceProcess, path: string, init?: RequestInit) => fetch(`${instance.url}${path}`, init);

async function create(instance: ServiceProcess, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<any> {
  const response = await api(instance, '/api/tasks', { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) });
  const text = await response.text();
  expect(response.status, text).toBe(201);
  return JSON.parse(text);
}

async function snapshot(instance: ServiceProcess, taskId: string): Promise<any> {
  const response = await api(instance, `/api/tasks/${taskId}`);
  expect(response.status).toBe(200);
  return response.json();
}

async function stats(instance: ServiceProcess): Promise<any> {
  const response = await api(instance, '/api/tasks/stats');
  expect(response.status).toBe(200);
  return response.json();
}

async function connect(instance: ServiceProcess, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await SseClient.connect(`${instance.url}${path}`, headers);
  clients.push(client);
  expect(client.response.status, path).toBe(200);
  return client;
}

const gateDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'taskstream-multi-'));
  dirs.push(dir);
  return dir;
};

const ended = (events: SseEvent[]) => events.some(isTerminalEvent);

describe('several instances on one Redis are one service', () => {
  it('a task created on one instance is read, listed, streamed and resumed on another with the same ids', async () => {
    newPrefix();
    const [a, b] = await Promise.all([start(), start()]);
    const dir = gateDir();
    const task = await create(a, { type: 'gate', input: { dir, steps: 3 }, labels: { team: 'x' } });

    expect((await snapshot(b, task.task_id)).task_id).toBe(task.task_id);
    const listed: any = await (await api(b, '/api/tasks?label=team:x')).json();
    expect(listed.tasks.map((t: any) => t.task_id)).toEqual([task.task_id]);

    // A client follows on A, drops after step 1, and resumes on B from its last id.
    const onA = await connect(a, `/api/tasks/${task.task_id}/events`);
    touch(dir, 'step-1');
    const before = await onA.waitFor((events) => events.some((e) => e.event === 'progress_update' && e.json?.data?.step === 1), 'step 1 on A');
    onA.close();
    const lastId = before.at(-1)!.id!;
    const onB = await connect(b, `/api/tasks/${task.task_id}/events`, { 'last-event-id': lastId });
    touch(dir, 'step-2');
    touch(dir, 'step-3');
    touch(dir, 'open');
    await onB.waitFor(ended, 'the end on B');
    await onB.ended;
    const all = [...before, ...onB.events];
    expectWellFormed(all, task.task_id);
    expect(all.map((event) => Number(event.id))).toEqual(all.map((_, index) => index + 1));
    expect(ofType(all, 'task_completed')).toHaveLength(1);

    // A third client reading the whole story on A sees the same ids as the two halves.
    const replay = await connect(a, `/api/tasks/${task.task_id}/events`);
    await replay.ended;
    expect(replay.events.map((event) => [event.id, event.event])).toEqual(all.map((event) => [event.id, event.event]));

    // After the end: 204 on either instance; an unknown task is 404 on both.
    const done = await fetch(`${b.url}/api/tasks/${task.task_id}/events`, { headers: { 'last-event-id': all.at(-1)!.id! } });
    expect(done.status).toBe(204);
    for (const instance of [a, b]) {
      const unknown = await api(instance, '/api/tasks/01890000-0000-7000-8000-000000000000/events');
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  }, 90_000);

  it('the multiplexed stream resumes on another instance with no gap and no duplicate', async () => {
    newPrefix();
    const [a, b] = await Promise.all([start(), start()]);
    const first = await connect(a, '/api/events');
    const tasks = [];
    for (let i = 0; i < 3; i++) tasks.push(await create(i % 2 === 0 ? a : b, { type: 'sample', input: { steps: 2, step_ms: 1 } }));
    const ids = tasks.map((task) => task.task_id);
    const onA = await first.waitFor(
      (events) => events.some((e) => e.event === 'task_completed' && e.json?.task_id === ids[0]),
      'the first task to complete on A',
    );
    first.close();
    const second = await connect(b, '/api/events', { 'last-event-id': onA.at(-1)!.id! });
    const onB = await second.waitFor(
      (events) => ids.every((id) => [...onA, ...events].some((e) => e.event === 'task_completed' && e.json?.task_id === id)),
      'every task to complete, seen on B',
    );
    const positions = [...onA, ...onB].map((event) => Number(event.id));
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
    expect(new Set(positions).size).toBe(positions.length);
    // No gap: every task's own events arrive once, in order, across the two connections.
    for (const id of ids) {
      const own = [...onA, ...onB].filter((event) => event.json?.task_id === id);
      expect(own.map((event) => event.event)).toEqual(['task_created', 'task_started', 'progress_update', 'progress_update', 'task_completed']);
    }
  }, 90_000);

  it('a cancel sent to any instance reaches the task where it runs: cooperative, or by ending its thread', async () => {
    newPrefix();
    // A alone takes the tasks; B joins only to cancel them.
    const a = await start({ MAX_WORKERS: '3' });
    const tasks = [
      await create(a, { type: 'block', input: {} }),
      await create(a, { type: 'spin', input: {} }),
      await create(a, { type: 'ignore_cancel', input: {} }),
    ];
    const streams = await Promise.all(tasks.map((task) => connect(a, `/api/tasks/${task.task_id}/events`)));
    await Promise.all(streams.map((stream) => stream.waitFor(hasType('task_started'), 'the task to start on A')));
    const b = await start();
    for (const task of tasks) {
      const response = await api(b, `/api/tasks/${task.task_id}/cancel`, { method: 'POST' });
      expect(response.status).toBe(202);
    }
    for (const stream of streams) {
      const events = await stream.waitFor(ended, 'the cancelled end');
      await stream.ended;
      expect(ofType(events, 'task_cancelled')).toHaveLength(1);
      expect(ofType(events, 'task_cancelled')[0]!.json.data.reason).toBe('requested');
      expect(events.filter((event) => TERMINAL_EVENTS.includes(event.event!))).toHaveLength(1);
    }
    // The task that ignores its signal lost its thread after the grace period: A still runs tasks.
    const after = await create(b, { type: 'sample', input: { steps: 1, step_ms: 1 } });
    const stream = await connect(b, `/api/tasks/${after.task_id}/events`);
    expect(ofType(await stream.waitFor(ended, 'a task after the cancels'), 'task_completed')).toHaveLength(1);
  }, 90_000);

  it('a queued task cancelled on another instance is removed from the shared queue and never starts', async () => {
    newPrefix();
    const [a, b] = await Promise.all([start(), start()]);
    const blockers = [await create(a, { type: 'block', input: {} }), await create(a, { type: 'block', input: {} })];
    await until(async () => (await stats(b)).workers.busy === 2, 'both instances busy', 15_000);
    const queued = await create(a, { type: 'sample', input: { steps: 1, step_ms: 1 } });
    expect((await stats(b)).queue.size).toBe(1);
    const watch = await connect(a, `/api/tasks/${queued.task_id}/events`);
    expect((await api(b, `/api/tasks/${queued.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
    await watch.waitFor(ended, 'the queued task to end');
    expect(watch.types()).toEqual(['task_cancelled']);
    expect((await stats(a)).queue.size).toBe(0);
    // Freeing the workers does not start it.
    for (const blocker of blockers) await api(b, `/api/tasks/${blocker.task_id}/cancel`, { method: 'POST' });
    await until(async () => (await stats(a)).workers.busy === 0, 'the workers to be free', 15_000);
    expect((await snapshot(b, queued.task_id)).started_at).toBeNull();
    expect((await snapshot(b, queued.task_id)).status).toBe('cancelled');
  }, 90_000);

  it('shares the queue limit, pause, stats and idempotency keys across instances', async () => {
    newPrefix();
    const [a, b] = await Promise.all([start({ MAX_QUEUE: '2' }), start({ MAX_QUEUE: '2' })]);
    const summed = await stats(b);
    expect(summed.workers.max).toBe(2);

    // Paused on A: B starts nothing either.
    expect((await api(a, '/api/queue/pause', { method: 'POST' })).status).toBe(200);
    expect((await stats(b)).paused).toBe(true);
    const queued = [await create(a, { type: 'sample', input: { steps: 1, step_ms: 1 } }), await create(b, { type: 'sample', input: { steps: 1, step_ms: 1 } })];
    const full = await api(b, '/api/tasks', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ type: 'sample', input: {} }) });
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await full.json()) as Problem).code).toBe('queue_full');
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const task of queued) expect((await snapshot(a, task.task_id)).status).toBe('queued');
    expect((await stats(a)).queue.size).toBe(2);

    // Resumed on B: both run.
    expect((await api(b, '/api/queue/resume', { method: 'POST' })).status).toBe(200);
    for (const task of queued) {
      const response = await api(a, `/api/tasks/${task.task_id}/wait?timeout_ms=15000`);
      expect(((await response.json()) as any).status).toBe('completed');
    }

    // The same Idempotency-Key sent to both instances at once creates one task.
    const body = JSON.stringify({ type: 'sample', input: { steps: 1, step_ms: 1 } });
    const headers = { ...JSON_HEADERS, 'idempotency-key': 'same-key' };
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => api(i % 2 === 0 ? a : b, '/api/tasks', { method: 'POST', headers, body })),
    );
    const created = await Promise.all(answers.map(async (response) => ({ status: response.status, task: (await response.json()) as any })));
    expect(created.filter((answer) => answer.status === 201)).toHaveLength(1);
    expect(created.filter((answer) => answer.status === 200)).toHaveLength(5);
    expect(new Set(created.map((answer) => answer.task.task_id)).size).toBe(1);
  }, 90_000);

  it('a stream token minted on one instance opens streams on another (shared STREAM_TOKEN_SECRET)', async () => {
    newPrefix();
    const env = { API_KEYS: 'alice:alice-key-0123456789', STREAM_TOKEN_SECRET: 'a-secret-shared-by-every-instance-000000' };
    const [a, b] = await Promise.all([start(env), start(env)]);
    const auth = { authorization: 'Bearer alice-key-0123456789' };
    const task = await create(a, { type: 'sample', input: { steps: 1, step_ms: 1 } }, auth);
    const minted = await api(a, '/api/stream-tokens', { method: 'POST', headers: { ...JSON_HEADERS, ...auth }, body: JSON.stringify({ task_ids: [task.task_id] }) });
    expect(minted.status).toBe(201);
    const { token } = (await minted.json()) as { token: string };
    expect((await api(b, `/api/events?task_id=${task.task_id}`)).status).toBe(401);
    const stream = await connect(b, `/api/events?task_id=${task.task_id}&token=${token}`);
    await stream.ended;
    expect(ofType(stream.events, 'task_completed')).toHaveLength(1);
    // The task's own stream_url carries a token that also works on the other instance.
    const followed = await connect(b, task.stream_url);
    await followed.ended;
    expect(ofType(followed.events, 'task_completed')).toHaveLength(1);
  }, 90_000);
});

describe('an instance dies', () => {
  it(`its running tasks are retried elsewhere or fail with worker_lost within WORKER_LOST_AFTER_MS, and nothing runs twice`, async () => {
    newPrefix();
    const doomed = await start({ MAX_WORKERS: '2' });
    const once = await create(doomed, { type: 'block', input: {}, max_attempts: 1 });
    const twice = await create(doomed, { type: 'block', input: {}, max_attempts: 2, retry_backoff_ms: 100 });
    const survivor = await start({ MAX_WORKERS: '2' });
    const watchOnce = await connect(survivor, `/api/tasks/${once.task_id}/events`);
    const watchTwice = await connect(survivor, `/api/tasks/${twice.task_id}/events`);
    await watchOnce.waitFor(hasType('task_started'), 'the first task to start on the doomed instance');
    await watchTwice.waitFor(hasType('task_started'), 'the second task to start on the doomed instance');
    expect((await stats(survivor)).workers.max).toBe(4);

    doomed.child.kill('SIGKILL');
    const killedAt = Date.now();
    const failed = await watchOnce.waitFor(ended, 'worker_lost', WORKER_LOST_AFTER_MS + 10_000);
    const recoveredMs = Date.now() - killedAt;
    expect(ofType(failed, 'task_failed')).toHaveLength(1);
    expect(ofType(failed, 'task_failed')[0]!.json.data.error.code).toBe('worker_lost');
    expect(recoveredMs, 'ms from SIGKILL to worker_lost').toBeLessThanOrEqual(WORKER_LOST_AFTER_MS + 1000);

    // The task with an attempt left runs again, on the survivor, once.
    const retried = await watchTwice.waitFor(
      (events) => ofType(events, 'task_started').length === 2,
      'the second attempt to start on the survivor',
      WORKER_LOST_AFTER_MS + 10_000,
    );
    expect(ofType(retried, 'task_started').map((event) => event.json.data.attempt)).toEqual([1, 2]);
    expect(ofType(retried, 'task_failed')).toHaveLength(0);
    expect((await snapshot(survivor, twice.task_id)).status).toBe('running');
    expect(ofType(retried, 'task_started')[1]!.json.data.previous_error.code).toBe('worker_lost');
    // The dead instance's workers are no longer counted.
    await until(async () => (await stats(survivor)).workers.max === 2, 'the workers of the dead instance to go', WORKER_LOST_AFTER_MS * 2);

    expect((await api(survivor, `/api/tasks/${twice.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
    const end = await watchTwice.waitFor(ended, 'the cancel');
    expect(end.filter((event) => TERMINAL_EVENTS.includes(event.event!)).map((event) => event.event)).toEqual(['task_cancelled']);
  }, 90_000);

  it('a cancel answered 202 decides the end even when the instance that answered it and the one running the task both die', async () => {
    newPrefix();
    const runner = await start();
    // An attempt left: without the cancel, the lost attempt would be retried.
    const task = await create(runner, { type: 'block', input: {}, max_attempts: 2, retry_backoff_ms: 100 });
    await until(async () => (await snapshot(runner, task.task_id)).status === 'running', 'the task to start');
    const answering = await start();
    runner.child.kill('SIGKILL');
    await runner.exited;
    // The runner's lock on the job is still valid for a while: the answering instance can
    // only relay the cancel, and dies before its stalled check could report the task lost.
    expect((await api(answering, `/api/tasks/${task.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
    answering.child.kill('SIGKILL');
    await answering.exited;

    // A third instance, which never heard of the cancel, finds the task lost.
    const finder = await start();
    const stream = await connect(finder, `/api/tasks/${task.task_id}/events`);
    const events = await stream.waitFor(ended, 'the lost task to end', WORKER_LOST_AFTER_MS + 10_000);
    expect(events.filter((event) => TERMINAL_EVENTS.includes(event.event!)).map((event) => event.event)).toEqual(['task_cancelled']);
    expect(ofType(events, 'task_cancelled')[0]!.json.data.reason).toBe('requested');
    expect(ofType(events, 'task_started')).toHaveLength(1);
    expect(await snapshot(finder, task.task_id)).toMatchObject({ status: 'cancelled', attempt: 1, error: null });
  }, 90_000);

  it('after every instance restarts, queued tasks run and ended ones are still readable with their whole history', async () => {
    newPrefix();
    let instance = await start();
    const done = await create(instance, { type: 'sample', input: { steps: 3, step_ms: 1 } });
    const history = await connect(instance, `/api/tasks/${done.task_id}/events`);
    await history.ended;
    expect((await api(instance, '/api/queue/pause', { method: 'POST' })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const waiting = await create(instance, { type: 'sample', input: { steps: 1, step_ms: 1 } });

    instance.child.kill('SIGTERM');
    expect(await instance.exited).toBe(0);
    instance = await start();
    const replay = await connect(instance, `/api/tasks/${done.task_id}/events`);
    await replay.ended;
    expect(replay.events.map((event) => [event.id, event.event, event.data])).toEqual(
      history.events.map((event) => [event.id, event.event, event.data]),
    );
    expect((await snapshot(instance, waiting.task_id)).status).toBe('queued');
    expect((await api(instance, '/api/queue/resume', { method: 'POST' })).status).toBe(200);
    const waited: any = await (await api(instance, `/api/tasks/${waiting.task_id}/wait?timeout_ms=15000`)).json();
    expect(waited.status).toBe('completed');
  }, 90_000);

  it('evicting a task leaves none of its keys in Redis', async () => {
    newPrefix();
    const [a, b] = await Promise.all([start({ RETENTION_MS: '1000' }), start({ RETENTION_MS: '1000' })]);
    const warmup = await create(a, { type: 'sample', input: { steps: 1, step_ms: 1 } });
    await (await api(a, `/api/tasks/${warmup.task_id}/wait?timeout_ms=15000`)).json();
    await until(async () => (await api(b, `/api/tasks/${warmup.task_id}`)).status === 404, 'the warm-up task to be evicted', 15_000);
    const baseline = await keysOf(redis, prefix);
    const tasks = await Promise.all(Array.from({ length: 6 }, (_, i) => create(i % 2 ? a : b, { type: 'sample', input: { steps: 5, step_ms: 1 } })));
    expect((await keysOf(redis, prefix)).length).toBeGreaterThan(baseline.length);
    for (const task of tasks) {
      await until(async () => (await api(a, `/api/tasks/${task.task_id}`)).status === 404, 'eviction', 15_000);
    }
    const left = await keysOf(redis, prefix);
    expect(left.filter((key) => tasks.some((task) => key.includes(task.task_id)))).toEqual([]);
    // BullMQ's stalled-check lock comes and goes with each check (one per queue, with a TTL).
    const lasting = (key: string) => !key.endsWith(':stalled-check');
    expect(left.filter((key) => lasting(key) && !baseline.includes(key))).toEqual([]);
  }, 90_000);
});
