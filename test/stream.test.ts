import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { BrowserLikeClient } from './helpers/event-source.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient, type SseEvent } from './helpers/sse.ts';
import { until } from './helpers/timeout.ts';

// Every test starts its own server (some with their own environment) and opens its own
// clients; all of them are closed here, whether the test passed or not.
const servers: TestServer[] = [];
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function serve(env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

async function connect(server: TestServer, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await SseClient.connect(`${server.url}${path}`, headers);
  clients.push(client);
  return client;
}

function openBrowser(server: TestServer, path: string): BrowserLikeClient {
  const browser = new BrowserLikeClient(`${server.url}${path}`, EVENT_TYPES);
  clients.push(browser);
  return browser;
}

const EVENT_TYPES = ['task_started', 'progress_update', 'task_completed', 'task_failed', 'task_cancelled'];
const TERMINAL_TYPES = ['task_completed', 'task_failed', 'task_cancelled'];
const isTerminal = (event: SseEvent) => TERMINAL_TYPES.includes(event.event ?? '');
const seqsOf = (events: readonly SseEvent[]) => events.map((event) => Number(event.id));
/** [from, from + 1, …, to] */
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);

async function cancel(server: TestServer, taskId: string): Promise<void> {
  const response = await server.api(`/api/tasks/${taskId}/cancel`, { method: 'POST' });
  expect(response.status).toBe(202);
}

async function statusOf(server: TestServer, taskId: string): Promise<string> {
  const snapshot = (await (await server.api(`/api/tasks/${taskId}`)).json()) as { status: string };
  return snapshot.status;
}

/** Asserts an RFC 9457 answer with our code; returns its body. */
async function expectProblem(response: Response, status: number, code: string): Promise<any> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = await response.json();
  expect(body).toMatchObject({ status, code });
  return body;
}

/** Nothing is left of any stream: no broker subscription and no open SSE response. */
const noStreamsLeft = (server: TestServer) => async () => (await server.service.stats()).streams === 0 && server.hub.size === 0;

describe('task stream', () => {
  it('sends task_started, every progress_update, then task_completed, and ends', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 3, step_ms: 10 } });
    const client = await connect(server, task.stream_url);
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

  it('gives a late subscriber to a finished task its whole story, then ends', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 3, step_ms: 0 } });
    const live = await (await connect(server, task.stream_url)).untilEnd('the live stream to end');
    expect(await statusOf(server, task.task_id)).toBe('completed');

    const late = await connect(server, task.stream_url);
    expect(late.response.status).toBe(200);
    const replayed = await late.untilEnd('the late stream to end');
    expect(late.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'progress_update', 'task_completed']);
    // The very same events (ids, timestamps, data) the live subscriber saw.
    expect(replayed.map((event) => [event.id, event.event, event.data])).toEqual(
      live.map((event) => [event.id, event.event, event.data]),
    );
  });

  it('replays a failed task up to its task_failed', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 3, step_ms: 0, fail_at_step: 2 } });
    await (await connect(server, task.stream_url)).untilEnd('the live stream to end');

    const late = await connect(server, task.stream_url);
    const events = await late.untilEnd('the late stream to end');
    expect(late.types()).toEqual(['task_started', 'progress_update', 'task_failed']);
    expect(events.at(-1)!.json.data).toEqual({ error: { code: 'task_error', message: expect.any(String) } });
  });
});

