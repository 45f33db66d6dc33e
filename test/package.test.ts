// The package as a user gets it: packed with `npm pack`, installed offline into a fresh
// project with its own task types, and used each of the three ways in.
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startDropProxy } from './helpers/drop-proxy.ts';
import { projectRoot } from './helpers/process.ts';
import { packAndInstall, runInConsumer, startConsumer, type ConsumerProcess, type PackedProject } from './helpers/packed.ts';
import { SseClient } from './helpers/sse.ts';
import { withTimeout } from './helpers/timeout.ts';

const fixture = join(projectRoot, 'test/fixtures/consumer');
let project: PackedProject;
const taskstreamBin = () => join(project.dir, 'node_modules/.bin/taskstream');

beforeAll(async () => {
  project = await packAndInstall(fixture, ['hono', '@hono/node-server', 'typescript', '@types/node']);
  console.log(
    `taskstream package: ${(project.packedBytes / 1024).toFixed(0)} KiB packed, ${(project.installedBytes / 1024).toFixed(0)} KiB installed`,
  );
}, 300_000);
afterAll(() => project?.remove());

async function postJson(url: string, body: unknown) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { response, json: (await response.json()) as any };
}

async function followToEnd(url: string) {
  const events = await (await SseClient.connect(url)).untilEnd();
  return events.map((event) => event.json);
}

describe('npx taskstream --tasks ./tasks, from the installed package', { timeout: 120_000 }, () => {
  let service: ConsumerProcess;
  beforeAll(async () => {
    service = await startConsumer(project.dir, 'npx', ['--no-install', 'taskstream', '--tasks', './tasks', '--port', '0', '--max-workers', '2']);
  }, 60_000);
  afterAll(async () => {
    // npx itself ends by the signal it forwards; what matters is that the service went away.
    expect(await service?.stop(), 'the service to stop on SIGTERM').not.toBe('killed');
  });

  it('runs the project\'s TypeScript and JavaScript task types to their terminal events over SSE', async () => {
    const resize = await postJson(`${service.url}/api/tasks`, { type: 'resize', input: { id: 'cat', width: 320 } });
    expect(resize.response.status).toBe(201);
    expect(resize.response.headers.get('location')).toBe(`/api/tasks/${resize.json.task_id}`);
    const resizeEvents = await followToEnd(`${service.url}${resize.json.stream_url}`);
    expect(resizeEvents.map((event) => event.event_type)).toEqual([
      'task_started',
      'progress_update',
      'progress_update',
      'progress_update',
      'task_completed',
    ]);
    expect(resizeEvents.at(-1).data).toEqual({ result: { id: 'cat', width: 320 } });

    const count = await postJson(`${service.url}/api/tasks`, { type: 'count_words', input: { text: 'to be or not to be' } });
    expect(count.response.status).toBe(201);
    const countEvents = await followToEnd(`${service.url}${count.json.stream_url}`);
    expect(countEvents.at(-1)).toMatchObject({ event_type: 'task_completed', data: { result: { words: 6 } } });
  });

  it('describes the loaded task types, and only those, in /api/task-types and /openapi.yaml', async () => {
    const types = (await (await fetch(`${service.url}/api/task-types`)).json()) as { task_types: { type: string; example: unknown }[] };
    expect(types.task_types.map((taskType) => taskType.type).sort()).toEqual(['count_words', 'resize']);
    expect(types.task_types.find((taskType) => taskType.type === 'resize')!.example).toEqual({ id: 'cat', width: 640 });
    const spec = parse(await (await fetch(`${service.url}/openapi.yaml`)).text());
    expect(spec.components.schemas.CreateResizeTask.properties.input.properties.width).toMatchObject({ type: 'integer', maximum: 4096 });
    expect(Object.keys(spec.components.schemas)).not.toContain('CreateSampleTask');
  });

  it('serves the dashboard and the Swagger UI assets from inside the package', async () => {
    const page = await fetch(`${service.url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="app.js">');
    await expectDashboardModules(service.url);
    const docs = await fetch(`${service.url}/docs`);
    expect(docs.status).toBe(200);
    const bundle = await fetch(`${service.url}/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.text()).length).toBeGreaterThan(100_000);
  });

  it('resumes a watch() of taskstream/client across a dropped connection with no gap and no duplicate', async () => {
    const { createClient } = (await import(pathToFileURL(join(project.dir, 'node_modules/taskstream/dist/client/index.js')).href)) as typeof import('../client/index.ts');
    const proxy = await startDropProxy(Number(new URL(service.url).port));
    try {
      const client = createClient(proxy.url, { reconnectDelayMs: 50 });
      const created = await client.POST('/api/tasks', {
        body: { type: 'resize', input: { id: 'dog', width: 100, steps: 8, step_ms: 150 } } as never,
      });
      expect(created.response.status).toBe(201);
      const seqs: number[] = [];
      const types: string[] = [];
      await withTimeout(
        (async () => {
          for await (const event of client.watch(created.data!.task_id)) {
            seqs.push(event.seq);
            types.push(event.event_type);
            if (seqs.length === 3) proxy.dropAll(); // mid-task: the next events come on a new connection
          }
        })(),
        'watch() to reach the terminal event',
        30_000,
      );
      expect(proxy.connections).toBeGreaterThanOrEqual(2);
      expect(seqs).toEqual(Array.from({ length: 10 }, (_, index) => index + 1));
      expect(types.at(-1)).toBe('task_completed');
    } finally {
      proxy.close();
    }
  });
});

