import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient, type SseEvent } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

// Execution as a client sees it: cancel (queued, cooperative, synchronous, non-cooperative),
// timeouts, failing tasks, the queue limit, and exactly one terminal event per task. Real
// server, real worker threads, real SSE client; every wait is labelled and waits on events.
// Every test starts its own server with the environment it needs; all servers and clients
// are closed here, whether the test passed or not.
const servers: TestServer[] = [];
const clients: SseClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function serve(env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

/** Opens the task's SSE stream. */
async function stream(server: TestServer, task: { stream_url: string }): Promise<SseClient> {
  const client = await SseClient.connect(`${server.url}${task.stream_url}`);
  clients.push(client);
  expect(client.response.status).toBe(200);
  return client;
}

const TERMINAL_TYPES = ['task_completed', 'task_failed', 'task_cancelled'];
const isTerminal = (event: SseEvent) => TERMINAL_TYPES.includes(event.event ?? '');
const hasType = (type: string) => (events: SseEvent[]) => events.some((event) => event.event === type);

/** A response's JSON body, untyped: tests assert its shape. */
const json = (response: Response): Promise<any> => response.json();

const cancelRequest = (server: TestServer, taskId: string) =>
  server.api(`/api/tasks/${taskId}/cancel`, { method: 'POST' });

/** POST …/cancel, asserting 202; returns the snapshot it answered with. */
async function cancel(server: TestServer, taskId: string): Promise<any> {
  const response = await cancelRequest(server, taskId);
  const body = await json(response);
  expect(response.status, JSON.stringify(body)).toBe(202);
  return body;
}

async function snapshotOf(server: TestServer, taskId: string): Promise<any> {
  const response = await server.api(`/api/tasks/${taskId}`);
  expect(response.status).toBe(200);
  return json(response);
}

/** Asserts an RFC 9457 answer with our code; returns its body. */
async function expectProblem(response: Response, status: number, code: string): Promise<any> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = await json(response);
  expect(body).toMatchObject({ status, code });
  return body;
}

/**
 * The stream's rules that hold for every task: ids 1, 2, 3… matching each envelope's seq and
 * event type, and exactly one terminal event, the last one.
 */
function expectWellFormed(events: readonly SseEvent[], taskId: string): void {
  expect(events.map((event) => event.id)).toEqual(events.map((_, index) => String(index + 1)));
  for (const event of events) {
    expect(event.json).toMatchObject({ event_type: event.event, task_id: taskId, seq: Number(event.id) });
  }
  expect(events.filter(isTerminal), `terminal events in ${events.map((e) => e.event).join(', ')}`).toHaveLength(1);
  expect(isTerminal(events.at(-1)!)).toBe(true);
}

/** Nothing internal reaches a client: no stack frames, no source paths. */
function expectNothingInternal(text: string): void {
  expect(text).not.toMatch(/^\s*at\s/m); // a stack frame line
  expect(text).not.toMatch(/\bat [^\s"]*\s?\(?[^\s"()]+:\d+:\d+/); // "at fn (file:line:col)"
  expect(text).not.toMatch(/\.(?:ts|js|mjs|cjs):\d+/);
  expect(text).not.toMatch(/file:\/\/|node_modules|\/work\//);
  expect(text).not.toContain(process.cwd());
}

/** Runs a sample task to completion and checks its whole stream: the service still works. */
async function expectSampleCompletes(server: TestServer, label: string): Promise<void> {
  const task = await server.create({ type: 'sample', input: { steps: 2, step_ms: 0 } });
  const client = await stream(server, task);
  await client.untilEnd(`a sample task to complete ${label}`);
  expect(client.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'task_completed']);
  expect(client.events.at(-1)!.json.data).toEqual({ result: { steps_completed: 2 } });
}

async function expectHealthy(server: TestServer): Promise<void> {
  const response = await withTimeout(server.api('/healthz'), 'GET /healthz');
  expect(response.status).toBe(200);
}

