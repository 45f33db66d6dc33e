import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { createTaskstreamClient, type BatchCreateResult } from '../client/index.ts';
import { expectProblem, JSON_HEADERS, json, ofType, pointers } from './helpers/harness.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';

let server: TestServer | undefined;
const clients: SseClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = undefined;
});

const postBatch = (body: unknown, query = '', headers: Record<string, string> = JSON_HEADERS) =>
  server!.api(`/api/tasks/batch${query}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const quick = (steps = 1) => ({ type: 'sample', input: { steps, step_ms: 0 } });
const parked = { type: 'sample', input: { steps: 1000, step_ms: 60_000 } };

async function expectBatch(response: Response) {
  const text = await response.text();
  expect(response.status, text).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  return JSON.parse(text);
}

describe('POST /api/tasks/batch', () => {
  it('creates each item as its own task with its own events, seen on the all-tasks stream', async () => {
    server = await startTestServer();
    const all = await SseClient.connect(`${server.url}/api/events`);
    clients.push(all);

    const batch = await expectBatch(await postBatch({ items: [quick(1), quick(2), quick(3)] }));
    expect(batch).toMatchObject({ created: 3, failed: 0 });
    expect(batch.items.map((item: any) => [item.index, item.status, item.error])).toEqual([
      [0, 201, null],
      [1, 201, null],
      [2, 201, null],
    ]);
    const ids: string[] = batch.items.map((item: any) => item.task.task_id);
    expect(new Set(ids).size).toBe(3);
    expect(batch.items.map((item: any) => item.task.input.steps)).toEqual([1, 2, 3]);

    // Each task runs to its end on the shared stream, with one progress event per step.
    const events = await all.waitFor(
      (seen) => ids.every((id) => seen.some((event) => event.event === 'task_completed' && event.json.task_id === id)),
      'the three tasks to complete on /api/events',
    );
    for (const [index, id] of ids.entries()) {
      const own = events.filter((event) => event.json?.task_id === id).map((event) => event.event);
      expect(own).toEqual(['task_created', 'task_started', ...Array(index + 1).fill('progress_update'), 'task_completed']);
    }
    for (const id of ids) {
      const read = await json(await server.api(`/api/tasks/${id}`));
      expect(read).toMatchObject({ task_id: id, status: 'completed' });
    }
  });

  it('reports a bad item at its index with a pointer into the whole body, and creates the others', async () => {
    server = await startTestServer({ MAX_QUEUE: '100' });
    await server.api('/api/queue/pause', { method: 'POST' });
    const items = [parked, parked, { type: 'no_such_type', input: {} }, { type: 'sample', input: { steps: 0 } }, parked];
    const batch = await expectBatch(await postBatch({ items }));
    expect(batch).toMatchObject({ created: 3, failed: 2 });
    expect(batch.items.map((item: any) => item.status)).toEqual([201, 201, 422, 422, 201]);
    expect(batch.items[2]).toMatchObject({ index: 2, task: null, error: { code: 'validation_failed' } });
    expect(batch.items[2].error.errors.map((error: any) => error.pointer)).toEqual(['/items/2/type']);
    expect(batch.items[3].error.errors.map((error: any) => error.pointer)).toEqual(['/items/3/input/steps']);

    const list = await json(await server.api('/api/tasks?status=queued'));
    expect(list.tasks.map((task: any) => task.task_id).sort()).toEqual(
      [0, 1, 4].map((index) => batch.items[index].task.task_id).sort(),
    );
  });

  it('keeps an idempotency key per item: a repeat returns the task, another body is refused at its index', async () => {
    server = await startTestServer();
    await server.api('/api/queue/pause', { method: 'POST' });
    const first = await expectBatch(
      await postBatch({ items: [{ ...parked, idempotency_key: 'a' }, { ...parked, idempotency_key: 'b' }] }),
    );
    expect(first.items.map((item: any) => item.status)).toEqual([201, 201]);
    const [taskA, taskB] = first.items.map((item: any) => item.task.task_id);
    expect(taskA).not.toBe(taskB);

    const again = await expectBatch(
      await postBatch({
        items: [
          { ...parked, idempotency_key: 'b' },
          { ...quick(), idempotency_key: 'a' },
          { ...parked, idempotency_key: 'not a key' },
          { ...parked, idempotency_key: 'c' },
        ],
      }),
    );
    expect(again.items.map((item: any) => item.status)).toEqual([200, 422, 422, 201]);
    expect(again).toMatchObject({ created: 1, failed: 2 });
    expect(again.items[0].task.task_id).toBe(taskB);
    expect(again.items[1].error).toMatchObject({
      code: 'idempotency_key_reused',
      errors: [{ pointer: '/items/1/idempotency_key' }],
    });
    expect(again.items[2].error.errors.map((error: any) => error.pointer)).toEqual(['/items/2/idempotency_key']);

    // The single create shares the keys: the header names the same task.
    const single = await server.api('/api/tasks', {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'idempotency-key': 'a' },
      body: JSON.stringify(parked),
    });
    expect(single.status).toBe(200);
    expect((await json(single)).task_id).toBe(taskA);
  });

  it('answers queue_full at the index of each item past MAX_QUEUE', async () => {
    server = await startTestServer({ MAX_QUEUE: '2' });
    await server.api('/api/queue/pause', { method: 'POST' });
    const batch = await expectBatch(await postBatch({ items: [parked, parked, parked, parked, parked] }));
    expect(batch.items.map((item: any) => item.status)).toEqual([201, 201, 503, 503, 503]);
    expect(batch.items.slice(2).map((item: any) => item.error.code)).toEqual(['queue_full', 'queue_full', 'queue_full']);
    expect(batch).toMatchObject({ created: 2, failed: 3 });
    const stats = await json(await server.api('/api/tasks/stats'));
    expect(stats.queue).toEqual({ size: 2, max: 2 });
  });

  it('refuses a malformed envelope as a whole, and offers no all-or-nothing mode', async () => {
    server = await startTestServer();
    expect(pointers(await expectProblem(await postBatch({}), 422, 'validation_failed'))).toEqual(['/items']);
    expect(pointers(await expectProblem(await postBatch({ items: [] }), 422, 'validation_failed'))).toEqual(['/items']);
    const tooMany = { items: Array.from({ length: 1001 }, () => quick()) };
    expect(pointers(await expectProblem(await postBatch(tooMany), 422, 'validation_failed'))).toEqual(['/items']);
    await expectProblem(await postBatch('{"items": ['), 400, 'malformed_json');
    await expectProblem(await postBatch('items', '', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');

    const atomic = await postBatch({ items: [quick(), { type: 'sample', input: { steps: 0 } }] }, '?atomic=true');
    expect(pointers(await expectProblem(atomic, 400, 'invalid_request'))).toEqual(['/atomic']);
    // Nothing was created by the refused request.
    const list = await json(await server.api('/api/tasks'));
    expect(list.tasks).toEqual([]);
  });

  it('takes 1,000 items in one request', async () => {
    server = await startTestServer({ MAX_QUEUE: '1000' });
    await server.api('/api/queue/pause', { method: 'POST' });
    const all = await SseClient.connect(`${server.url}/api/events`);
    clients.push(all);
    const items = Array.from({ length: 1000 }, (_, index) => ({ ...parked, labels: { n: String(index) } }));
    const batch = await expectBatch(await postBatch({ items }));
    expect(batch).toMatchObject({ created: 1000, failed: 0 });
    expect(batch.items.every((item: any, index: number) => item.index === index && item.task.labels.n === String(index))).toBe(true);
    const created = await all.waitFor((seen) => ofType(seen, 'task_created').length === 1000, '1000 task_created events');
    expect(ofType(created, 'task_created').map((event) => event.json.task_id)).toEqual(
      batch.items.map((item: any) => item.task.task_id),
    );
  });

  it('is typed in the generated client', async () => {
    server = await startTestServer();
    await server.api('/api/queue/pause', { method: 'POST' });
    const api = createTaskstreamClient(server.url);
    const answer = await api.POST('/api/tasks/batch', {
      body: { items: [{ type: 'primes', input: { limit: 10 }, idempotency_key: 'k1' }, { type: 'sample', input: {} }] },
    });
    expect(answer.response.status).toBe(200);
    if (!answer.data) throw new Error(`batch failed: ${JSON.stringify(answer.error)}`);
    expectTypeOf(answer.data).toEqualTypeOf<BatchCreateResult>();
    expect(answer.data.items.map((item) => [item.status, item.task?.type])).toEqual([
      [201, 'primes'],
      [201, 'sample'],
    ]);
  });
});
