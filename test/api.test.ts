import { afterEach, describe, expect, it } from 'vitest';
import type { Problem } from './helpers/harness.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';

let server: TestServer | undefined;
const clients: SseClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = undefined;
});

const JSON_HEADERS = { 'content-type': 'application/json' };

/** A response's JSON body, untyped: tests assert its shape. */
const json = (response: Response): Promise<any> => response.json();

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TERMINAL = ['completed', 'failed', 'cancelled'];
const CONTRACT_FIELDS = [
  'task_id',
  'type',
  'status',
  'input',
  'progress',
  'result',
  'error',
  'created_at',
  'started_at',
  'finished_at',
  'expires_at',
  'timeout_ms',
  'stream_url',
];


const post = (path: string, body: unknown, headers: Record<string, string> = JSON_HEADERS) =>
  server!.api(path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** Nothing internal reaches a client: no stack frames, no source paths. */
function expectNothingInternal(text: string): void {
  expect(text).not.toContain('/work/');
  expect(text).not.toContain('.ts:');
  expect(text).not.toContain('    at ');
  expect(text).not.toMatch(/node_modules|file:\/\//);
}

/** Asserts an RFC 9457 problem answer and returns its body. */
async function expectProblem(response: Response, status: number, code?: string): Promise<Problem> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json\b/);
  expectNothingInternal(text);
  const problem = JSON.parse(text) as Problem;
  expect(problem).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    detail: expect.any(String),
    code: expect.stringMatching(/^[a-z]+(_[a-z]+)*$/),
  });
  expect(problem.type).not.toBe('');
  expect(problem.title).not.toBe('');
  expect(problem.detail).not.toBe('');
  if (code !== undefined) expect(problem.code).toBe(code);
  return problem;
}

const pointers = (problem: Problem) => (problem.errors ?? []).map((error) => error.pointer);

async function connect(path: string): Promise<SseClient> {
  const client = await SseClient.connect(`${server!.url}${path}`);
  clients.push(client);
  return client;
}

/** Waits (on the task's stream) for the task to end, then returns its snapshot. */
async function ended(task: { task_id: string; stream_url: string }, ms = 20_000): Promise<any> {
  const stream = await connect(task.stream_url);
  expect(stream.response.status).toBe(200);
  await stream.untilEnd(`task ${task.task_id} to end`, ms);
  const response = await server!.api(`/api/tasks/${task.task_id}`);
  expect(response.status).toBe(200);
  const snapshot = await json(response);
  expect(TERMINAL).toContain(snapshot.status);
  return snapshot;
}

/** Waits (on the task's stream) until the task has started. */
async function started(task: { task_id: string; stream_url: string }): Promise<void> {
  const stream = await connect(task.stream_url);
  await stream.waitFor((events) => events.some((event) => event.event === 'task_started'), `task ${task.task_id} to start`);
  stream.close();
}

const isIso = (value: unknown) => typeof value === 'string' && new Date(value).toISOString() === value;

