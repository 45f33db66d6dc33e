import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { projectRoot, spawnService, type ServiceProcess } from './helpers/process.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

const json = { 'content-type': 'application/json' };

async function create(base: string, body: unknown): Promise<any> {
  const response = await fetch(`${base}/api/tasks`, { method: 'POST', headers: json, body: JSON.stringify(body) });
  expect(response.status).toBe(201);
  return response.json();
}

describe('graceful shutdown of the real process', () => {
  let service: ServiceProcess | undefined;
  afterEach(() => service?.kill());

  it('lets a running task finish within the grace period, then exits 0', async () => {
    service = await spawnService('source', { SHUTDOWN_GRACE_MS: '30000' });
    const task = await create(service.url, { type: 'sample', input: { steps: 3, step_ms: 100 } });
    const stream = await SseClient.connect(`${service.url}${task.stream_url}`);
    await stream.waitFor((events) => events.length >= 1, 'task_started');
    service.child.kill('SIGTERM');
    const events = await stream.untilEnd('the stream to end', 20_000);
    expect(events.at(-1)!.event).toBe('task_completed');
    expect(await withTimeout(service.exited, 'the process to exit', 20_000)).toBe(0);
  });

  it('refuses new work at once, cancels what outlives the grace with reason shutdown, and exits 0', async () => {
    service = await spawnService('source', { SHUTDOWN_GRACE_MS: '300', CANCEL_GRACE_MS: '300' });
    const cooperative = await create(service.url, { type: 'sample', input: { steps: 1000, step_ms: 1000 } });
    const cpuBound = await create(service.url, { type: 'primes', input: { limit: 100_000_000_000 } });
    const streams = await Promise.all(
      [cooperative, cpuBound].map((task) => SseClient.connect(`${service!.url}${task.stream_url}`)),
    );
    for (const stream of streams) await stream.waitFor((events) => events.length >= 1, 'task_started');

    service.child.kill('SIGTERM');
    await until(async () => (await fetch(`${service!.url}/readyz`)).status === 503, '/readyz to turn 503');
    const refused = await fetch(`${service.url}/api/tasks`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ type: 'sample', input: {} }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(((await refused.json()) as { code: string }).code).toBe('shutting_down');

    for (const stream of streams) {
      const events = await stream.untilEnd('the stream to end with its terminal event', 20_000);
      expect(events.at(-1)!.event).toBe('task_cancelled');
      expect(events.at(-1)!.json.data).toEqual({ reason: 'shutdown' });
      expect(events.filter((event) => event.event?.startsWith('task_') && event.event !== 'task_started')).toHaveLength(1);
    }
    expect(await withTimeout(service.exited, 'the process to exit', 20_000)).toBe(0);
    const done = service.logs.find((line) => line.msg === 'shut down');
    expect(done?.durationMs).toEqual(expect.any(Number));
  });

  it('exits at once on a second signal', async () => {
    service = await spawnService('source', { SHUTDOWN_GRACE_MS: '600000' });
    const task = await create(service.url, { type: 'sample', input: { steps: 1000, step_ms: 1000 } });
    const stream = await SseClient.connect(`${service.url}${task.stream_url}`);
    await stream.waitFor((events) => events.length >= 1, 'task_started');
    service.child.kill('SIGTERM');
    await until(async () => (await fetch(`${service!.url}/readyz`)).status === 503, '/readyz to turn 503');
    service.child.kill('SIGINT');
    expect(await withTimeout(service.exited, 'the process to exit on the second signal')).toBe(1);
    stream.close();
  });
});

describe('task modules of the real process', () => {
  let service: ServiceProcess | undefined;
  afterEach(() => service?.kill());

  it('runs the task types named in TASK_MODULES instead of the built-in ones', async () => {
    service = await spawnService('source', { TASK_MODULES: 'test/fixtures/throws.ts, workers/tasks/sample.ts' });
    const { task_types } = (await (await fetch(`${service.url}/api/task-types`)).json()) as { task_types: { type: string }[] };
    expect(task_types.map((info) => info.type).sort()).toEqual(['sample', 'throws']);

    const task = await create(service.url, { type: 'throws', input: { message: 'from a named module' } });
    const stream = await SseClient.connect(`${service.url}${task.stream_url}`);
    const events = await stream.untilEnd('the throws task to end', 20_000);
    expect(events.at(-1)!.json.data.error).toEqual({ code: 'task_error', message: 'from a named module' });
    const refused = await fetch(`${service.url}/api/tasks`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ type: 'primes', input: { limit: 10 } }),
    });
    expect(refused.status).toBe(422);
  });
});

