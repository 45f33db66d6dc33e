import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  cancel,
  expectProblem,
  expectWellFormed,
  Harness,
  hasType,
  json,
  JSON_HEADERS,
  ofType,
  post,
  snapshotOf,
  touch,
} from './helpers/harness.ts';
import { ManualClock } from './helpers/manual-clock.ts';
import type { TestServer } from './helpers/server.ts';
import { until, withTimeout } from './helpers/timeout.ts';

// Idempotent create, long-polling, progress steps and ETA, labels, bulk clear, the reaper's
// endpoints and the batch task type, through a real server with real worker threads.
const harness = new Harness();
afterEach(() => harness.close());

const QUICK = { type: 'sample', input: { steps: 1, step_ms: 0 } };
const ids = (tasks: { task_id: string }[]) => tasks.map((task) => task.task_id);

const createWithKey = (server: TestServer, key: string, body: unknown) =>
  post(server, '/api/tasks', body, { ...JSON_HEADERS, 'idempotency-key': key });

async function runToEnd(server: TestServer, task: { task_id: string; stream_url: string }): Promise<any> {
  await (await harness.connect(server, task.stream_url)).untilEnd(`task ${task.task_id} to end`);
  return snapshotOf(server, task.task_id);
}

async function listIds(server: TestServer, query = ''): Promise<string[]> {
  const response = await server.api(`/api/tasks${query}`);
  const body = await json(response);
  expect(response.status, `${query}: ${JSON.stringify(body)}`).toBe(200);
  return ids(body.tasks);
}