describe('POST /api/tasks', () => {
  it('answers 201 with Location and a full snapshot of the queued task, defaults applied', async () => {
    server = await startTestServer();
    const before = Date.now();
    const response = await post('/api/tasks', { type: 'sample', input: {} });
    const after = Date.now();
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const task = await json(response);

    expect(Object.keys(task)).toEqual(expect.arrayContaining(CONTRACT_FIELDS));
    expect(task.task_id).toMatch(UUID_V7);
    expect(response.headers.get('location')).toBe(`/api/tasks/${task.task_id}`);
    expect(task).toMatchObject({
      type: 'sample',
      status: 'queued',
      input: { steps: 5, step_ms: 1000 },
      progress: { value: null, text: null },
      result: null,
      error: null,
      started_at: null,
      finished_at: null,
      expires_at: null,
      timeout_ms: 300_000,
      stream_url: `/api/tasks/${task.task_id}/events`,
    });
    expect(task.input).toEqual({ steps: 5, step_ms: 1000 });
    expect(isIso(task.created_at)).toBe(true);
    const createdAt = Date.parse(task.created_at);
    expect(createdAt).toBeGreaterThanOrEqual(before);
    expect(createdAt).toBeLessThanOrEqual(after);

    // The snapshot GET answers is the same task.
    const read = await server.api(task.stream_url.replace(/\/events$/, ''));
    expect(read.status).toBe(200);
    expect(await json(read)).toMatchObject({ task_id: task.task_id, type: 'sample', input: task.input });
  });

  it('gives UUIDv7 ids that sort by creation', async () => {
    server = await startTestServer();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } })).task_id);
    for (const id of ids) expect(id).toMatch(UUID_V7);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('honours timeout_ms: kept on the task, and the task fails with timeout when it runs longer', async () => {
    // A short grace: how the thread stops does not matter here, only that the outcome is timeout.
    server = await startTestServer({ CANCEL_GRACE_MS: '100' });
    const task = await server.create({ type: 'block', input: {}, timeout_ms: 200 });
    expect(task.timeout_ms).toBe(200);
    const snapshot = await ended(task);
    expect(snapshot).toMatchObject({ status: 'failed', timeout_ms: 200, error: { code: 'timeout' }, result: null });
  });

  it('refuses timeout_ms above MAX_TASK_TIMEOUT_MS with 422 pointing at /timeout_ms', async () => {
    server = await startTestServer({ MAX_TASK_TIMEOUT_MS: '60000', TASK_TIMEOUT_MS: '1000' });
    const atMax = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 }, timeout_ms: 60_000 });
    expect(atMax.timeout_ms).toBe(60_000);
    const defaulted = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(defaulted.timeout_ms).toBe(1000);

    for (const timeout_ms of [60_001, 0, -5, 1.5, 'soon']) {
      const problem = await expectProblem(
        await post('/api/tasks', { type: 'sample', input: {}, timeout_ms }),
        422,
        'validation_failed',
      );
      expect(pointers(problem), `timeout_ms ${timeout_ms}`).toEqual(['/timeout_ms']);
    }
  });
});

