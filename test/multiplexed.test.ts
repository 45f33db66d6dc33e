import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient, type SseEvent } from './helpers/sse.ts';

let server: TestServer | undefined;
const clients: SseClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = undefined;
});

async function connect(path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await SseClient.connect(`${server!.url}${path}`, headers);
  clients.push(client);
  return client;
}

const terminal = (event: SseEvent) => ['task_completed', 'task_failed', 'task_cancelled'].includes(event.event!);
const endedCount = (events: SseEvent[], taskId: string) =>
  events.filter((event) => event.json?.task_id === taskId && terminal(event)).length;

describe('the multiplexed stream', () => {
  it('carries every task, announced by task_created and closed by task_removed', async () => {
    server = await startTestServer();
    const all = await connect('/api/events');
    expect(all.response.status).toBe(200);
    expect(all.response.headers.get('content-type')).toMatch(/^text\/event-stream/);

    const a = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
    const b = await server.create({ type: 'throws', input: { message: 'nope' } });
    await all.waitFor((events) => endedCount(events, a.task_id) + endedCount(events, b.task_id) === 2, 'both tasks to end');

    const ofA = all.events.filter((event) => event.json.task_id === a.task_id);
    expect(ofA.map((event) => event.event)).toEqual([
      'task_created',
      'task_started',
      'progress_update',
      'progress_update',
      'task_completed',
    ]);
    expect(ofA[0]!.json.seq).toBe(0);
    expect(ofA[0]!.json.data.task).toMatchObject({ task_id: a.task_id, type: 'sample', status: 'queued' });
    expect(ofA.slice(1).map((event) => event.json.seq)).toEqual([1, 2, 3, 4]);
    const ofB = all.events.filter((event) => event.json.task_id === b.task_id).map((event) => event.event);
    expect(ofB).toEqual(['task_created', 'task_started', 'task_failed']);

    // Ids are one increasing sequence across all tasks.
    const ids = all.events.map((event) => Number(event.id));
    expect(ids.every((id, index) => index === 0 || id > ids[index - 1]!)).toBe(true);

    expect((await server.api(`/api/tasks/${a.task_id}`, { method: 'DELETE' })).status).toBe(204);
    await all.waitFor((events) => events.some((event) => event.event === 'task_removed'), 'task_removed');
    const removed = all.events.find((event) => event.event === 'task_removed')!;
    expect(removed.json).toMatchObject({ task_id: a.task_id, data: { reason: 'deleted' } });
  });

  it('announces evicted tasks with reason evicted', async () => {
    server = await startTestServer({ RETENTION_MS: '50' });
    const all = await connect('/api/events');
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    await all.waitFor((events) => events.some((event) => event.event === 'task_removed'), 'eviction', 15_000);
    expect(all.events.at(-1)!.json).toMatchObject({ task_id: task.task_id, data: { reason: 'evicted' } });
  });

  it('follows chosen tasks only, replays their history in order, and ends when all have ended', async () => {
    server = await startTestServer({ MAX_WORKERS: '3' });
    const done = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    await (await connect(done.stream_url)).untilEnd();
    const running = await server.create({ type: 'block', input: { progress: 2 } });
    const other = await server.create({ type: 'block', input: {} });

    const chosen = await connect(`/api/events?task_id=${done.task_id}&task_id=${running.task_id}`);
    await chosen.waitFor((events) => events.filter((event) => event.json.task_id === running.task_id).length === 3, 'the running task\'s history');
    expect(chosen.events.filter((event) => event.json.task_id === done.task_id).map((event) => event.event)).toEqual([
      'task_started',
      'progress_update',
      'task_completed',
    ]);
    expect(chosen.events.some((event) => event.json.task_id === other.task_id)).toBe(false);
    const ids = chosen.events.map((event) => Number(event.id));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);

    await server.api(`/api/tasks/${running.task_id}/cancel`, { method: 'POST' });
    const events = await chosen.untilEnd('the chosen stream to end');
    expect(events.at(-1)).toMatchObject({ event: 'task_cancelled' });
    expect(endedCount(events, done.task_id)).toBe(1);
    expect(endedCount(events, running.task_id)).toBe(1);

    // Reconnecting after the last event: nothing more will come.
    const again = await fetch(`${server.url}/api/events?task_id=${done.task_id}&task_id=${running.task_id}`, {
      headers: { 'last-event-id': events.at(-1)!.id! },
    });
    expect(again.status).toBe(204);
    await server.api(`/api/tasks/${other.task_id}/cancel`, { method: 'POST' });
  });

  it('resumes after Last-Event-ID (header or query) with no duplicates and no gaps', async () => {
    server = await startTestServer({ MAX_WORKERS: '2' });
    const all = await connect('/api/events');
    const tasks = await Promise.all([1, 2].map(() => server!.create({ type: 'sample', input: { steps: 4, step_ms: 0 } })));
    await all.waitFor((events) => tasks.every((task) => endedCount(events, task.task_id) === 1), 'both tasks to end');
    const full = all.events.map((event) => event.id);

    const cut = all.events[3]!.id!;
    const byHeader = await connect('/api/events', { 'last-event-id': cut });
    const byQuery = await connect(`/api/events?last_event_id=${cut}`);
    for (const resumed of [byHeader, byQuery]) {
      await resumed.waitFor((events) => events.length === full.length - 4, 'the replay after the cut');
      expect(resumed.events.map((event) => event.id)).toEqual(full.slice(4));
    }

    const filtered = await connect(`/api/events?task_id=${tasks[0].task_id}&task_id=${tasks[1].task_id}`, { 'last-event-id': cut });
    const events = await filtered.untilEnd();
    const expected = all.events.slice(4).filter((event) => event.event !== 'task_created').map((event) => event.id);
    expect(events.map((event) => event.id)).toEqual(expected);
  });

  it('asks the client to reload when its resume point is no longer retained', async () => {
    server = await startTestServer({ EVENT_HISTORY: '3' });
    for (let i = 0; i < 3; i++) {
      const task = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
      await (await connect(task.stream_url)).untilEnd();
    }
    // An id from an earlier run is older than anything retained, too.
    for (const stale of ['1', '5']) {
      const resumed = await connect('/api/events', { 'last-event-id': stale });
      await resumed.waitFor((events) => events.length >= 1, 'the resync event');
      expect(resumed.events[0]!.event).toBe('resync');
      expect(resumed.events).toHaveLength(1);
    }
  });

  it('refuses a resume point past the last event it sent with 400 invalid_request, with or without task_id', async () => {
    server = await startTestServer();
    const all = await connect('/api/events');
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    await all.waitFor((events) => endedCount(events, task.task_id) === 1, 'the task to end');
    const last = Number(all.events.at(-1)!.id);
    for (const path of ['/api/events', `/api/events?task_id=${task.task_id}`]) {
      for (const unsent of [last + 1, last + 1_000_000]) {
        const response = await server.api(path, { headers: { 'last-event-id': String(unsent) } });
        expect(response.status, `${path} after ${unsent}`).toBe(400);
        expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem: any = await response.json();
        expect(problem).toMatchObject({ code: 'invalid_request', detail: 'Last-Event-ID must be an event id this stream sent' });
        expect(problem.errors).toEqual([{ pointer: '/last-event-id', detail: expect.any(String) }]);
      }
    }
    // The last one sent still resumes (nothing more to send for the ended task: 204).
    expect((await server.api(`/api/events?task_id=${task.task_id}`, { headers: { 'last-event-id': String(last) } })).status).toBe(204);
  });

  it('answers 404 when none of the chosen tasks exists, and skips unknown ones otherwise', async () => {
    server = await startTestServer();
    const missing = await server.api('/api/events?task_id=00000000-0000-7000-8000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('application/problem+json');
    expect(((await missing.json()) as { code: string }).code).toBe('task_not_found');

    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const mixed = await connect(`/api/events?task_id=nope&task_id=${task.task_id}`);
    const events = await mixed.untilEnd();
    expect(new Set(events.map((event) => event.json.task_id))).toEqual(new Set([task.task_id]));

    const bad = await server.api('/api/events', { headers: { 'last-event-id': 'x1' } });
    expect(bad.status).toBe(400);
  });
});