describe('Idempotency-Key on create', () => {
  it('same key and same body: 200 with the same task, nothing new is created', async () => {
    const server = await harness.serve();
    const body = { type: 'sample', input: { steps: 1, step_ms: 0 }, priority: 3, labels: { a: '1', b: '2' } };
    const first = await createWithKey(server, 'order-42', body);
    expect(first.status).toBe(201);
    const task = await json(first);

    const again = await createWithKey(server, 'order-42', body);
    expect(again.status).toBe(200);
    expect(again.headers.get('location')).toBe(`/api/tasks/${task.task_id}`);
    expect((await json(again)).task_id).toBe(task.task_id);

    // The same JSON with its keys in another order is the same body.
    const reordered = { labels: { b: '2', a: '1' }, priority: 3, input: { step_ms: 0, steps: 1 }, type: 'sample' };
    const third = await createWithKey(server, 'order-42', reordered);
    expect(third.status).toBe(200);
    expect((await json(third)).task_id).toBe(task.task_id);

    // Once the task has ended, the answer is the task as it is now.
    expect((await runToEnd(server, task)).status).toBe('completed');
    const late = await createWithKey(server, 'order-42', body);
    expect(late.status).toBe(200);
    expect(await json(late)).toMatchObject({ task_id: task.task_id, status: 'completed', result: { steps_completed: 1 } });
    expect(await listIds(server)).toEqual([task.task_id]);

    // Another key, or none, is another task.
    const other = await createWithKey(server, 'order-43', body);
    expect(other.status).toBe(201);
    expect((await json(other)).task_id).not.toBe(task.task_id);
    expect((await post(server, '/api/tasks', body)).status).toBe(201);
    expect(await listIds(server)).toHaveLength(3);

    // Bodies are compared after defaults are applied: leaving a default out is the same body.
    const spelt = await createWithKey(server, 'defaults', { type: 'sample', input: { steps: 5, step_ms: 1000 } });
    expect(spelt.status).toBe(201);
    const implied = await createWithKey(server, 'defaults', { type: 'sample', input: {} });
    expect(implied.status).toBe(200);
    expect((await json(implied)).task_id).toBe((await json(spelt)).task_id);
  });

  it('same key with another body: 422 idempotency_key_reused at /idempotency-key; the first task is untouched', async () => {
    const server = await harness.serve();
    const task = await json(await createWithKey(server, 'k1', QUICK));
    for (const body of [
      { type: 'sample', input: { steps: 2, step_ms: 0 } },
      { type: 'primes', input: { limit: 10 } },
      { ...QUICK, priority: 1 },
      { ...QUICK, labels: { x: 'y' } },
    ]) {
      const problem = await expectProblem(await createWithKey(server, 'k1', body), 422, 'idempotency_key_reused');
      expect(problem.errors!.map((error) => error.pointer), JSON.stringify(body)).toEqual(['/idempotency-key']);
      expect(problem.errors![0]!.detail).toContain(task.task_id);
    }
    expect(await listIds(server)).toEqual([task.task_id]);
    expect((await snapshotOf(server, task.task_id)).input).toEqual(QUICK.input);
  });

  it('a key that is not 1-255 visible ASCII characters is 400 at /idempotency-key', async () => {
    const server = await harness.serve();
    for (const key of ['', 'has space', 'x'.repeat(256)]) {
      const problem = await expectProblem(await createWithKey(server, key, QUICK), 400, 'invalid_request');
      expect(problem.errors!.map((error) => error.pointer), JSON.stringify(key)).toEqual(['/idempotency-key']);
    }
    expect(await listIds(server)).toEqual([]);
    expect((await createWithKey(server, '~'.repeat(255), QUICK)).status).toBe(201);
  });

  it('concurrent requests with one key create one task', async () => {
    const server = await harness.serve();
    const responses = await Promise.all(Array.from({ length: 8 }, () => createWithKey(server, 'burst', QUICK)));
    const bodies = await Promise.all(responses.map(json));
    expect(responses.map((response) => response.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(ids(bodies)).size).toBe(1);
    expect(await listIds(server)).toHaveLength(1);
  });

  it('a key lives as long as its task: after delete or bulk clear, it creates a new task', async () => {
    const server = await harness.serve();
    const first = await json(await createWithKey(server, 'deleted', QUICK));
    await runToEnd(server, first);
    expect((await server.api(`/api/tasks/${first.task_id}`, { method: 'DELETE' })).status).toBe(204);
    // Free again, whatever the body.
    const second = await createWithKey(server, 'deleted', { ...QUICK, priority: 9 });
    expect(second.status).toBe(201);
    const secondTask = await json(second);
    expect(secondTask.task_id).not.toBe(first.task_id);
    // And now it names the new task.
    const replay = await createWithKey(server, 'deleted', { ...QUICK, priority: 9 });
    expect(replay.status).toBe(200);
    expect((await json(replay)).task_id).toBe(secondTask.task_id);

    const failed = await json(await createWithKey(server, 'cleared', { type: 'throws', input: {} }));
    await runToEnd(server, failed);
    expect(await json(await server.api('/api/tasks?status=failed', { method: 'DELETE' }))).toEqual({ deleted: 1 });
    const afterClear = await createWithKey(server, 'cleared', { type: 'throws', input: {} });
    expect(afterClear.status).toBe(201);
    expect((await json(afterClear)).task_id).not.toBe(failed.task_id);
  });

  it('a key lives as long as its task: after eviction, it creates a new task', async () => {
    const clock = new ManualClock();
    const server = await harness.serve({ RETENTION_MS: '1000' }, { clock });
    const first = await json(await createWithKey(server, 'evicted', QUICK));
    await runToEnd(server, first);
    clock.advance(999);
    expect((await createWithKey(server, 'evicted', QUICK)).status).toBe(200);
    await expectProblem(await createWithKey(server, 'evicted', { ...QUICK, priority: 1 }), 422, 'idempotency_key_reused');
    clock.advance(1);
    expect((await server.api(`/api/tasks/${first.task_id}`)).status).toBe(404);
    const again = await createWithKey(server, 'evicted', QUICK);
    expect(again.status).toBe(201);
    expect((await json(again)).task_id).not.toBe(first.task_id);
  });
});

describe('GET /api/tasks/{id}/wait', () => {
  it('long-polls until the task ends, then answers its final snapshot', async () => {
    const server = await harness.serve();
    const dir = harness.dir();
    const task = await server.create({ type: 'gate', input: { dir } });
    await (await harness.connect(server, task.stream_url)).waitFor(hasType('progress_update'), 'the gate to run');
    let settled = false;
    const waiting = server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=600000`).finally(() => (settled = true));
    // A request on another connection, answered while the long-poll still waits.
    expect((await snapshotOf(server, task.task_id)).status).toBe('running');
    expect(settled).toBe(false);

    touch(dir, 'open');
    const response = await withTimeout(waiting, 'the long-poll to answer once the task ended');
    expect(response.status).toBe(200);
    expect(await json(response)).toMatchObject({ task_id: task.task_id, status: 'completed', result: { steps: 0 } });
  });

  it('answers with the task as it is when the timeout passes first', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const running = await server.create({ type: 'block', input: { progress: 1 } });
    await (await harness.connect(server, running.stream_url)).waitFor(hasType('progress_update'), 'the blocker to run');
    const queued = await server.create({ type: 'block', input: {} });
    for (const [task, status] of [
      [running, 'running'],
      [queued, 'queued'],
    ] as const) {
      for (const timeout of [0, 50]) {
        const response = await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=${timeout}`);
        expect(response.status).toBe(200);
        expect(await json(response), `${status}, timeout_ms=${timeout}`).toMatchObject({ task_id: task.task_id, status });
      }
    }
    await cancel(server, queued.task_id);
    await cancel(server, running.task_id);
  });

  it('answers at once for an ended task, whatever the timeout', async () => {
    const server = await harness.serve();
    const task = await server.create(QUICK);
    const ended = await runToEnd(server, task);
    for (const query of ['', '?timeout_ms=600000']) {
      const response = await withTimeout(server.api(`/api/tasks/${task.task_id}/wait${query}`), `wait${query} on an ended task`);
      expect(response.status).toBe(200);
      expect(await json(response)).toEqual(ended);
    }
  });

  it('answers 404 for an unknown task and 400 at /timeout_ms for a bad timeout', async () => {
    const server = await harness.serve();
    for (const id of ['0190a5f4-0000-7000-8000-000000000000', 'not-a-uuid']) {
      const problem = await expectProblem(await server.api(`/api/tasks/${id}/wait?timeout_ms=1000`), 404, 'task_not_found');
      expect(problem.detail).toContain(id);
    }
    const task = await server.create(QUICK);
    for (const timeout of ['', ' ', '-1', '600001', 'soon', '1.5', '1e9']) {
      const problem = await expectProblem(await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=${timeout}`), 400, 'invalid_request');
      expect(problem.errors!.map((error) => error.pointer), `timeout_ms=${timeout}`).toEqual(['/timeout_ms']);
    }
  });

  it('a client that gives up leaves the task and later long-polls unharmed', async () => {
    const server = await harness.serve();
    const dir = harness.dir();
    const task = await server.create({ type: 'gate', input: { dir } });
    const gaveUp = new AbortController();
    const abandoned = server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=600000`, { signal: gaveUp.signal });
    gaveUp.abort();
    await expect(abandoned).rejects.toThrow();
    const waiting = server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=600000`);
    touch(dir, 'open');
    const response = await withTimeout(waiting, 'the second long-poll');
    expect(await json(response)).toMatchObject({ status: 'completed' });
  });
});

describe('long polls are bounded', () => {
  const waitPath = (taskId: string, timeoutMs = 600_000) => `/api/tasks/${taskId}/wait?timeout_ms=${timeoutMs}`;

  /** A long poll on a raw socket, so the test decides when its client goes away. */
  function rawWait(server: TestServer, taskId: string): Socket {
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    socket.write(`GET ${waitPath(taskId)} HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
    return socket;
  }

  it('count against MAX_STREAMS with the streams: one more answers 429 with Retry-After', async () => {
    const server = await harness.serve({ MAX_STREAMS: '2' });
    const task = await server.create({ type: 'block', input: {} });
    const stream = await harness.connect(server, task.stream_url);
    const socket = rawWait(server, task.task_id);
    try {
      await until(() => server.hub.longPolls === 1, 'the long poll to be waiting');
      // One stream and one long poll: both places are taken, for streams and long polls alike.
      for (const path of [waitPath(task.task_id, 0), task.stream_url]) {
        const refused = await server.api(path);
        await expectProblem(refused, 429, 'too_many_streams');
        expect(refused.headers.get('retry-after'), path).toMatch(/^\d+$/);
      }
    } finally {
      socket.destroy();
      stream.close();
    }
  });

  it('free their place as soon as their client goes away', async () => {
    const server = await harness.serve({ MAX_STREAMS: '1' });
    const task = await server.create({ type: 'block', input: {} });
    const socket = rawWait(server, task.task_id);
    await until(() => server.hub.longPolls === 1, 'the long poll to be waiting');
    expect((await server.api(waitPath(task.task_id, 0))).status).toBe(429);
    socket.destroy();
    await until(() => server.hub.longPolls === 0, 'the abandoned long poll to be freed');
    expect(await json(await server.api(waitPath(task.task_id, 0)))).toMatchObject({ status: 'running' });
    await cancel(server, task.task_id);
  });

  it('free the place of a client that is already gone when the handler runs', async () => {
    const server = await harness.serve({ MAX_STREAMS: '1' });
    const task = await server.create({ type: 'block', input: {} });
    // The connection is cut as the request arrives, before the route runs: the long poll
    // must not wait out its 600 s for nobody.
    const cut = (request: IncomingMessage) => {
      if (request.url?.includes('/wait')) request.socket.destroy();
    };
    server.server.prependListener('request', cut);
    const socket = rawWait(server, task.task_id);
    socket.on('error', () => {});
    await until(() => socket.destroyed, 'the server to cut the connection');
    server.server.off('request', cut);
    await until(() => server.hub.longPolls === 0, 'the long poll of the gone client to be freed');
    expect((await server.api(waitPath(task.task_id, 0))).status).toBe(200);
    await cancel(server, task.task_id);
  });
});

