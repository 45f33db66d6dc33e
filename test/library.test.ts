import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigError } from '../src/config.ts';
import { createTaskstream, type TaskstreamInstance } from '../src/create-taskstream.ts';
import { TaskModuleError } from '../src/tasks/task-module-error.ts';
import type greet from './fixtures/modules/user/greet.ts';
import { SseClient } from './helpers/sse.ts';
import { withTimeout } from './helpers/timeout.ts';

const USER_TASKS = 'test/fixtures/modules/user';
let tasks: TaskstreamInstance<any> | undefined;
let server: ServerType | Server | undefined;
afterEach(async () => {
  server?.close();
  if ('closeAllConnections' in (server ?? {})) (server as Server).closeAllConnections();
  server = undefined;
  await tasks?.shutdown(0);
  tasks = undefined;
});

const listen = (app: Hono) =>
  new Promise<string>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(`http://127.0.0.1:${info.port}`));
  });

async function post(url: string, body: unknown) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { response, json: (await response.json()) as any };
}

describe('createTaskstream options', () => {
  it('throws a ConfigError naming a bad option, and an unknown one', async () => {
    await expect(createTaskstream({ maxWorkers: 0 })).rejects.toThrow(/maxWorkers=0/);
    await expect(createTaskstream({ maxWorkers: 0 })).rejects.toBeInstanceOf(ConfigError);
    await expect(createTaskstream({ taskTimeoutMs: 10, maxTaskTimeoutMs: 5 })).rejects.toThrow(/taskTimeoutMs=10: must not exceed maxTaskTimeoutMs/);
    await expect(createTaskstream({ maxWorker: 2 } as never)).rejects.toThrow(/Unknown option maxWorker/);
  });

  it('reads no environment variable', async () => {
    process.env.MAX_WORKERS = '7';
    try {
      tasks = await createTaskstream({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent' });
      const url = await listen(new Hono().route('/', tasks.app));
      const stats = (await (await fetch(`${url}/api/tasks/stats`)).json()) as { workers: { max: number } };
      expect(stats.workers.max).toBe(1);
    } finally {
      delete process.env.MAX_WORKERS;
    }
  });

  it('refuses a task module that fails to import, naming the file', async () => {
    await expect(createTaskstream({ tasks: ['test/fixtures/modules/throws'], logLevel: 'silent' })).rejects.toThrow(TaskModuleError);
    await expect(createTaskstream({ tasks: ['test/fixtures/modules/throws'], logLevel: 'silent' })).rejects.toThrow(/explodes\.ts: failed to import/);
  });
});

describe('programmatic use', () => {
  it('starts a typed task, follows its events to the terminal one, waits, gets, lists and cancels', async () => {
    const typed = await createTaskstream<typeof greet>({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent' });
    tasks = typed;
    const task = await typed.start('greet', { name: 'Grace' });
    expect(task).toMatchObject({ type: 'greet', status: 'queued', stream_url: `/api/tasks/${task.task_id}/events` });

    const seen: string[] = [];
    await withTimeout(
      (async () => {
        for await (const event of typed.events(task.task_id)) seen.push(event.event_type);
      })(),
      'events() to end after the terminal event',
    );
    expect(seen).toEqual(['task_started', 'progress_update', 'task_completed']);
    const late: number[] = [];
    for await (const event of typed.events(task.task_id, { after: 1 })) late.push(event.seq);
    expect(late).toEqual([2, 3]);

    expect(await typed.wait(task.task_id)).toMatchObject({ status: 'completed', result: { greeting: 'Hello, Grace!' } });
    expect((await typed.get(task.task_id)).status).toBe('completed');
    expect((await typed.list({ type: 'greet' })).tasks.map((listed) => listed.task_id)).toEqual([task.task_id]);

    await expect(typed.start('greet', { name: '' })).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(typed.cancel(task.task_id)).rejects.toMatchObject({ code: 'task_already_ended' });
  });
});

describe('mounted under /jobs', () => {
  it('in a Hono app: a domain route starts a task whose stream_url and Location carry the prefix', async () => {
    tasks = await createTaskstream({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent', basePath: '/jobs' });
    const app = new Hono();
    app.route('/jobs', tasks.app);
    app.post('/api/people/:name/greet', async (c) => {
      const task = await tasks!.start('greet', { name: c.req.param('name') });
      return c.json({ task_id: task.task_id, stream_url: task.stream_url }, 201);
    });
    const url = await listen(app);

    const started = await post(`${url}/api/people/Ada/greet`, {});
    expect(started.json.stream_url).toBe(`/jobs/api/tasks/${started.json.task_id}/events`);
    const events = await (await SseClient.connect(`${url}${started.json.stream_url}`)).untilEnd();
    expect(events.at(-1)!.json).toMatchObject({ event_type: 'task_completed', data: { result: { greeting: 'Hello, Ada!' } } });

    const direct = await post(`${url}/jobs/api/tasks`, { type: 'double', input: { n: 2 } });
    expect(direct.response.status).toBe(201);
    expect(direct.response.headers.get('location')).toBe(`/jobs/api/tasks/${direct.json.task_id}`);
    expect(direct.json.stream_url).toBe(`/jobs/api/tasks/${direct.json.task_id}/events`);

    const page = await (await fetch(`${url}/jobs`)).text();
    expect(page).toContain('<base href="/jobs/">');
    expect((await fetch(`${url}/jobs/app.js`)).status).toBe(200);
    expect(await (await fetch(`${url}/jobs/docs`)).text()).toContain('<script src="/jobs/docs/init.js">');
    expect(parse(await (await fetch(`${url}/jobs/openapi.yaml`)).text()).servers).toEqual([{ url: '/jobs' }]);
    expect((await fetch(`${url}/app.js`)).status).toBe(404);
  });

  it('every stream_url and Location carries the prefix: the all-tasks stream\'s task_created, bulk create and retry', async () => {
    tasks = await createTaskstream({ tasks: [USER_TASKS], withExamples: true, maxWorkers: 1, logLevel: 'silent', basePath: '/jobs' });
    const url = await listen(new Hono().route('/jobs', tasks.app));
    const all = await SseClient.connect(`${url}/jobs/api/events`);
    try {
      const direct = await post(`${url}/jobs/api/tasks`, { type: 'greet', input: { name: 'Ada' } });
      const [created] = await all.waitFor((events) => events.some((event) => event.event === 'task_created'), 'task_created');
      expect(created!.json.data.task).toMatchObject({ task_id: direct.json.task_id, stream_url: direct.json.stream_url });
      expect(created!.json.data.task.stream_url).toBe(`/jobs/api/tasks/${direct.json.task_id}/events`);
      const followed = await (await SseClient.connect(`${url}${created!.json.data.task.stream_url}`)).untilEnd();
      expect(followed.at(-1)!.json.event_type).toBe('task_completed');

      const batch = await post(`${url}/jobs/api/tasks/batch`, { items: [{ type: 'double', input: { n: 1 } }] });
      expect(batch.response.status).toBe(200);
      const item = batch.json.items[0].task;
      expect(item.stream_url).toBe(`/jobs/api/tasks/${item.task_id}/events`);
      const itemEvents = await (await SseClient.connect(`${url}${item.stream_url}`)).untilEnd();
      expect(itemEvents.at(-1)!.json.event_type).toBe('task_completed');

      const long = await post(`${url}/jobs/api/tasks`, { type: 'sample', input: { steps: 100, step_ms: 1000 } });
      expect((await post(`${url}/jobs/api/tasks/${long.json.task_id}/cancel`, {})).response.status).toBe(202);
      expect(await withTimeout(tasks.wait(long.json.task_id), 'the cancelled task to end')).toMatchObject({ status: 'cancelled' });
      const retried = await post(`${url}/jobs/api/tasks/${long.json.task_id}/retry`, {});
      expect(retried.response.status).toBe(201);
      expect(retried.response.headers.get('location')).toBe(`/jobs/api/tasks/${retried.json.task_id}`);
      expect(retried.json.stream_url).toBe(`/jobs/api/tasks/${retried.json.task_id}/events`);
      await post(`${url}/jobs/api/tasks/${retried.json.task_id}/cancel`, {});
    } finally {
      all.close();
    }
  });

  it('with API keys, task_created and a minted stream token name streams under the prefix that open with no header', async () => {
    const key = 'alice-key-0123456789abcdef';
    tasks = await createTaskstream({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent', basePath: '/jobs', apiKeys: `alice:${key}` });
    const url = await listen(new Hono().route('/jobs', tasks.app));
    const auth = { authorization: `Bearer ${key}` };
    const minted = await fetch(`${url}/jobs/api/stream-tokens`, { method: 'POST', headers: auth });
    const { stream_url: allUrl } = (await minted.json()) as { stream_url: string };
    expect(allUrl).toMatch(/^\/jobs\/api\/events\?token=/);
    const all = await SseClient.connect(`${url}${allUrl}`);
    try {
      const response = await fetch(`${url}/jobs/api/tasks`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'greet', input: { name: 'Ada' } }),
      });
      const task = (await response.json()) as { task_id: string };
      const [created] = await all.waitFor((events) => events.some((event) => event.event === 'task_created'), 'task_created');
      const streamUrl: string = created!.json.data.task.stream_url;
      expect(streamUrl.startsWith(`/jobs/api/tasks/${task.task_id}/events?token=`), streamUrl).toBe(true);
      const followed = await (await SseClient.connect(`${url}${streamUrl}`)).untilEnd();
      expect(followed.at(-1)!.json.event_type).toBe('task_completed');
    } finally {
      all.close();
    }
  });

  it('finds its mount path from requests when basePath is not given', async () => {
    tasks = await createTaskstream({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent' });
    const url = await listen(new Hono().route('/deep/jobs', tasks.app));
    const direct = await post(`${url}/deep/jobs/api/tasks`, { type: 'double', input: { n: 2 } });
    expect(direct.response.headers.get('location')).toBe(`/deep/jobs/api/tasks/${direct.json.task_id}`);
    const later = await tasks.start('double', { n: 3 });
    expect(later.stream_url).toBe(`/deep/jobs/api/tasks/${later.task_id}/events`);
  });

  it('in a plain node:http server through handler', async () => {
    tasks = await createTaskstream({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent', basePath: '/jobs' });
    const handler = tasks.handler;
    server = createServer((request, response) => {
      if (request.url!.startsWith('/jobs')) return handler(request, response);
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => (server as Server).listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${((server as Server).address() as AddressInfo).port}`;

    const created = await post(`${url}/jobs/api/tasks`, { type: 'greet', input: { name: 'Lin' } });
    expect(created.response.status).toBe(201);
    expect(created.response.headers.get('location')).toBe(`/jobs/api/tasks/${created.json.task_id}`);
    const events = await (await SseClient.connect(`${url}${created.json.stream_url}`)).untilEnd();
    expect(events.map((event) => event.json.event_type)).toEqual(['task_started', 'progress_update', 'task_completed']);
    // The dashboard, at the mount path with or without its trailing slash.
    for (const page of ['/jobs', '/jobs/']) {
      const dashboard = await fetch(`${url}${page}`);
      expect(dashboard.status, page).toBe(200);
      expect(await dashboard.text(), page).toContain('<base href="/jobs/">');
    }
    const missing = await fetch(`${url}/jobs/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/problem\+json/);
  });
});
