import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';

let server: TestServer;
beforeEach(async () => {
  server = await startTestServer();
});
afterEach(async () => {
  await server.close();
});

describe('task stream', () => {
  it('sends task_started, every progress_update, then task_completed, and ends', async () => {
    const task = await server.create({ type: 'sample', input: { steps: 3, step_ms: 10 } });
    const client = await SseClient.connect(`${server.url}${task.stream_url}`);
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(client.response.headers.get('cache-control')).toMatch(/no-cache/);
    expect(client.response.headers.get('x-accel-buffering')).toBe('no');
    const events = await client.untilEnd();
    expect(client.types()).toEqual([
      'task_started',
      'progress_update',
      'progress_update',
      'progress_update',
      'task_completed',
    ]);
    expect(events.map((event) => event.id)).toEqual(['1', '2', '3', '4', '5']);
    expect(client.retry).toBe(3000);
    for (const event of events) {
      expect(Object.keys(event.json)).toEqual(['event_type', 'task_id', 'seq', 'timestamp', 'data']);
      expect(event.json.event_type).toBe(event.event);
      expect(event.json.task_id).toBe(task.task_id);
      expect(String(event.json.seq)).toBe(event.id);
      expect(new Date(event.json.timestamp).toISOString()).toBe(event.json.timestamp);
    }
    expect(events[1]!.json.data).toMatchObject({ value: 1 / 3, text: 'Step 1/3', step: 1, total_steps: 3 });
    expect(events[4]!.json.data).toEqual({ result: { steps_completed: 3 } });
  });
});