describe('resuming a stream', () => {
  it('resumes after the Last-Event-ID header or the last_event_id query parameter', async () => {
    const server = await serve();
    const task = await server.create({ type: 'block', input: { progress: 4 } });
    const full = await connect(server, task.stream_url);
    await full.waitFor((events) => events.length === 5, 'task_started and 4 progress_update');

    const byHeader = await connect(server, task.stream_url, { 'last-event-id': '2' });
    const byQuery = await connect(server, `${task.stream_url}?last_event_id=2`);
    for (const resumed of [byHeader, byQuery]) {
      expect(resumed.response.status).toBe(200);
      await resumed.waitFor((events) => events.length === 3, 'the history after id 2');
    }

    await cancel(server, task.task_id);
    const all = await full.untilEnd('the full stream to end');
    expect(seqsOf(all)).toEqual(range(1, 6));
    for (const resumed of [byHeader, byQuery]) {
      const events = await resumed.untilEnd('a resumed stream to end');
      expect(seqsOf(events)).toEqual(range(3, 6));
      expect(events.map((event) => event.data)).toEqual(all.slice(2).map((event) => event.data));
      expect(events.at(-1)!.event).toBe('task_cancelled');
    }
  });

  it('resumes a finished task after the given id, then ends', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 4, step_ms: 0 } });
    const all = await (await connect(server, task.stream_url)).untilEnd();
    expect(seqsOf(all)).toEqual(range(1, 6));

    for (const after of [0, 1, 3, 5]) {
      const byHeader = await connect(server, task.stream_url, { 'last-event-id': String(after) });
      const byQuery = await connect(server, `${task.stream_url}?last_event_id=${after}`);
      for (const resumed of [byHeader, byQuery]) {
        const events = await resumed.untilEnd(`the stream resumed after ${after} to end`);
        expect(events.map((event) => event.data)).toEqual(all.slice(after).map((event) => event.data));
      }
    }
  });

  it('a client that keeps dropping and reconnecting with its last id sees every event exactly once', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 8, step_ms: 20 } });
    const seen: SseEvent[] = [];
    let lastId: string | undefined;
    for (let round = 0; round < 50; round++) {
      // Alternate how the resume point is given: header on odd rounds, query on even ones.
      const client =
        lastId === undefined
          ? await connect(server, task.stream_url)
          : round % 2 === 1
            ? await connect(server, task.stream_url, { 'last-event-id': lastId })
            : await connect(server, `${task.stream_url}?last_event_id=${lastId}`);
      expect(client.response.status).toBe(200);
      await client.waitFor(
        (events) => events.length >= 2 || events.some(isTerminal),
        `round ${round}: two more events after ${lastId ?? 'the start'}`,
      );
      // What the client has seen when it drops; anything still in flight is for the next round.
      const got = [...client.events];
      client.close();
      seen.push(...got);
      if (got.some(isTerminal)) break;
      lastId = got.at(-1)!.id;
    }
    expect(seqsOf(seen)).toEqual(range(1, 10));
    expect(seen.at(-1)!.event).toBe('task_completed');
    await until(noStreamsLeft(server), 'every dropped stream to be cleaned up');
  });

  it('answers 204 with no body to a reconnect whose Last-Event-ID is the terminal event', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
    const events = await (await connect(server, task.stream_url)).untilEnd();
    const terminalId = events.at(-1)!.id!;
    expect(terminalId).toBe('4');

    for (const response of [
      await server.api(task.stream_url, { headers: { 'last-event-id': terminalId } }),
      await server.api(`${task.stream_url}?last_event_id=${terminalId}`),
    ]) {
      expect(response.status).toBe(204);
      // An empty event stream: EventSource stops on any status but 200, whatever the type.
      expect(response.headers.get('content-type')).toBe('text/event-stream');
      expect(await response.text()).toBe('');
    }
    await until(noStreamsLeft(server), 'the 204 answers to leave no subscription');
  });

  it('refuses a malformed Last-Event-ID with 400 problem+json, code invalid_request', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });

    for (const bad of ['abc', '-1', '1.5', '1e3']) {
      const byHeader = await expectProblem(
        await server.api(task.stream_url, { headers: { 'last-event-id': bad } }),
        400,
        'invalid_request',
      );
      expect(byHeader.errors).toEqual([{ pointer: '/last-event-id', detail: expect.any(String) }]);

      const byQuery = await expectProblem(
        await server.api(`${task.stream_url}?last_event_id=${encodeURIComponent(bad)}`),
        400,
        'invalid_request',
      );
      expect(byQuery.errors).toEqual([{ pointer: '/last_event_id', detail: expect.any(String) }]);
    }
    expect(await noStreamsLeft(server)()).toBe(true);
  });
});