describe('progress steps and eta_ms', () => {
  it('eta_ms is null until progress has moved over a meaningful span, then follows the observed rate', async () => {
    // The service's clock: progress arrives whenever the test lets the gate move, and is
    // timed by this clock, so each estimate is exact.
    const clock = new ManualClock();
    const server = await harness.serve({}, { clock });
    const dir = harness.dir();
    const task = await server.create({ type: 'gate', input: { dir, steps: 4 } });
    expect(task.progress).toEqual({ value: null, text: null, step: null, total_steps: null, eta_ms: null });
    const stream = await harness.connect(server, task.stream_url);

    const expected = [
      { value: 0, text: 'waiting', step: 0, total_steps: 4, eta_ms: null }, // the first sample
      { value: 0.25, text: 'step 1', step: 1, total_steps: 4, eta_ms: null }, // 100 ms: too soon to tell
      { value: 0.5, text: 'step 2', step: 2, total_steps: 4, eta_ms: 1000 }, // half in 1000 ms: 1000 left
      { value: 0.75, text: 'step 3', step: 3, total_steps: 4, eta_ms: 333 }, // 3/4 in 1000 ms: 333 left
      { value: 1, text: 'step 4', step: 4, total_steps: 4, eta_ms: 0 },
    ];
    const moves: (() => void)[] = [
      () => {},
      () => (clock.advance(100), touch(dir, 'step-1')),
      () => (clock.advance(900), touch(dir, 'step-2')),
      () => touch(dir, 'step-3'),
      () => (clock.advance(500), touch(dir, 'step-4')),
    ];
    for (const [index, move] of moves.entries()) {
      move();
      await stream.waitFor((events) => ofType(events, 'progress_update').length === index + 1, `progress ${index}`);
      expect(ofType(stream.events, 'progress_update')[index]!.json.data, `progress ${index}`).toEqual(expected[index]);
      expect((await snapshotOf(server, task.task_id)).progress, `snapshot after progress ${index}`).toEqual(expected[index]);
    }
    touch(dir, 'open');
    const events = await stream.untilEnd('the gate to complete');
    expectWellFormed(events, task.task_id);
    expect((await snapshotOf(server, task.task_id)).progress).toEqual(expected[4]);
  });

  it('eta_ms stays null for progress of unknown extent, while steps are still counted', async () => {
    const clock = new ManualClock();
    const server = await harness.serve({}, { clock });
    const dir = harness.dir();
    const task = await server.create({ type: 'gate', input: { dir, steps: 2, indeterminate: true } });
    const stream = await harness.connect(server, task.stream_url);
    await stream.waitFor(hasType('progress_update'), 'the first progress');
    for (const step of [1, 2]) {
      clock.advance(10_000);
      touch(dir, `step-${step}`);
      await stream.waitFor((events) => ofType(events, 'progress_update').length === step + 1, `step ${step}`);
    }
    expect(ofType(stream.events, 'progress_update').map((event) => event.json.data)).toEqual([0, 1, 2].map((step) => ({
      value: null,
      text: step === 0 ? 'waiting' : `step ${step}`,
      step,
      total_steps: 2,
      eta_ms: null,
    })));
    touch(dir, 'open');
    await stream.untilEnd('the gate to complete');
  });
});