describe('probes, metrics and logs', () => {
  let server: TestServer | undefined;
  afterEach(async () => server?.close());

  it('answers /healthz and /readyz while running', async () => {
    server = await startTestServer();
    expect(await (await server.api('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await server.api('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('exposes task, queue, worker and stream metrics in Prometheus format', async () => {
    server = await startTestServer({ MAX_WORKERS: '2' });
    const ok = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
    const bad = await server.create({ type: 'throws', input: {} });
    for (const task of [ok, bad]) await (await SseClient.connect(`${server.url}${task.stream_url}`)).untilEnd();
    const blocker = await server.create({ type: 'block', input: {} });
    const open = await SseClient.connect(`${server.url}${blocker.stream_url}`);
    await open.waitFor((events) => events.length >= 1, 'task_started');

    const response = await server.api('/metrics');
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const value = (series: string) => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('taskstream_tasks_total{type="sample",status="completed"}')).toBe(1);
    expect(value('taskstream_tasks_total{type="throws",status="failed"}')).toBe(1);
    expect(value('taskstream_tasks_created_total{type="block"}')).toBe(1);
    expect(value('taskstream_task_duration_seconds_count{type="sample",status="completed"}')).toBe(1);
    expect(value('taskstream_task_queue_wait_seconds_count{type="sample"}')).toBe(1);
    expect(value('taskstream_events_published_total{event_type="progress_update"}')).toBe(2);
    expect(value('taskstream_workers')).toBe(2);
    expect(value('taskstream_workers_busy')).toBe(1);
    expect(value('taskstream_queue_depth')).toBe(0);
    expect(value('taskstream_open_streams')).toBe(1);
    expect(text).toMatch(/^taskstream_process_cpu_user_seconds_total /m);
    open.close();
  });

  it('counts a retried task once as created and once in the queue wait, and each attempt on its own', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'throws', input: {}, max_attempts: 3, retry_backoff_ms: 0 });
    const events = await (await SseClient.connect(`${server.url}${task.stream_url}`)).untilEnd('three attempts to fail');
    expect(events.filter((event) => event.event === 'task_started')).toHaveLength(3);

    const text = await (await server.api('/metrics')).text();
    const value = (series: string) => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('taskstream_tasks_created_total{type="throws"}')).toBe(1);
    expect(value('taskstream_task_queue_wait_seconds_count{type="throws"}')).toBe(1);
    expect(value('taskstream_task_attempts_total{type="throws"}')).toBe(3);
    expect(value('taskstream_tasks_total{type="throws",status="failed"}')).toBe(1);
  });

  it('logs one line per request without its query string, and one per task transition', async () => {
    const lines: Record<string, any>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    server = await startTestServer({}, { logger: pino({ level: 'info' }, sink) });
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const stream = await SseClient.connect(`${server.url}${task.stream_url}?last_event_id=0`, { 'x-request-id': 'req-42' });
    await stream.untilEnd();

    await until(() => lines.some((line) => line.msg === 'request' && line.requestId === 'req-42'), 'the stream request log');
    const streamLine = lines.find((line) => line.requestId === 'req-42')!;
    expect(streamLine).toMatchObject({ method: 'GET', route: '/api/tasks/:task_id/events', status: 200 });
    expect(streamLine.durationMs).toEqual(expect.any(Number));
    expect(JSON.stringify(lines)).not.toContain('last_event_id');

    const created = lines.find((line) => line.msg === 'request' && line.method === 'POST')!;
    expect(created).toMatchObject({ route: '/api/tasks', status: 201 });
    const transitions = lines.filter((line) => line.msg === 'task' && line.taskId === task.task_id);
    expect(transitions.map((line) => line.status)).toEqual(['queued', 'running', 'completed']);
    expect(transitions[2]).toMatchObject({ type: 'sample', durationMs: expect.any(Number) });
  });
});

describe('compiled build', () => {
  let service: ServiceProcess | undefined;
  afterEach(() => service?.kill());

  it('builds to dist/ and runs tasks from compiled JavaScript, with no TypeScript loader', async () => {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: projectRoot, stdio: 'pipe' });
    service = await spawnService('dist');
    expect(service.child.spawnargs.join(' ')).not.toContain('tsx');
    const task = await create(service.url, { type: 'primes', input: { limit: 1_000_000 } });
    const events = await (await SseClient.connect(`${service.url}${task.stream_url}`)).untilEnd();
    expect(events.at(-1)!.json.data).toEqual({ result: { count: 78498 } });
    const spec = await fetch(`${service.url}/openapi.yaml`);
    expect(spec.status).toBe(200);
    expect(await spec.text()).toMatch(/^openapi: 3\.1\.0/);
  }, 180_000);
});