describe('validation errors', () => {
  it('answers an unknown type with 422 pointing at /type', async () => {
    server = await startTestServer();
    for (const body of [{ type: 'nope', input: {} }, { input: {} }, { type: 42, input: {} }]) {
      const problem = await expectProblem(await post('/api/tasks', body), 422, 'validation_failed');
      expect(pointers(problem), JSON.stringify(body)).toEqual(['/type']);
      expect(problem.errors![0]!.detail).not.toBe('');
    }
  });

  it('answers bad input with 422 pointing into /input', async () => {
    server = await startTestServer();
    const cases: [unknown, string[]][] = [
      [{ type: 'sample', input: { steps: 0 } }, ['/input/steps']],
      [{ type: 'sample', input: { steps: 'five' } }, ['/input/steps']],
      [{ type: 'sample', input: { steps: 1001 } }, ['/input/steps']],
      [{ type: 'sample', input: { step_ms: -1 } }, ['/input/step_ms']],
      [{ type: 'primes', input: {} }, ['/input/limit']],
      [{ type: 'primes', input: { limit: 1 } }, ['/input/limit']],
      [{ type: 'csv_stats', input: { csv: 'a', delimiter: ';;' } }, ['/input/delimiter']],
      // The quote and line breaks already mean something in CSV.
      [{ type: 'csv_stats', input: { csv: 'a', delimiter: '"' } }, ['/input/delimiter']],
      [{ type: 'csv_stats', input: { csv: 'a', delimiter: '\n' } }, ['/input/delimiter']],
      [{ type: 'sample', input: 'steps=5' }, ['/input']],
    ];
    for (const [body, expected] of cases) {
      const problem = await expectProblem(await post('/api/tasks', body), 422, 'validation_failed');
      expect(pointers(problem), JSON.stringify(body)).toEqual(expected);
    }
    // Several bad fields: one entry each.
    const both = await expectProblem(
      await post('/api/tasks', { type: 'sample', input: { steps: 0, step_ms: 'x' } }),
      422,
      'validation_failed',
    );
    expect(pointers(both).sort()).toEqual(['/input/step_ms', '/input/steps']);
  });

  it('answers an unknown field with 422 that names it', async () => {
    server = await startTestServer();
    const top = await expectProblem(
      await post('/api/tasks', { type: 'sample', input: {}, bogus_field: 1 }),
      422,
      'validation_failed',
    );
    expect(top.errors).toHaveLength(1);
    expect(JSON.stringify(top.errors)).toContain('bogus_field');

    const inner = await expectProblem(
      await post('/api/tasks', { type: 'sample', input: { stepz: 3 } }),
      422,
      'validation_failed',
    );
    expect(inner.errors).toHaveLength(1);
    expect(inner.errors![0]!.pointer).toMatch(/^\/input/);
    expect(JSON.stringify(inner.errors)).toContain('stepz');
  });

  it('answers malformed JSON with 400 malformed_json', async () => {
    server = await startTestServer();
    for (const body of ['{"type": "sample", "input": {', 'not json', '']) {
      const problem = await expectProblem(await post('/api/tasks', body), 400, 'malformed_json');
      expect(problem.status).toBe(400);
    }
  });

  it('answers a body that is not an object with a problem, never 500', async () => {
    server = await startTestServer();
    for (const body of ['null', '[]', '42', '"sample"']) {
      const response = await post('/api/tasks', body);
      expect([400, 422], body).toContain(response.status);
      await expectProblem(response, response.status);
    }
  });

  it('answers a non-JSON content type with 415', async () => {
    server = await startTestServer();
    const body = JSON.stringify({ type: 'sample', input: {} });
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp']) {
      await expectProblem(await post('/api/tasks', body, { 'content-type': contentType }), 415, 'unsupported_media_type');
    }
    // No content type at all.
    await expectProblem(await server.api('/api/tasks', { method: 'POST', body: new Uint8Array(Buffer.from(body)) }), 415);
    // JSON with a charset, or a +json type, is fine.
    for (const contentType of ['application/json; charset=utf-8', 'application/vnd.api+json']) {
      expect((await post('/api/tasks', { type: 'sample', input: { steps: 1, step_ms: 0 } }, { 'content-type': contentType })).status).toBe(201);
    }
  });

  it('answers a body over BODY_LIMIT_BYTES with 413, with or without Content-Length, and creates nothing', async () => {
    server = await startTestServer({ BODY_LIMIT_BYTES: '1024' });
    const big = JSON.stringify({ type: 'csv_stats', input: { csv: 'x'.repeat(2000) } });
    await expectProblem(await post('/api/tasks', big), 413, 'payload_too_large');

    // Chunked, so the server cannot tell from the headers.
    const chunked = await server.api('/api/tasks', {
      method: 'POST',
      headers: JSON_HEADERS,
      body: new ReadableStream({
        start(controller) {
          const bytes = new TextEncoder().encode(big);
          for (let i = 0; i < bytes.length; i += 256) controller.enqueue(bytes.slice(i, i + 256));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    await expectProblem(chunked, 413, 'payload_too_large');

    const list = await json(await server.api('/api/tasks'));
    expect(list.tasks).toEqual([]);

    // Just under the limit is fine.
    const small = JSON.stringify({ type: 'csv_stats', input: { csv: 'x'.repeat(900) } });
    expect(Buffer.byteLength(small)).toBeLessThanOrEqual(1024);
    expect((await post('/api/tasks', small)).status).toBe(201);
  });

  it('answers an unknown task id with 404 task_not_found on read, cancel, delete and events', async () => {
    server = await startTestServer();
    for (const id of ['0190a5f4-0000-7000-8000-000000000000', 'not-a-uuid']) {
      const requests: [string, RequestInit][] = [
        [`/api/tasks/${id}`, {}],
        [`/api/tasks/${id}/cancel`, { method: 'POST' }],
        [`/api/tasks/${id}`, { method: 'DELETE' }],
        [`/api/tasks/${id}/events`, { headers: { accept: 'text/event-stream' } }],
      ];
      for (const [path, init] of requests) {
        const problem = await expectProblem(await server.api(path, init), 404, 'task_not_found');
        expect(problem.detail).toContain(id);
      }
    }
  });

  it('answers an unknown route with a 404 problem', async () => {
    server = await startTestServer();
    // A known path with a method it does not answer is a 405: see methods.test.ts.
    for (const [path, method] of [
      ['/nope', 'GET'],
      ['/api/nope', 'GET'],
      ['/api/tasks/x/y/z', 'GET'],
      ['/api/tasks/x/y/z', 'PUT'],
    ] as const) {
      await expectProblem(await server.api(path, { method }), 404, 'not_found');
    }
    await expectProblem(await server.api('/definitely/not/here'), 404, 'not_found');
  });
});

describe('GET /api/tasks', () => {
  it('lists newest first and filters by status and type', async () => {
    server = await startTestServer({ MAX_WORKERS: '2' });
    const done1 = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const done2 = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const failed = await server.create({ type: 'throws', input: { message: 'listed' } });
    await Promise.all([done1, done2, failed].map((task) => ended(task)));
    const running1 = await server.create({ type: 'block', input: {} });
    const running2 = await server.create({ type: 'block', input: {} });
    await Promise.all([running1, running2].map((task) => started(task)));
    const queued = await server.create({ type: 'block', input: {} });

    const ids = async (query: string) => {
      const response = await server!.api(`/api/tasks${query}`);
      expect(response.status, query).toBe(200);
      const body = await json(response);
      expect(body.next_cursor, query).toBeNull();
      return body.tasks.map((task: { task_id: string }) => task.task_id);
    };
    const newestFirst = [queued, running2, running1, failed, done2, done1].map((task) => task.task_id);
    expect(await ids('')).toEqual(newestFirst);
    expect(await ids('?status=completed')).toEqual([done2.task_id, done1.task_id]);
    expect(await ids('?status=failed')).toEqual([failed.task_id]);
    expect(await ids('?status=running')).toEqual([running2.task_id, running1.task_id]);
    expect(await ids('?status=queued')).toEqual([queued.task_id]);
    expect(await ids('?status=cancelled')).toEqual([]);
    expect(await ids('?type=block')).toEqual([queued.task_id, running2.task_id, running1.task_id]);
    expect(await ids('?type=sample&status=completed')).toEqual([done2.task_id, done1.task_id]);
    expect(await ids('?type=block&status=completed')).toEqual([]);
    expect(await ids('?type=no_such_type')).toEqual([]);

    // Each listed task is a full snapshot.
    const body = await json(await server.api('/api/tasks?status=failed'));
    expect(body.tasks[0]).toMatchObject({ task_id: failed.task_id, status: 'failed', error: { code: 'task_error', message: 'listed' } });
    expect(Object.keys(body.tasks[0])).toEqual(expect.arrayContaining(CONTRACT_FIELDS));
  });

  it('walks every task exactly once with limit and cursor, ending with next_cursor null', async () => {
    server = await startTestServer();
    await server.api('/api/queue/pause', { method: 'POST' }); // keep them all queued: nothing to wait for
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } })).task_id);
    const newestFirst = [...created].reverse();

    for (const limit of [1, 2, 3, 6, 7, 8, 1000]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `?limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
        const response = await server.api(`/api/tasks${query}`);
        expect(response.status, query).toBe(200);
        const page: { tasks: { task_id: string }[]; next_cursor: string | null } = await json(response);
        expect(page.tasks.length, query).toBeLessThanOrEqual(limit);
        expect(page.tasks.length, `no empty page (${query})`).toBeGreaterThan(0);
        seen.push(...page.tasks.map((task) => task.task_id));
        cursor = page.next_cursor;
        pages++;
        expect(pages, 'pages').toBeLessThanOrEqual(created.length);
      } while (cursor !== null);
      expect(seen, `limit ${limit}`).toEqual(newestFirst);
      expect(pages, `limit ${limit}`).toBe(Math.ceil(created.length / limit));
    }

    // A cursor combines with a filter.
    const first = await json(await server.api('/api/tasks?status=queued&limit=4'));
    expect(first.tasks).toHaveLength(4);
    const rest = await json(await server.api(`/api/tasks?status=queued&limit=4&cursor=${first.next_cursor}`));
    expect(rest.next_cursor).toBeNull();
    expect([...first.tasks, ...rest.tasks].map((task: { task_id: string }) => task.task_id)).toEqual(newestFirst);

    // A cursor stays valid when the task it names is deleted meanwhile.
    const page = await json(await server.api('/api/tasks?limit=3'));
    const named = page.tasks[2].task_id;
    expect((await server.api(`/api/tasks/${named}/cancel`, { method: 'POST' })).status).toBe(202);
    expect((await server.api(`/api/tasks/${named}`, { method: 'DELETE' })).status).toBe(204);
    const after = await json(await server.api(`/api/tasks?limit=10&cursor=${page.next_cursor}`));
    expect(after.tasks.map((task: { task_id: string }) => task.task_id)).toEqual(newestFirst.slice(3));
    expect(after.next_cursor).toBeNull();
  });

  it('answers a bad limit, status or cursor with 400 pointing at the parameter', async () => {
    server = await startTestServer();
    for (const limit of ['0', '1001', 'x', '-1', '2.5']) {
      const problem = await expectProblem(await server.api(`/api/tasks?limit=${limit}`), 400);
      expect(pointers(problem), `limit=${limit}`).toEqual(['/limit']);
    }
    const status = await expectProblem(await server.api('/api/tasks?status=done'), 400);
    expect(pointers(status)).toEqual(['/status']);
    for (const cursor of ['garbage', 'AAAA', '%00', Buffer.from('not-a-task-id').toString('base64url')]) {
      const problem = await expectProblem(await server.api(`/api/tasks?cursor=${cursor}`), 400);
      expect(pointers(problem), `cursor=${cursor}`).toEqual(['/cursor']);
    }
  });
});

describe('DELETE /api/tasks/{id}', () => {
  it('deletes an ended task (204), after which it is gone everywhere', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect((await ended(task)).status).toBe('completed');

    const response = await server.api(`/api/tasks/${task.task_id}`, { method: 'DELETE' });
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
    await expectProblem(await server.api(`/api/tasks/${task.task_id}`), 404, 'task_not_found');
    await expectProblem(await server.api(task.stream_url), 404, 'task_not_found');
    await expectProblem(await server.api(`/api/tasks/${task.task_id}`, { method: 'DELETE' }), 404, 'task_not_found');
    const list = await json(await server.api('/api/tasks'));
    expect(list.tasks).toEqual([]);
  });

  it('refuses with 409 task_not_ended while the task is queued or running', async () => {
    server = await startTestServer({ MAX_WORKERS: '1', CANCEL_GRACE_MS: '100' });
    const running = await server.create({ type: 'block', input: {} });
    await started(running);
    const queued = await server.create({ type: 'block', input: {} });
    expect((await json(await server.api(`/api/tasks/${queued.task_id}`))).status).toBe('queued');

    for (const task of [queued, running]) {
      await expectProblem(await server.api(`/api/tasks/${task.task_id}`, { method: 'DELETE' }), 409, 'task_not_ended');
      expect((await server.api(`/api/tasks/${task.task_id}`)).status).toBe(200);
    }

    // Once cancelled (ended), both can be deleted.
    for (const task of [queued, running]) {
      expect((await server.api(`/api/tasks/${task.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
      expect((await ended(task)).status).toBe('cancelled');
      expect((await server.api(`/api/tasks/${task.task_id}`, { method: 'DELETE' })).status).toBe(204);
    }
  });
});