describe('labels', () => {
  it('keeps labels on the task and finds tasks by one or several labels', async () => {
    const server = await harness.serve();
    await post(server, '/api/queue/pause'); // every task stays queued: nothing to wait for
    const create = (labels?: Record<string, string>) => server.create({ ...QUICK, ...(labels ? { labels } : {}) });
    const prodCore = await create({ env: 'prod', team: 'core' });
    const prodWeb = await create({ env: 'prod', team: 'web' });
    const dev = await create({ env: 'dev' });
    const none = await create();
    const url = await create({ 'app.kubernetes.io/name': 'api', origin: 'http://x:1/y' });
    const empty = await create({ flag: '' });
    expect(prodCore.labels).toEqual({ env: 'prod', team: 'core' });
    expect(none.labels).toEqual({});
    expect((await snapshotOf(server, url.task_id)).labels).toEqual({ 'app.kubernetes.io/name': 'api', origin: 'http://x:1/y' });

    expect(await listIds(server, '?label=env:prod')).toEqual(ids([prodWeb, prodCore]));
    expect(await listIds(server, '?label=env:prod&label=team:web')).toEqual(ids([prodWeb]));
    expect(await listIds(server, '?label=team:core&label=env:dev')).toEqual([]);
    // All must match: one label asked for two values matches nothing; asked twice alike, as once.
    expect(await listIds(server, '?label=env:prod&label=env:dev')).toEqual([]);
    expect(await listIds(server, '?label=env:dev&label=env:prod')).toEqual([]);
    expect(await listIds(server, '?label=env:dev&label=env:dev')).toEqual(ids([dev]));
    await expectProblem(await server.api('/api/tasks?label=env:prod&label=env:dev&cursor=garbage'), 400, 'invalid_request');
    expect(await listIds(server, '?label=env:staging')).toEqual([]);
    expect(await listIds(server, '?label=env:')).toEqual([]);
    expect(await listIds(server, '?label=flag:')).toEqual(ids([empty]));
    // The first colon separates key and value.
    expect(await listIds(server, `?label=${encodeURIComponent('origin:http://x:1/y')}`)).toEqual(ids([url]));
    expect(await listIds(server, `?label=${encodeURIComponent('app.kubernetes.io/name:api')}`)).toEqual(ids([url]));
    expect(await listIds(server, '?label=env:dev&status=queued&type=sample')).toEqual(ids([dev]));
    expect(await listIds(server, '?label=env:dev&status=running')).toEqual([]);

    // With paging: every match exactly once.
    const page = await json(await server.api('/api/tasks?label=env:prod&limit=1'));
    expect(ids(page.tasks)).toEqual(ids([prodWeb]));
    const rest = await json(await server.api(`/api/tasks?label=env:prod&limit=1&cursor=${page.next_cursor}`));
    expect(ids(rest.tasks)).toEqual(ids([prodCore]));
    expect(rest.next_cursor).toBeNull();
  });

  it('refuses labels beyond their bounds with 422 pointing at the label', async () => {
    const server = await harness.serve();
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
    const cases: [unknown, string][] = [
      [many(21), '/labels'],
      ['env=prod', '/labels'],
      [['env', 'prod'], '/labels'],
      [{ ['k'.repeat(64)]: 'v' }, `/labels/${'k'.repeat(64)}`],
      [{ '-leading': 'v' }, '/labels/-leading'],
      [{ 'has space': 'v' }, '/labels/has space'],
      [{ 'a:b': 'v' }, '/labels/a:b'],
      [{ '': 'v' }, '/labels/'],
      [{ 'a/b~': 'v' }, '/labels/a~1b~0'],
      [{ env: 'v'.repeat(257) }, '/labels/env'],
      [{ env: 1 }, '/labels/env'],
      [{ env: null }, '/labels/env'],
    ];
    for (const [labels, pointer] of cases) {
      const problem = await expectProblem(await post(server, '/api/tasks', { ...QUICK, labels }), 422, 'validation_failed');
      expect(problem.errors!.map((error) => error.pointer), JSON.stringify(labels).slice(0, 80)).toEqual([pointer]);
    }
    expect(await listIds(server)).toEqual([]);

    // At the bounds: 20 labels, 63-character keys, 256-character values.
    const atBounds = { ...many(19), ['k'.repeat(63)]: 'v'.repeat(256) };
    expect((await server.create({ ...QUICK, labels: atBounds })).labels).toEqual(atBounds);
  });

  it('refuses a label filter that is not key:value with 400 at /label', async () => {
    const server = await harness.serve();
    for (const query of ['label=nocolon', 'label=:value', `label=${'k'.repeat(64)}:v`, 'label=a:1&label=b']) {
      const problem = await expectProblem(await server.api(`/api/tasks?${query}`), 400, 'invalid_request');
      expect(problem.errors!.length, query).toBeGreaterThan(0);
      for (const pointer of problem.errors!.map((error) => error.pointer)) expect(pointer, query).toMatch(/^\/label(\/\d+)?$/);
    }
    const tooMany = Array.from({ length: 21 }, (_, i) => `label=k${i}:v`).join('&');
    await expectProblem(await server.api(`/api/tasks?${tooMany}`), 400, 'invalid_request');
    expect((await server.api(`/api/tasks?${Array.from({ length: 20 }, (_, i) => `label=k${i}:v`).join('&')}`)).status).toBe(200);
  });
});