/**
 * Starts a `block` task and waits until its code runs: its one progress_update is posted in
 * the same tick as it starts listening for abort. (task_started alone only says it was handed
 * to a thread, which may still be loading the task type; see "a cancel or timeout that lands
 * before the task code runs".)
 */
async function startBlocker(server: TestServer) {
  const task = await server.create({ type: 'block', input: { progress: 1 } });
  const client = await stream(server, task);
  await client.waitFor(hasType('progress_update'), `blocker ${task.task_id} to run`);
  return { task, client };
}

/** The stream of a blocker cancelled while it ran. */
const BLOCKER_CANCELLED = ['task_started', 'progress_update', 'task_cancelled'];

describe('cancelling a queued task', () => {
  it('ends it at once as task_cancelled (reason requested); it never starts', async () => {
    const server = await serve({ MAX_WORKERS: '1' });
    const blocker = await startBlocker(server);

    const queued = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(queued.status).toBe('queued');
    const live = await stream(server, queued);

    const answer = await cancel(server, queued.task_id);
    expect(answer).toMatchObject({
      task_id: queued.task_id,
      status: 'cancelled',
      started_at: null,
      result: null,
      error: null,
    });
    expect(answer.finished_at).toEqual(expect.any(String));

    const events = await live.untilEnd('the queued task stream to end');
    expect(live.types()).toEqual(['task_cancelled']);
    expect(events[0]!.id).toBe('1');
    expect(events[0]!.json.data).toEqual({ reason: 'requested' });

    // Free the only worker, then prove it has taken later work: the cancelled task was skipped.
    await cancel(server, blocker.task.task_id);
    await blocker.client.untilEnd('the blocker stream to end');
    expect(blocker.client.types()).toEqual(BLOCKER_CANCELLED);
    await expectSampleCompletes(server, 'after the blocker');

    expect(await snapshotOf(server, queued.task_id)).toMatchObject({ status: 'cancelled', started_at: null });
    const late = await stream(server, queued);
    await late.untilEnd('a late stream on the cancelled queued task to end');
    expect(late.types()).toEqual(['task_cancelled']);
    expect(late.events[0]!.json.data).toEqual({ reason: 'requested' });
  });
});