describe('GET /api/task-types', () => {
  it('describes every task type with input and result JSON Schemas and an example', async () => {
    server = await startTestServer();
    const response = await server.api('/api/task-types');
    expect(response.status).toBe(200);
    const { task_types } = await json(response);
    const names = task_types.map((info: { type: string }) => info.type);
    expect(names).toEqual(expect.arrayContaining(['sample', 'primes', 'csv_stats', 'block', 'throws']));
    expect(new Set(names).size).toBe(names.length);
    for (const info of task_types) {
      expect(info.description, info.type).toEqual(expect.any(String));
      expect(info.input_schema, info.type).toMatchObject({ type: 'object' });
      expect(info.result_schema, info.type).toMatchObject({ type: 'object' });
      expect(info, info.type).toHaveProperty('example');
    }
    const sample = task_types.find((info: { type: string }) => info.type === 'sample');
    expect(Object.keys(sample.input_schema.properties)).toEqual(expect.arrayContaining(['steps', 'step_ms', 'fail_at_step']));
    expect(sample.input_schema.properties.steps).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, default: 5 });
    expect(sample.result_schema.properties).toHaveProperty('steps_completed');
    const primes = task_types.find((info: { type: string }) => info.type === 'primes');
    expect(primes.input_schema.required).toEqual(['limit']);
    expect(primes.result_schema.properties).toHaveProperty('count');
  });

  it('accepts the example of every built-in type', async () => {
    server = await startTestServer();
    const { task_types } = await json(await server.api('/api/task-types'));
    const builtIn = task_types.filter((info: { type: string }) => ['sample', 'primes', 'csv_stats', 'batch'].includes(info.type));
    expect(builtIn.map((info: { type: string }) => info.type)).toEqual(expect.arrayContaining(['sample', 'primes', 'csv_stats']));
    for (const info of builtIn) {
      const response = await post('/api/tasks', { type: info.type, input: info.example });
      const text = await response.text();
      expect(response.status, `${info.type}: ${text}`).toBe(201);
      const task = JSON.parse(text);
      // Long examples are not needed to run to the end here.
      await server.api(`/api/tasks/${task.task_id}/cancel`, { method: 'POST' });
    }
  });
});