describe('DELETE /api/tasks?status=', () => {
  it('deletes every task that ended with that status, never a queued or running one', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const completed = [await server.create(QUICK), await server.create(QUICK)];
    const failed = await server.create({ type: 'throws', input: {} });
    for (const task of [...completed, failed]) await runToEnd(server, task);
    const running = await server.create({ type: 'block', input: { progress: 1 } });
    const runningStream = await harness.connect(server, running.stream_url);
    await runningStream.waitFor(hasType('progress_update'), 'the blocker to run');
    const queued = await server.create({ type: 'block', input: {} });
    const cancelled = await server.create({ type: 'block', input: {} });
    await cancel(server, cancelled.task_id);
    const all = await harness.connect(server, '/api/events');
    const cancelledStream = await harness.connect(server, cancelled.stream_url);
    await cancelledStream.untilEnd('the cancelled task\'s replay');

    const clear = async (status: string) => {
      const response = await server.api(`/api/tasks?status=${status}`, { method: 'DELETE' });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      return json(response);
    };
    expect(await clear('completed')).toEqual({ deleted: 2 });
    expect(await clear('completed')).toEqual({ deleted: 0 });
    for (const task of completed) await expectProblem(await server.api(`/api/tasks/${task.task_id}`), 404, 'task_not_found');
    expect(await listIds(server)).toEqual(ids([cancelled, queued, running, failed]));

    expect(await clear('failed')).toEqual({ deleted: 1 });
    expect(await clear('cancelled')).toEqual({ deleted: 1 });
    expect(await listIds(server)).toEqual(ids([queued, running]));
    expect((await snapshotOf(server, running.task_id)).status).toBe('running');
    expect((await snapshotOf(server, queued.task_id)).status).toBe('queued');

    // Watchers hear of each deletion.
    await all.waitFor((events) => ofType(events, 'task_removed').length === 4, 'four task_removed events');
    expect(new Set(ofType(all.events, 'task_removed').map((event) => event.json.task_id))).toEqual(
      new Set(ids([...completed, failed, cancelled])),
    );
    expect(ofType(all.events, 'task_removed').every((event) => event.json.data.reason === 'deleted')).toBe(true);

    // The running task's stream was left alone: it still ends with the task.
    await cancel(server, running.task_id);
    const events = await runningStream.untilEnd('the running task to be cancelled');
    expect(runningStream.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    expectWellFormed(events, running.task_id);
  });

  it('answers 400 at /status for a missing, unknown or non-terminal status, and deletes nothing', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const done = await server.create(QUICK);
    await runToEnd(server, done);
    const running = await server.create({ type: 'block', input: {} });
    await (await harness.connect(server, running.stream_url)).waitFor(hasType('task_started'), 'the blocker to start');
    const queued = await server.create({ type: 'block', input: {} });
    for (const query of ['', '?status=queued', '?status=running', '?status=done', '?status=COMPLETED']) {
      const problem = await expectProblem(await server.api(`/api/tasks${query}`, { method: 'DELETE' }), 400, 'invalid_request');
      expect(problem.errors!.map((error) => error.pointer), query).toEqual(['/status']);
    }
    expect(await listIds(server)).toEqual(ids([queued, running, done]));
  });
});