describe('cancelling a running task', () => {
  // With a grace of a minute, the thread is never terminated within a test's wait: only the
  // task stopping by itself (it saw ctx.signal) can explain a task_cancelled.
  const NO_TERMINATION = { CANCEL_GRACE_MS: '60000' };

  it('stops a cooperative async task: task_started, its progress, then one task_cancelled', async () => {
    const server = await serve(NO_TERMINATION);
    const task = await server.create({ type: 'block', input: { progress: 2 } });
    const client = await stream(server, task);
    await client.waitFor((events) => events.length === 3, 'task_started and 2 progress_update');

    const answer = await cancel(server, task.task_id);
    // 202 answers at once; the running task ends shortly after.
    expect(['running', 'cancelled']).toContain(answer.status);

    const events = await client.untilEnd('the cancelled stream to end');
    expect(client.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'task_cancelled']);
    expectWellFormed(events, task.task_id);
    expect(events.at(-1)!.json.data).toEqual({ reason: 'requested' });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({
      status: 'cancelled',
      result: null,
      error: null,
      started_at: expect.any(String),
      finished_at: expect.any(String),
    });
  });

  it('stops a synchronous loop that checks ctx.signal (shared memory), without terminating its thread', async () => {
    const server = await serve({ ...NO_TERMINATION, MAX_WORKERS: '1' });
    const task = await server.create({ type: 'spin', input: {} });
    const client = await stream(server, task);
    // The fixture reports "spinning" right before entering its loop.
    await client.waitFor(hasType('progress_update'), 'spin to enter its loop');

    await cancel(server, task.task_id);
    const events = await client.untilEnd('the spin stream to end');
    expect(client.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    expectWellFormed(events, task.task_id);
    expect(events.at(-1)!.json.data).toEqual({ reason: 'requested' });
    // The same (only) thread takes the next task.
    await expectSampleCompletes(server, 'after spin');
  });

  it('stops primes inside its synchronous sieve loop', async () => {
    const server = await serve(NO_TERMINATION);
    const task = await server.create({ type: 'primes', input: { limit: 100_000_000_000 } });
    const client = await stream(server, task);
    // The first progress comes from inside the sieve loop: the task is deep in synchronous work.
    await client.waitFor(hasType('progress_update'), 'primes to report progress from its loop', 60_000);

    const cancelledAt = performance.now();
    await cancel(server, task.task_id);
    const answeredAt = performance.now();
    await client.waitFor(hasType('task_cancelled'), 'task_cancelled for primes');
    const arrivedAt = performance.now();
    console.log(
      `primes(1e11) cancel → task_cancelled: ${(arrivedAt - cancelledAt).toFixed(1)} ms ` +
        `(202 after ${(answeredAt - cancelledAt).toFixed(1)} ms)`,
    );

    const events = await client.untilEnd('the primes stream to end');
    expectWellFormed(events, task.task_id);
    expect(events[0]!.event).toBe('task_started');
    expect(events.at(-1)!.json.data).toEqual({ reason: 'requested' });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'cancelled', result: null });
  }, 90_000);

  it('terminates a task that ignores cancellation after CANCEL_GRACE_MS, and replaces its thread', async () => {
    const server = await serve({ CANCEL_GRACE_MS: '200', MAX_WORKERS: '1' });
    const task = await server.create({ type: 'ignore_cancel', input: {} });
    const client = await stream(server, task);
    await client.waitFor(hasType('progress_update'), 'ignore_cancel to enter its loop');

    await cancel(server, task.task_id);
    const events = await client.untilEnd('the ignore_cancel stream to end');
    expect(client.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    expectWellFormed(events, task.task_id);
    expect(events.at(-1)!.json.data).toEqual({ reason: 'requested' });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'cancelled', error: null });

    // One worker, and its thread was terminated: only a new thread can run this.
    await expectHealthy(server);
    await expectSampleCompletes(server, 'on the replacement thread');
  });
});

describe('timeout', () => {
  it('fails a cooperative task that runs past timeout_ms with code timeout', async () => {
    // No termination within the test: the task stops because it saw ctx.signal abort.
    const server = await serve({ CANCEL_GRACE_MS: '60000', MAX_WORKERS: '1' });
    // Have the only thread load `block` first, so the timeout lands while the task's code
    // waits, not while its module loads (that case has its own test below).
    const warm = await startBlocker(server);
    await cancel(server, warm.task.task_id);
    await warm.client.untilEnd('the warm-up blocker to end');
    const task = await server.create({ type: 'block', input: {}, timeout_ms: 200 });
    expect(task.timeout_ms).toBe(200);
    const client = await stream(server, task);
    const events = await client.untilEnd('the timed-out block stream to end');
    expect(client.types()).toEqual(['task_started', 'task_failed']);
    expectWellFormed(events, task.task_id);
    expect(events.at(-1)!.json.data.error).toEqual({ code: 'timeout', message: expect.any(String) });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({
      status: 'failed',
      result: null,
      error: { code: 'timeout' },
    });
  });

  it('fails a task that ignores its signal with code timeout, terminating it; the service carries on', async () => {
    const server = await serve({ CANCEL_GRACE_MS: '200', MAX_WORKERS: '1' });
    const task = await server.create({ type: 'ignore_cancel', input: {}, timeout_ms: 200 });
    const client = await stream(server, task);
    const events = await client.untilEnd('the timed-out ignore_cancel stream to end');
    // On a slow machine the thread may be terminated before the task posts its one progress.
    expect([
      ['task_started', 'progress_update', 'task_failed'],
      ['task_started', 'task_failed'],
    ]).toContainEqual(client.types());
    expectWellFormed(events, task.task_id);
    expect(events.at(-1)!.json.data.error).toMatchObject({ code: 'timeout' });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'failed', error: { code: 'timeout' } });

    await expectHealthy(server);
    await expectSampleCompletes(server, 'after the terminated timeout');
  });

  it('counts from the start, not from the time spent queued', async () => {
    const server = await serve({ MAX_WORKERS: '1' });
    // Load the sample module on the only thread first, so its later run is only the task.
    await expectSampleCompletes(server, 'to warm the worker');
    const blocker = await startBlocker(server);

    const queuedAt = performance.now();
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 }, timeout_ms: 300 });
    const client = await stream(server, task);
    // The one wait on time: the task has now been queued for twice its timeout. Waiting
    // longer (a slow machine) only makes the point stronger.
    await until(() => performance.now() - queuedAt >= 600, 'the queued task to wait 600 ms');
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'queued', started_at: null });
    expect(client.events).toEqual([]);

    await cancel(server, blocker.task.task_id);
    const events = await client.untilEnd('the formerly queued task to end');
    expect(client.types()).toEqual(['task_started', 'progress_update', 'task_completed']);
    expectWellFormed(events, task.task_id);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({
      status: 'completed',
      result: { steps_completed: 1 },
      error: null,
    });
  });
});