describe('createTaskstream mounted under /jobs', () => {
  it('in a Hono app: a domain route starts a task whose stream_url works; Location, dashboard, docs and spec carry /jobs', async () => {
    const app = await startConsumer(project.dir, 'node', ['hono-app.mjs']);
    try {
      const started = await postJson(`${app.url}/api/images/cat-42/resize`, {});
      expect(started.response.status).toBe(201);
      expect(started.json.stream_url).toBe(`/jobs/api/tasks/${started.json.task_id}/events`);
      const events = await followToEnd(`${app.url}${started.json.stream_url}`);
      expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(events.at(-1)).toMatchObject({ event_type: 'task_completed', data: { result: { id: 'cat-42', width: 640 } } });

      const direct = await postJson(`${app.url}/jobs/api/tasks`, { type: 'resize', input: { id: 'a', width: 10, steps: 1 } });
      expect(direct.response.status).toBe(201);
      expect(direct.response.headers.get('location')).toBe(`/jobs/api/tasks/${direct.json.task_id}`);
      expect(direct.json.stream_url).toBe(`/jobs/api/tasks/${direct.json.task_id}/events`);
      expect((await fetch(`${app.url}${direct.response.headers.get('location')}`)).status).toBe(200);

      await expectMountedPages(app.url, '/jobs');
    } finally {
      expect(await app.stop()).toBe(0);
    }
  }, 120_000);

  it('in a plain node:http server through tasks.handler', async () => {
    const app = await startConsumer(project.dir, 'node', ['http-app.mjs']);
    try {
      const response = await fetch(`${app.url}/count`, { method: 'POST' });
      expect(response.status).toBe(201);
      const body = (await response.json()) as { task_id: string; stream_url: string; status: string; result: unknown };
      expect(body).toMatchObject({ status: 'completed', result: { words: 4 } });
      expect(body.stream_url).toBe(`/jobs/api/tasks/${body.task_id}/events`);
      const events = await followToEnd(`${app.url}${body.stream_url}`);
      expect(events.at(-1)).toMatchObject({ event_type: 'task_completed', data: { result: { words: 4 } } });

      const direct = await postJson(`${app.url}/jobs/api/tasks`, { type: 'resize', input: { id: 'b', width: 10, steps: 1 } });
      expect(direct.response.status).toBe(201);
      expect(direct.response.headers.get('location')).toBe(`/jobs/api/tasks/${direct.json.task_id}`);
      await expectMountedPages(app.url, '/jobs');
    } finally {
      expect(await app.stop()).toBe(0);
    }
  }, 120_000);
});