describe('the reaper endpoints', () => {
  it('GET /api/reaper reports retention, last run and evictions; POST /api/reaper/run evicts what is due', async () => {
    const clock = new ManualClock();
    const server = await harness.serve({ RETENTION_MS: '60000' }, { clock });
    const status = async () => {
      const response = await server.api('/api/reaper');
      expect(response.status).toBe(200);
      return json(response);
    };
    const run = async () => {
      const response = await post(server, '/api/reaper/run');
      expect(response.status).toBe(200);
      return json(response);
    };
    // Alone, each task is evicted on time by the process that ended it; in Redis mode the
    // shared store is also swept, at most every 30 s, for tasks other instances ended.
    const intervalMs = server.mode === 'redis' ? 30_000 : 0;
    expect(await status()).toEqual({ retention_ms: 60_000, interval_ms: intervalMs, last_run_at: null, evicted_total: 0 });
    expect(await run()).toEqual({ evicted: 0 });
    expect(await status()).toEqual({
      retention_ms: 60_000,
      interval_ms: intervalMs,
      last_run_at: new Date(clock.now()).toISOString(),
      evicted_total: 0,
    });

    const ended = [await runToEnd(server, await server.create(QUICK)), await runToEnd(server, await server.create({ type: 'throws', input: {} }))];
    const running = await server.create({ type: 'block', input: {} });
    await (await harness.connect(server, running.stream_url)).waitFor(hasType('task_started'), 'the blocker to start');

    // Time passes but the reaper's timer has not fired yet (a busy process): a run evicts
    // what is due, and never the running task.
    clock.jump(59_999);
    expect(await run()).toEqual({ evicted: 0 });
    clock.jump(1);
    expect(await run()).toEqual({ evicted: 2 });
    for (const task of ended) await expectProblem(await server.api(`/api/tasks/${task.task_id}`), 404, 'task_not_found');
    expect((await snapshotOf(server, running.task_id)).status).toBe('running');
    const after = await status();
    expect(after).toEqual({
      retention_ms: 60_000,
      interval_ms: intervalMs,
      last_run_at: new Date(clock.now()).toISOString(),
      evicted_total: 2,
    });
    // The timer firing late finds nothing left to evict: nothing is counted twice.
    clock.advance(0);
    expect(await run()).toEqual({ evicted: 0 });
    expect((await status()).evicted_total).toBe(2);
    await cancel(server, running.task_id);
  });
});