// task_started is published when the executor hands the task to Piscina. On a fresh thread
// the worker then still loads the task type's module (over 100 ms here, more while the pool's
// threads boot) before run() attaches its listener. A cancel or timeout in that window must
// still stop the task by itself, not only by terminating its thread after CANCEL_GRACE_MS.
describe('a cancel or timeout that lands before the task code runs', () => {
  const NO_TERMINATION = { CANCEL_GRACE_MS: '60000' };

  it('cancel right after task_started on a fresh thread still ends the task', async () => {
    const server = await serve(NO_TERMINATION);
    const task = await server.create({ type: 'block', input: {} });
    const client = await stream(server, task);
    await client.waitFor(hasType('task_started'), 'task_started');
    await cancel(server, task.task_id);
    const events = await client.untilEnd('task_cancelled without terminating the thread');
    expectWellFormed(events, task.task_id);
    expect(client.types()).toEqual(['task_started', 'task_cancelled']);
    expect(events.at(-1)!.json.data).toEqual({ reason: 'requested' });
  });

  it('a timeout that fires before the task code runs still fails the task with timeout', async () => {
    const server = await serve(NO_TERMINATION);
    // 1 ms: the timeout fires while the fresh thread is still loading `block`, every time.
    const task = await server.create({ type: 'block', input: {}, timeout_ms: 1 });
    const client = await stream(server, task);
    const events = await client.untilEnd('task_failed timeout without terminating the thread');
    expectWellFormed(events, task.task_id);
    expect(client.types()).toEqual(['task_started', 'task_failed']);
    expect(events.at(-1)!.json.data.error).toMatchObject({ code: 'timeout' });
  });
});