/** Every ES module of the dashboard is in the package and served as JavaScript at `base`. */
async function expectDashboardModules(base: string) {
  const modules = readdirSync(join(projectRoot, 'web')).filter((file) => file.endsWith('.js'));
  expect(modules).toContain('app.js');
  for (const file of modules) {
    const response = await fetch(`${base}/${file}`);
    expect(response.status, file).toBe(200);
    expect(response.headers.get('content-type'), file).toMatch(/^text\/javascript/);
  }
}

async function expectMountedPages(origin: string, prefix: string) {
  const dashboard = await fetch(`${origin}${prefix}`);
  expect(dashboard.status).toBe(200);
  expect(await dashboard.text()).toContain(`<base href="${prefix}/">`);
  await expectDashboardModules(`${origin}${prefix}`);
  const docs = await fetch(`${origin}${prefix}/docs`);
  expect(docs.status).toBe(200);
  expect(await docs.text()).toContain(`<script src="${prefix}/docs/init.js">`);
  expect((await fetch(`${origin}${prefix}/docs/swagger-ui-bundle.js`)).status).toBe(200);
  const spec = parse(await (await fetch(`${origin}${prefix}/openapi.yaml`)).text());
  expect(spec.servers).toEqual([{ url: prefix }]);
  const types = (await (await fetch(`${origin}${prefix}/api/task-types`)).json()) as { task_types: { type: string }[] };
  expect(types.task_types.map((taskType) => taskType.type)).toContain('resize');
}

describe('a task module that cannot be loaded, with the installed command', { timeout: 120_000 }, () => {
  const cases = [
    { name: 'throws on import', dir: './broken/throws', file: 'explodes.js', says: 'the database is not configured' },
    { name: 'exports no defineTask', dir: './broken/nothing', file: 'helper.js', says: 'must default-export a defineTask' },
    { name: 'repeats a type name', dir: './broken/duplicate', file: 'resize-again.js', says: 'declares task type "resize", already declared by' },
  ];
  for (const { name, dir, file, says } of cases) {
    it(`stops when one ${name}, naming the file, with a non-zero exit`, async () => {
      const { code, stdout, stderr } = await runInConsumer(project.dir, taskstreamBin(), ['--tasks', './tasks', '--tasks', dir, '--port', '0']);
      expect(code).not.toBe(0);
      expect(stderr).toContain(join(project.dir, dir, file));
      expect(stderr).toContain(says);
      expect(stdout).not.toContain('listening');
    });
  }
});

describe('Redis mode, from the installed package', { timeout: 120_000 }, () => {
  it('without the optional bullmq package, --redis-url stops with a message saying what to install', async () => {
    const installed = join(project.dir, 'node_modules', 'bullmq');
    const hidden = join(project.dir, 'node_modules', '.bullmq-hidden');
    expect(existsSync(installed), 'bullmq is installed with the package by default').toBe(true);
    renameSync(installed, hidden);
    try {
      const { code, stdout, stderr } = await runInConsumer(project.dir, taskstreamBin(), ['--tasks', './tasks', '--port', '0', '--redis-url', 'redis://127.0.0.1:6379']);
      expect(code).toBe(2);
      expect(stderr).toContain('npm install bullmq');
      expect(stdout).not.toContain('listening');
    } finally {
      renameSync(hidden, installed);
    }
  });
});

describe('types for a consumer', () => {
  it('tsc accepts start() with the right input and rejects a wrong one (@ts-expect-error)', async () => {
    const { code, stdout, stderr } = await runInConsumer(project.dir, 'node', ['node_modules/typescript/bin/tsc', '-p', '.'], 120_000);
    expect(`${stdout}${stderr}`).toBe('');
    expect(code).toBe(0);
  }, 150_000);
});