describe('built-in task types do real work', () => {
  it('sample completes with steps_completed and reports every step', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'sample', input: { steps: 3, step_ms: 5 } });
    const snapshot = await ended(task);
    expect(snapshot).toMatchObject({
      status: 'completed',
      result: { steps_completed: 3 },
      error: null,
      progress: { value: 1, text: 'Step 3/3' },
    });
    for (const field of ['created_at', 'started_at', 'finished_at', 'expires_at']) expect(isIso(snapshot[field]), field).toBe(true);
    expect(Date.parse(snapshot.started_at)).toBeGreaterThanOrEqual(Date.parse(snapshot.created_at));
    expect(Date.parse(snapshot.finished_at)).toBeGreaterThanOrEqual(Date.parse(snapshot.started_at));
  });

  it('sample with fail_at_step fails with task_error and its message, without a stack', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'sample', input: { steps: 5, step_ms: 0, fail_at_step: 2 } });
    const snapshot = await ended(task);
    expect(snapshot).toMatchObject({ status: 'failed', result: null, error: { code: 'task_error' } });
    expect(snapshot.error.message).toContain('Step 2');
    expect(snapshot.progress).toMatchObject({ text: 'Step 1/5' });
    expectNothingInternal(JSON.stringify(snapshot));
  });

  it('primes counts the primes below 1,000,000', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'primes', input: { limit: 1_000_000 } });
    const snapshot = await ended(task);
    expect(snapshot).toMatchObject({ status: 'completed', result: { count: 78_498 } });
    expect(snapshot.progress.value).toBe(1);
    const small = await ended(await server.create({ type: 'primes', input: { limit: 2 } }));
    expect(small.result).toEqual({ count: 0 });
    const hundred = await ended(await server.create({ type: 'primes', input: { limit: 100 } }));
    expect(hundred.result).toEqual({ count: 25 });
  });

  it('csv_stats profiles each column, with quoted commas, empty and missing cells', async () => {
    server = await startTestServer();
    const csv = ['name,score,note', 'alice,10,"hello, world"', 'bob,,x', 'carol,30,', 'dave,5', '"eve ""e""",-2.5,"a ""quoted"" note"', ''].join('\r\n');
    const snapshot = await ended(await server.create({ type: 'csv_stats', input: { csv } }));
    expect(snapshot.status).toBe('completed');
    expect(snapshot.input).toEqual({ csv, delimiter: ',', header: true });
    expect(snapshot.result).toEqual({
      rows: 5,
      columns: [
        { name: 'name', values: 5, empty: 0, numeric: 0, min: null, max: null, mean: null },
        { name: 'score', values: 4, empty: 1, numeric: 4, min: -2.5, max: 30, mean: (10 + 30 + 5 - 2.5) / 4 },
        { name: 'note', values: 3, empty: 2, numeric: 0, min: null, max: null, mean: null },
      ],
    });

    const headless = await ended(
      await server.create({ type: 'csv_stats', input: { csv: '1;2\n3;\n', delimiter: ';', header: false } }),
    );
    expect(headless.result).toEqual({
      rows: 2,
      columns: [
        { name: 'column_1', values: 2, empty: 0, numeric: 2, min: 1, max: 3, mean: 2 },
        { name: 'column_2', values: 1, empty: 1, numeric: 1, min: 2, max: 2, mean: 2 },
      ],
    });
  });

  it('csv_stats splits on a delimiter outside the basic plane (one character, two UTF-16 units)', async () => {
    server = await startTestServer();
    const csv = ['city😀population', 'Oslo😀709037', '"Bergen😀West"😀291940', ''].join('\n');
    const snapshot = await ended(await server.create({ type: 'csv_stats', input: { csv, delimiter: '😀' } }));
    expect(snapshot.result).toEqual({
      rows: 2,
      columns: [
        { name: 'city', values: 2, empty: 0, numeric: 0, min: null, max: null, mean: null },
        { name: 'population', values: 2, empty: 0, numeric: 2, min: 291940, max: 709037, mean: (709037 + 291940) / 2 },
      ],
    });
  });
});

describe('GET /healthz', () => {
  it('answers 200', async () => {
    server = await startTestServer();
    const response = await server.api('/healthz');
    expect(response.status).toBe(200);
    expect(await json(response)).toEqual({ status: 'ok' });
  });
});