describe('the batch task type', () => {
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const md5 = (text: string) => createHash('md5').update(text).digest('hex');
  const ok = (outputs: string[]) => outputs.map((output, index) => ({ index, ok: true, output, error: null }));

  it('applies the operation to each item: one progress step per item, one result per item', async () => {
    const server = await harness.serve();
    const items = ['alpha', 'beta', 'gamma'];
    const task = await server.create({ type: 'batch', input: { items, operation: 'sha256' } });
    expect(task.input).toEqual({ items, operation: 'sha256', item_ms: 0 });
    const stream = await harness.connect(server, task.stream_url);
    const events = await stream.untilEnd('the batch to complete');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'progress_update', 'task_completed']);
    expect(ofType(events, 'progress_update').map((event) => event.json.data)).toEqual(
      [1, 2, 3].map((step) => ({ value: step / 3, text: `Item ${step}/3`, step, total_steps: 3, eta_ms: expect.toBeOneOf([null, expect.any(Number)]) })),
    );
    const result = { processed: 3, failed: 0, items: ok(items.map(sha256)) };
    expect(events.at(-1)!.json.data).toEqual({ result });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({
      status: 'completed',
      result,
      progress: { value: 1, step: 3, total_steps: 3, text: 'Item 3/3' },
    });
  });

  it('offers md5, length (in characters), word_count and uppercase', async () => {
    const server = await harness.serve();
    const items = ['héllo wörld', '👍🏽 ok', '', '  two   words '];
    const cases = [
      ['md5', items.map(md5)],
      ['length', ['11', '5', '0', '14']], // code points: the emoji and its skin tone are two
      ['word_count', ['2', '2', '0', '2']],
      ['uppercase', ['HÉLLO WÖRLD', '👍🏽 OK', '', '  TWO   WORDS ']],
    ] as const;
    const tasks = await Promise.all(cases.map(([operation]) => server.create({ type: 'batch', input: { items, operation } })));
    for (const [index, [operation, outputs]] of cases.entries()) {
      const done = await runToEnd(server, tasks[index]);
      expect(done, operation).toMatchObject({ status: 'completed', result: { processed: 4, failed: 0, items: ok([...outputs]) } });
    }
  });

  it('stops between items when cancelled, keeping the steps done so far', async () => {
    // No thread termination within the test: only the batch's own check can stop it.
    const server = await harness.serve({ CANCEL_GRACE_MS: '600000' });
    const task = await server.create({ type: 'batch', input: { items: ['a', 'b', 'c'], operation: 'length', item_ms: 60_000 } });
    const stream = await harness.connect(server, task.stream_url);
    await stream.waitFor(hasType('progress_update'), 'the first item');
    await cancel(server, task.task_id);
    const events = await stream.untilEnd('the batch to stop between items');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({
      status: 'cancelled',
      result: null,
      error: null,
      progress: { step: 1, total_steps: 3, text: 'Item 1/3' },
    });
  });

  it('takes up to 10,000 items of up to 100,000 characters', async () => {
    const server = await harness.serve();
    const items = Array.from({ length: 10_000 }, (_, i) => String(i));
    const task = await server.create({ type: 'batch', input: { items, operation: 'length' } });
    const done = await runToEnd(server, task);
    expect(done).toMatchObject({ status: 'completed', progress: { value: 1, step: 10_000, total_steps: 10_000 } });
    expect(done.result.processed).toBe(10_000);
    expect(done.result.items).toHaveLength(10_000);
    expect(done.result.items[9_999]).toEqual({ index: 9_999, ok: true, output: '4', error: null });

    const long = await runToEnd(server, await server.create({ type: 'batch', input: { items: ['x'.repeat(100_000)], operation: 'length' } }));
    expect(long.result.items).toEqual(ok(['100000']));
  });

  it('refuses an empty or oversized list, an oversized item and an unknown operation, pointing at the field', async () => {
    const server = await harness.serve();
    const input = (overrides: Record<string, unknown>) => ({ items: ['a'], operation: 'length', ...overrides });
    const cases: [Record<string, unknown>, string][] = [
      [input({ items: [] }), '/input/items'],
      [input({ items: Array.from({ length: 10_001 }, () => 'a') }), '/input/items'],
      [input({ items: 'a,b' }), '/input/items'],
      [input({ items: ['ok', 'x'.repeat(100_001)] }), '/input/items/1'],
      [input({ items: ['ok', 7] }), '/input/items/1'],
      [input({ operation: 'rot13' }), '/input/operation'],
      [{ items: ['a'] }, '/input/operation'],
      [input({ item_ms: 60_001 }), '/input/item_ms'],
      [input({ item_ms: -1 }), '/input/item_ms'],
    ];
    for (const [batchInput, pointer] of cases) {
      const problem = await expectProblem(await post(server, '/api/tasks', { type: 'batch', input: batchInput }), 422, 'validation_failed');
      expect(problem.errors!.map((error) => error.pointer), pointer).toEqual([pointer]);
    }
    const unknown = await expectProblem(await post(server, '/api/tasks', { type: 'batch', input: input({ extra: 1 }) }), 422, 'validation_failed');
    expect(JSON.stringify(unknown.errors)).toContain('extra');
    expect(await listIds(server)).toEqual([]);
  });
});

