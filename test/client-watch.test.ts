import { afterEach, describe, expect, it } from 'vitest';
import { createClient, WatchError } from '../client/index.ts';
import { startDropProxy, type DropProxy } from './helpers/drop-proxy.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { withTimeout } from './helpers/timeout.ts';

let server: TestServer | undefined;
let proxy: DropProxy | undefined;
afterEach(async () => {
  proxy?.close();
  await server?.close();
  server = proxy = undefined;
});

const KEY = 'alice:a-long-enough-key-for-alice';

describe('client.watch()', () => {
  it('resumes across a dropped connection with Last-Event-ID: every event once, in order, ending after the terminal one', async () => {
    server = await startTestServer();
    proxy = await startDropProxy(Number(new URL(server.url).port));
    const client = createClient(proxy.url, { reconnectDelayMs: 20 });
    const created = await client.POST('/api/tasks', { body: { type: 'sample', input: { steps: 8, step_ms: 100 } } });
    expect(created.response.status).toBe(201);
    const seqs: number[] = [];
    const types: string[] = [];
    await withTimeout(
      (async () => {
        for await (const event of client.watch(created.data!.task_id)) {
          seqs.push(event.seq);
          types.push(event.event_type);
          if (event.seq === 3) proxy!.dropAll();
        }
      })(),
      'watch() to end',
      20_000,
    );
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(types.at(-1)).toBe('task_completed');
  });

  it('sends the API key, or a stream token, and reports an unknown task as a WatchError with its problem', async () => {
    server = await startTestServer({ API_KEYS: KEY });
    const client = createClient(server.url, { apiKey: 'a-long-enough-key-for-alice' });
    const created = await client.POST('/api/tasks', { body: { type: 'sample', input: { steps: 2, step_ms: 10 } } });
    expect(created.response.status).toBe(201);
    const events = [];
    for await (const event of client.watch(created.data!.task_id)) events.push(event.event_type);
    expect(events).toEqual(['task_started', 'progress_update', 'progress_update', 'task_completed']);

    const token = new URL(created.data!.stream_url, server.url).searchParams.get('token')!;
    const anonymous = createClient(server.url, { streamToken: token });
    const again = [];
    for await (const event of anonymous.watch(created.data!.task_id, { after: 2 })) again.push(event.seq);
    expect(again).toEqual([3, 4]);

    const unknown = client.watch('01a20cf1-3fb3-7f03-9811-8e0070b8f065');
    await expect(unknown.next()).rejects.toMatchObject({ name: 'WatchError', status: 404, problem: { code: 'task_not_found' } });
    expect(WatchError).toBeDefined();
  });
});

describe('client.watchAll()', () => {
  it('follows chosen tasks on the multiplexed stream and ends once each has ended', async () => {
    server = await startTestServer();
    const client = createClient(server.url);
    const ids: string[] = [];
    for (const steps of [1, 2]) {
      const created = await client.POST('/api/tasks', { body: { type: 'sample', input: { steps, step_ms: 20 } } });
      ids.push(created.data!.task_id);
    }
    const ended = new Set<string>();
    await withTimeout(
      (async () => {
        for await (const event of client.watchAll({ taskIds: ids })) {
          if (event.event_type === 'task_completed') ended.add(event.task_id);
        }
      })(),
      'watchAll() to end',
      20_000,
    );
    expect([...ended].sort()).toEqual([...ids].sort());
  });
});