describe('a Last-Event-ID the stream never sent', () => {
  const MESSAGE = 'Last-Event-ID must be an event id this stream sent';

  it('is refused with 400 invalid_request at the header or the query parameter, on a running or ended task', async () => {
    const server = await serve();
    const running = await server.create({ type: 'block', input: { progress: 1 } });
    const live = await connect(server, running.stream_url);
    await live.waitFor((events) => events.length === 2, 'task_started and the progress (ids 1-2)');
    const ended = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const sent = (await (await connect(server, ended.stream_url)).untilEnd()).length;

    for (const [task, last] of [[running, 2], [ended, sent]] as const) {
      for (const unsent of [last + 1, 999]) {
        const byHeader = await expectProblem(
          await server.api(task.stream_url, { headers: { 'last-event-id': String(unsent) } }),
          400,
          'invalid_request',
        );
        expect(byHeader.detail).toBe(MESSAGE);
        expect(byHeader.errors).toEqual([{ pointer: '/last-event-id', detail: expect.stringContaining(String(last)) }]);
        const byQuery = await expectProblem(await server.api(`${task.stream_url}?last_event_id=${unsent}`), 400, 'invalid_request');
        expect(byQuery.errors).toEqual([{ pointer: '/last_event_id', detail: expect.stringContaining(String(last)) }]);
      }
    }
    // The last id it did send still resumes: a live stream, and 204 after the terminal event.
    const resumed = await connect(server, running.stream_url, { 'last-event-id': '2' });
    expect(resumed.response.status).toBe(200);
    resumed.close();
    expect((await server.api(ended.stream_url, { headers: { 'last-event-id': String(sent) } })).status).toBe(204);
    live.close();
    await until(noStreamsLeft(server), 'the refused resumes to leave no subscription');
  });
});

describe('subscribers', () => {
  it('gives each of two subscribers every event, with the same ids', async () => {
    const server = await serve();
    const task = await server.create({ type: 'block', input: { progress: 2 } });
    const first = await connect(server, task.stream_url);
    const second = await connect(server, task.stream_url);
    await first.waitFor((events) => events.length === 3, 'the first subscriber to catch up');
    await second.waitFor((events) => events.length === 3, 'the second subscriber to catch up');

    await cancel(server, task.task_id);
    const a = await first.untilEnd('the first stream to end');
    const b = await second.untilEnd('the second stream to end');
    expect(first.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'task_cancelled']);
    expect(seqsOf(a)).toEqual(range(1, 4));
    expect(b.map((event) => [event.id, event.event, event.data])).toEqual(a.map((event) => [event.id, event.event, event.data]));
  });

  it('leaves no subscription or open stream behind once clients disconnect', async () => {
    const server = await serve();
    const task = await server.create({ type: 'block', input: { progress: 1 } });
    const streams = await Promise.all([1, 2, 3].map(() => connect(server, task.stream_url)));
    for (const client of streams) await client.waitFor((events) => events.length === 2, 'the history so far');
    expect((await server.service.stats()).streams).toBe(3);
    expect(server.hub.size).toBe(3);

    for (const client of streams) client.close();
    await until(noStreamsLeft(server), 'the server to notice the three disconnects');

    // The task goes on unaffected, and a new subscriber still gets everything.
    const again = await connect(server, task.stream_url);
    await cancel(server, task.task_id);
    await again.untilEnd();
    expect(again.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
  });

  it('leaves nothing behind when the server ends the stream', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
    await (await connect(server, task.stream_url)).untilEnd();
    await (await connect(server, task.stream_url)).untilEnd('the replay to end');
    await until(noStreamsLeft(server), 'the ended streams to be cleaned up');
  });

  it('sends heartbeat comments on an idle stream', async () => {
    const server = await serve({ HEARTBEAT_MS: '50', SSE_RETRY_MS: '1234' });
    const task = await server.create({ type: 'block', input: {} });
    const client = await connect(server, task.stream_url);
    await client.waitFor(
      () => client.comments.filter((comment) => comment === 'heartbeat').length >= 3,
      'three heartbeat comments',
    );
    // Heartbeats are comments, not events: an EventSource never sees them.
    expect(client.types()).toEqual(['task_started']);
    expect(client.retry).toBe(1234);
  });
});