describe('a task that fails', () => {
  const cases = [
    {
      type: 'throws',
      input: { message: 'disk on fire' },
      code: 'task_error',
      message: (text: string) => expect(text).toBe('disk on fire'),
    },
    {
      type: 'bad_result',
      input: {},
      code: 'invalid_result',
      message: (text: string) => expect(text).toMatch(/schema/),
    },
    {
      type: 'exits',
      input: {},
      code: 'worker_crashed',
      message: (text: string) => expect(text.length).toBeGreaterThan(0),
    },
    {
      type: 'exhausts_heap',
      input: {},
      env: { WORKER_MAX_HEAP_MB: '64' },
      code: 'worker_crashed',
      message: (text: string) => expect(text).toMatch(/memory limit/),
    },
  ];

  it.each(cases)('$type → task_failed $code, no internals; other tasks and the service carry on', async (c) => {
    const server = await serve({ MAX_WORKERS: '3', ...c.env });
    // Two other tasks running the whole time: one held until we cancel it, one sample.
    const bystander = await startBlocker(server);
    const neighbour = await server.create({ type: 'sample', input: { steps: 10, step_ms: 50 } });
    const neighbourStream = await stream(server, neighbour);

    const task = await server.create({ type: c.type, input: c.input });
    const client = await stream(server, task);
    const events = await client.untilEnd(`the ${c.type} stream to end`);
    expectWellFormed(events, task.task_id);
    expect(events[0]!.event).toBe('task_started');
    const failed = events.at(-1)!;
    expect(failed.event).toBe('task_failed');
    expect(Object.keys(failed.json.data)).toEqual(['error']);
    expect(Object.keys(failed.json.data.error).sort()).toEqual(['code', 'message']);
    expect(failed.json.data.error.code).toBe(c.code);
    c.message(failed.json.data.error.message);
    expectNothingInternal(failed.data);

    const snapshotResponse = await server.api(`/api/tasks/${task.task_id}`);
    const snapshotText = await snapshotResponse.text();
    expectNothingInternal(snapshotText);
    const snapshot = JSON.parse(snapshotText);
    expect(snapshot).toMatchObject({ status: 'failed', result: null });
    expect(snapshot.error).toEqual(failed.json.data.error);

    // The task held across the failure is still running, and stops normally when asked.
    expect(await snapshotOf(server, bystander.task.task_id)).toMatchObject({ status: 'running' });
    await cancel(server, bystander.task.task_id);
    await bystander.client.untilEnd('the bystander stream to end');
    expect(bystander.client.types()).toEqual(BLOCKER_CANCELLED);

    const neighbourEvents = await neighbourStream.untilEnd('the neighbour sample to end');
    expectWellFormed(neighbourEvents, neighbour.task_id);
    expect(neighbourStream.types()).toEqual([
      'task_started',
      ...Array<string>(10).fill('progress_update'),
      'task_completed',
    ]);

    await expectHealthy(server);
    await expectSampleCompletes(server, `after ${c.type}`);
  });
});

describe('queue limit', () => {
  it('answers 503 queue_full with Retry-After when MAX_QUEUE tasks wait, and creates nothing', async () => {
    const server = await serve({ MAX_WORKERS: '1', MAX_QUEUE: '1' });
    const blocker = await startBlocker(server);
    const queued = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(queued.status).toBe('queued');

    const response = await server.api('/api/tasks', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'sample', input: { steps: 1, step_ms: 0 } }),
    });
    await expectProblem(response, 503, 'queue_full');
    expect(response.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(response.headers.get('location')).toBeNull();

    const list = await json(await server.api('/api/tasks'));
    expect(list.tasks.map((task: { task_id: string }) => task.task_id).sort()).toEqual(
      [blocker.task.task_id, queued.task_id].sort(),
    );

    // Cancelling the waiting task frees its place in the queue.
    await cancel(server, queued.task_id);
    const next = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(next.status).toBe('queued');
    await cancel(server, blocker.task.task_id);
    const client = await stream(server, next);
    await client.untilEnd('the task queued after the 503 to end');
    expect(client.types()).toEqual(['task_started', 'progress_update', 'task_completed']);
  });
});

describe('cancel answers', () => {
  it('409 task_already_ended once the task has ended, 404 for an unknown id', async () => {
    const server = await serve();
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    await (await stream(server, task)).untilEnd('the sample to end');

    await expectProblem(await cancelRequest(server, task.task_id), 409, 'task_already_ended');
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'completed' });
    // Cancelling twice: the second one finds the task ended.
    const blocker = await startBlocker(server);
    await cancel(server, blocker.task.task_id);
    await blocker.client.untilEnd('the blocker to end');
    await expectProblem(await cancelRequest(server, blocker.task.task_id), 409, 'task_already_ended');
    expect(blocker.client.types()).toEqual(BLOCKER_CANCELLED);

    await expectProblem(await cancelRequest(server, randomUUID()), 404, 'task_not_found');
  });
});