describe('openapi.yaml describes these features', () => {
  const document = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8'));
  const schemas = document.components.schemas;
  const properties = (name: string) => Object.keys(schemas[name].properties);
  const parameters = (path: string, method: string) =>
    (document.paths[path][method].parameters ?? []).map((parameter: { name: string; in: string }) => `${parameter.in}:${parameter.name}`);
  const responses = (path: string, method: string) => Object.keys(document.paths[path][method].responses);

  it('the task snapshot, progress and task_started carry the new fields', () => {
    expect(properties('Task')).toEqual(
      expect.arrayContaining(['priority', 'attempt', 'max_attempts', 'retry_backoff_ms', 'labels', 'retry_of']),
    );
    expect(properties('Progress')).toEqual(expect.arrayContaining(['value', 'text', 'step', 'total_steps', 'eta_ms']));
    expect(properties('TaskStartedData')).toEqual(expect.arrayContaining(['attempt', 'max_attempts', 'previous_error']));
  });

  it('every create branch takes priority, retries and labels; create takes an Idempotency-Key', () => {
    const branches = document.components.schemas.CreateTaskRequest.oneOf.map((branch: { $ref: string }) =>
      branch.$ref.replace('#/components/schemas/', ''),
    );
    expect(branches).toContain('CreateBatchTask');
    for (const branch of branches) {
      expect(properties(branch), branch).toEqual(
        expect.arrayContaining(['type', 'input', 'timeout_ms', 'priority', 'max_attempts', 'retry_backoff_ms', 'labels']),
      );
      expect(schemas[branch].properties.priority, branch).toMatchObject({ minimum: -1000, maximum: 1000 });
      expect(schemas[branch].properties.max_attempts, branch).toMatchObject({ minimum: 1, maximum: 20 });
    }
    expect(schemas.CreateBatchTask.properties.input.properties.items).toMatchObject({ minItems: 1, maxItems: 10_000 });
    expect(parameters('/api/tasks', 'post')).toContain('header:idempotency-key');
    expect(responses('/api/tasks', 'post')).toEqual(expect.arrayContaining(['200', '201', '400', '422', '503']));
  });

  it('documents wait, retry, stats, label filters, bulk clear, pause/resume and the reaper', () => {
    expect(parameters('/api/tasks/{task_id}/wait', 'get')).toEqual(expect.arrayContaining(['path:task_id', 'query:timeout_ms']));
    expect(responses('/api/tasks/{task_id}/wait', 'get')).toEqual(expect.arrayContaining(['200', '400', '404']));
    expect(responses('/api/tasks/{task_id}/retry', 'post')).toEqual(expect.arrayContaining(['201', '404', '409']));
    expect(parameters('/api/tasks', 'get')).toContain('query:label');
    expect(parameters('/api/tasks', 'delete')).toContain('query:status');
    const clearStatus = document.paths['/api/tasks'].delete.parameters.find((parameter: { name: string }) => parameter.name === 'status');
    expect(clearStatus.schema.enum).toEqual(['completed', 'failed', 'cancelled']);
    expect(properties('Stats')).toEqual(['tasks', 'workers', 'queue', 'streams', 'paused']);
    expect(Object.keys(schemas.Stats.properties.workers.properties)).toEqual(['max', 'busy']);
    expect(Object.keys(schemas.Stats.properties.queue.properties)).toEqual(['size', 'max']);
    for (const path of ['/api/queue/pause', '/api/queue/resume', '/api/reaper/run']) expect(document.paths[path].post, path).toBeDefined();
    expect(properties('ReaperStatus')).toEqual(['retention_ms', 'interval_ms', 'last_run_at', 'evicted_total']);
    expect(properties('ReaperRun')).toEqual(['evicted']);
    expect(properties('Cleared')).toEqual(['deleted']);
  });
});