describe('stream errors', () => {
  it('answers 404 problem+json for an unknown task, not a 200 stream', async () => {
    const server = await serve();
    for (const taskId of [randomUUID(), 'not-a-task-id']) {
      const response = await server.api(`/api/tasks/${taskId}/events`, { headers: { accept: 'text/event-stream' } });
      await expectProblem(response, 404, 'task_not_found');
    }
    // A resume point does not turn an unknown task into a 204.
    const resumed = await server.api(`/api/tasks/${randomUUID()}/events`, { headers: { 'last-event-id': '3' } });
    await expectProblem(resumed, 404, 'task_not_found');
    expect(await noStreamsLeft(server)()).toBe(true);
  });

  it('a deleted task\'s stream answers 404, even to a client resuming after its end', async () => {
    const server = await serve();
    const task = await server.create({ type: 'block', input: { progress: 1 } });
    const client = await connect(server, task.stream_url);
    await client.waitFor((events) => events.length === 2, 'the task to start');

    // While it runs, the task cannot be deleted and its stream carries on.
    const refused = await server.api(`/api/tasks/${task.task_id}`, { method: 'DELETE' });
    await expectProblem(refused, 409, 'task_not_ended');
    await cancel(server, task.task_id);
    const events = await client.untilEnd();
    expect(client.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);

    expect((await server.api(`/api/tasks/${task.task_id}`, { method: 'DELETE' })).status).toBe(204);
    await expectProblem(await server.api(task.stream_url), 404, 'task_not_found');
    // Even the reconnect of a client that had everything: the task is gone, not finished.
    const resumed = await server.api(task.stream_url, { headers: { 'last-event-id': events.at(-1)!.id! } });
    await expectProblem(resumed, 404, 'task_not_found');
    await until(noStreamsLeft(server), 'no stream to be left');
  });
});

describe('ordering under load', () => {
  // 5,000 events, each a store write and a publish: in Redis mode, two round trips each.
  it('delivers all 500 progress updates of a flood in order, then task_completed last (10 runs)', async () => {
    // One worker, held by a blocked task, so every flood task is queued when its stream
    // opens: the subscriber sees every event live, not a thinned replay.
    const server = await serve({ MAX_WORKERS: '1' });
    // Its progress event shows it is inside run(), listening for the cancel.
    const blocker = await server.create({ type: 'block', input: { progress: 1 } });
    const blocked = await connect(server, blocker.stream_url);
    await blocked.waitFor((events) => events.length === 2, 'the blocker to start');
    const floods = await Promise.all(range(1, 10).map(() => server.create({ type: 'flood', input: { count: 500 } })));
    const streams: SseClient[] = [];
    for (const flood of floods) {
      expect(flood.status).toBe('queued');
      const client = await connect(server, flood.stream_url);
      expect(client.response.status).toBe(200);
      streams.push(client);
    }
    expect((await server.service.stats()).streams).toBe(11);

    await cancel(server, blocker.task_id);
    await blocked.untilEnd('the blocker to be cancelled');
    for (const [index, client] of streams.entries()) {
      const label = `flood ${index + 1}`;
      // A second subscriber joins halfway (or after the end: the same must hold either way).
      await client.waitFor((events) => events.length >= 250, `${label} to be halfway`, 30_000);
      const joiner = await connect(server, client.response.url.slice(server.url.length));
      const events = await client.untilEnd(`${label} to end`, 30_000);
      const progress = events.filter((event) => event.event === 'progress_update');
      expect(events[0]!.event).toBe('task_started');
      expect(progress.map((event) => event.json.data.text)).toEqual(range(1, 500).map(String));
      expect(events.at(-1)!.event).toBe('task_completed');
      expect(events.at(-1)!.json.data).toEqual({ result: { sent: 500 } });
      expect(events.filter(isTerminal)).toHaveLength(1);
      expect(seqsOf(events)).toEqual(range(1, 502));

      // The joiner may get a thinned replay, but never progress after the end, nor without the last one.
      const joined = await joiner.untilEnd(`${label}'s joiner to end`, 30_000);
      const joinedSeqs = seqsOf(joined);
      expect(joinedSeqs.every((seq, at) => at === 0 || seq > joinedSeqs[at - 1]!)).toBe(true);
      expect(joined[0]!.event).toBe('task_started');
      expect(joined.at(-2)).toMatchObject({ id: '501', event: 'progress_update' });
      expect(joined.at(-1)).toMatchObject({ id: '502', event: 'task_completed' });
      expect(joined.filter(isTerminal)).toHaveLength(1);

      // The task's own snapshot kept the last progress too.
      const snapshot = (await (await server.api(`/api/tasks/${floods[index].task_id}`)).json()) as any;
      expect(snapshot.progress).toMatchObject({ value: 1, text: '500' });
    }
  }, 120_000);

  it('thins a flood to its most recent progress for a late subscriber, keeping every lifecycle event', async () => {
    const progressHistory = 5;
    const server = await serve({ PROGRESS_HISTORY: String(progressHistory) });
    const task = await server.create({ type: 'flood', input: { count: 50 } });
    await until(async () => (await statusOf(server, task.task_id)) === 'completed', 'the flood to complete');

    const late = await connect(server, task.stream_url);
    const events = await late.untilEnd();
    expect(events[0]!.event).toBe('task_started');
    expect(events[0]!.id).toBe('1');
    expect(events.at(-1)!.event).toBe('task_completed');
    expect(events.at(-1)!.id).toBe('52');

    const progress = events.slice(1, -1);
    expect(progress.every((event) => event.event === 'progress_update')).toBe(true);
    // Between 1× and 2× PROGRESS_HISTORY are kept, and they are the newest ones.
    expect(progress.length).toBeGreaterThanOrEqual(progressHistory);
    expect(progress.length).toBeLessThanOrEqual(2 * progressHistory);
    expect(seqsOf(progress)).toEqual(range(52 - progress.length, 51));
    expect(progress.at(-1)!.json.data.text).toBe('50');
    const ids = seqsOf(events);
    expect(ids.every((id, index) => index === 0 || id > ids[index - 1]!)).toBe(true);

    // Resuming inside the thinned part: what is retained after that point, nothing else.
    const resumed = await connect(server, task.stream_url, { 'last-event-id': '10' });
    expect(seqsOf(await resumed.untilEnd('the resumed stream to end'))).toEqual(seqsOf(events.slice(1)));
  });
});