describe('exactly one terminal event', () => {
  it('ends every stream of 20 concurrent tasks with one terminal event, its last', async () => {
    const server = await serve({ MAX_WORKERS: '4' });
    type Kind = 'sample' | 'throws' | 'bad_result' | 'block_now' | 'block_started';
    const kinds: Kind[] = [
      ...Array<Kind>(8).fill('sample'),
      ...Array<Kind>(4).fill('throws'),
      ...Array<Kind>(4).fill('bad_result'),
      ...Array<Kind>(2).fill('block_now'),
      ...Array<Kind>(2).fill('block_started'),
    ];
    const bodies: Record<Kind, unknown> = {
      sample: { type: 'sample', input: { steps: 3, step_ms: 5 } },
      throws: { type: 'throws', input: { message: 'expected failure' } },
      bad_result: { type: 'bad_result', input: {} },
      block_now: { type: 'block', input: { progress: 1 } },
      block_started: { type: 'block', input: { progress: 1 } },
    };
    // Interleave the kinds and create them all at once.
    const order = kinds.map((kind, index) => ({ kind, key: (index * 7) % kinds.length })).sort((a, b) => a.key - b.key);
    const tasks = await Promise.all(
      order.map(async ({ kind }) => {
        const task = await server.create(bodies[kind]);
        return { kind, task, client: await stream(server, task) };
      }),
    );

    // Cancel half the blockers wherever they are (queued or running), the rest once running.
    await Promise.all(
      tasks
        .filter(({ kind }) => kind === 'block_now' || kind === 'block_started')
        .map(async ({ kind, task, client }) => {
          if (kind === 'block_started') {
            await client.waitFor(hasType('progress_update'), `blocker ${task.task_id} to run`);
          }
          await cancel(server, task.task_id);
        }),
    );

    await Promise.all(tasks.map(({ client, kind }) => client.untilEnd(`a ${kind} stream to end`)));
    const expectedEnd: Record<Kind, { event: string; status: string }> = {
      sample: { event: 'task_completed', status: 'completed' },
      throws: { event: 'task_failed', status: 'failed' },
      bad_result: { event: 'task_failed', status: 'failed' },
      block_now: { event: 'task_cancelled', status: 'cancelled' },
      block_started: { event: 'task_cancelled', status: 'cancelled' },
    };
    for (const { kind, task, client } of tasks) {
      const events = client.events;
      expectWellFormed(events, task.task_id);
      expect(events.at(-1)!.event, `${kind} ${task.task_id}`).toBe(expectedEnd[kind].event);
      const types = client.types();
      if (kind === 'sample') {
        expect(types).toEqual([
          'task_started',
          'progress_update',
          'progress_update',
          'progress_update',
          'task_completed',
        ]);
      } else if (kind === 'throws' || kind === 'bad_result') {
        expect(types).toEqual(['task_started', 'task_failed']);
        expect(events.at(-1)!.json.data.error.code).toBe(kind === 'throws' ? 'task_error' : 'invalid_result');
      } else if (kind === 'block_started') {
        expect(types).toEqual(['task_started', 'progress_update', 'task_cancelled']);
      } else {
        // Cancelled while queued it never started; while running, it started first.
        expect([
          ['task_cancelled'],
          ['task_started', 'task_cancelled'],
          ['task_started', 'progress_update', 'task_cancelled'],
        ]).toContainEqual(types);
      }
      const snapshot = await snapshotOf(server, task.task_id);
      expect(snapshot.status, `${kind} ${task.task_id}`).toBe(expectedEnd[kind].status);

      // A late subscriber gets the very same story.
      const late = await stream(server, task);
      await late.untilEnd(`a late ${kind} stream to end`);
      expect(late.events.map((event) => [event.id, event.event, event.data])).toEqual(
        events.map((event) => [event.id, event.event, event.data]),
      );
    }
  });
});