describe('a browser EventSource', () => {
  it('receives the named events, reconnects once the stream ends, gets 204 and stops', async () => {
    const server = await serve({ SSE_RETRY_MS: '20' });
    const task = await server.create({ type: 'block', input: { progress: 2 } });
    const browser = openBrowser(server, task.stream_url);
    await until(() => browser.events.length === 3, 'task_started and two progress_update');
    expect(browser.source.readyState).toBe(browser.source.OPEN);

    await cancel(server, task.task_id);
    await until(() => browser.closed, 'the EventSource to give up after the 204');
    expect(browser.events.map((event) => [event.id, event.type])).toEqual([
      ['1', 'task_started'],
      ['2', 'progress_update'],
      ['3', 'progress_update'],
      ['4', 'task_cancelled'],
    ]);
    expect(browser.events.map((event) => event.json.seq)).toEqual([1, 2, 3, 4]);
    expect(browser.requests).toEqual([
      { lastEventId: null, status: 200 },
      { lastEventId: '4', status: 204 },
    ]);
    expect(browser.errors.at(-1)).toMatchObject({ code: 204 });
    await until(noStreamsLeft(server), 'no stream to be left');
  });

  it('joining a finished task, replays it, then stops on the 204', async () => {
    const server = await serve({ SSE_RETRY_MS: '20' });
    const task = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
    await until(async () => (await statusOf(server, task.task_id)) === 'completed', 'the task to complete');

    const browser = openBrowser(server, task.stream_url);
    await until(() => browser.closed, 'the EventSource to give up after the 204');
    expect(browser.events.map((event) => event.type)).toEqual([
      'task_started',
      'progress_update',
      'progress_update',
      'task_completed',
    ]);
    expect(browser.requests).toEqual([
      { lastEventId: null, status: 200 },
      { lastEventId: '4', status: 204 },
    ]);
  });
});
