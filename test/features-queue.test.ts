import { afterEach, describe, expect, it } from 'vitest';
import { cancel, expectProblem, Harness, hasType, isTerminalEvent, json, post, snapshotOf, touch } from './helpers/harness.ts';
import type { TestServer } from './helpers/server.ts';
import type { SseEvent } from './helpers/sse.ts';
import { until } from './helpers/timeout.ts';

// The queue as a client sees it: priority order, pausing and resuming intake, and the
// figures of GET /api/tasks/stats.
const harness = new Harness();
afterEach(() => harness.close());

const QUICK = { type: 'sample', input: { steps: 1, step_ms: 0 } };
const startOrder = (events: readonly SseEvent[]) =>
  events.filter((event) => event.event === 'task_started').map((event) => event.json.task_id as string);
const endedIds = (events: readonly SseEvent[]) =>
  new Set(events.filter(isTerminalEvent).map((event) => event.json.task_id as string));
const stats = async (server: TestServer) => {
  const response = await server.api('/api/tasks/stats');
  expect(response.status).toBe(200);
  return json(response);
};

describe('priority', () => {
  it('starts queued tasks highest priority first, and in creation order within one priority', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const all = await harness.connect(server, '/api/events');
    expect((await post(server, '/api/queue/pause')).status).toBe(200);

    const priorities = [undefined, 5, -1, 5, 0, 1000, -1000, 0, -1];
    const tasks: any[] = [];
    for (const priority of priorities) {
      tasks.push(await server.create({ ...QUICK, ...(priority === undefined ? {} : { priority }) }));
    }
    expect(tasks.map((task) => task.priority)).toEqual(priorities.map((priority) => priority ?? 0));

    expect((await post(server, '/api/queue/resume')).status).toBe(200);
    await all.waitFor((events) => endedIds(events).size === tasks.length, 'every queued task to end', 20_000);
    const [none, fiveA, minusOneA, fiveB, zeroA, top, bottom, zeroB, minusOneB] = tasks.map((task) => task.task_id);
    expect(startOrder(all.events)).toEqual([top, fiveA, fiveB, none, zeroA, zeroB, minusOneA, minusOneB, bottom]);
  });

  it('never preempts: a higher-priority task waits for the running one to end', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const all = await harness.connect(server, '/api/events');
    const dir = harness.dir();
    const low = await server.create({ type: 'gate', input: { dir }, priority: -1000 });
    const lowStream = await harness.connect(server, low.stream_url);
    await lowStream.waitFor(hasType('progress_update'), 'the low-priority gate to run');
    const urgent = await server.create({ ...QUICK, priority: 1000 });
    const normal = await server.create(QUICK);
    expect((await snapshotOf(server, urgent.task_id)).status).toBe('queued');

    touch(dir, 'open');
    await all.waitFor((events) => endedIds(events).size === 3, 'all three tasks to end');
    expect(startOrder(all.events)).toEqual([low.task_id, urgent.task_id, normal.task_id]);
    const lowEnd = all.events.findIndex((event) => isTerminalEvent(event) && event.json.task_id === low.task_id);
    const urgentStart = all.events.findIndex((event) => event.event === 'task_started' && event.json.task_id === urgent.task_id);
    expect(lowEnd).toBeLessThan(urgentStart);
    expect((await snapshotOf(server, low.task_id)).status).toBe('completed');
  });

  it('refuses a priority that is not an integer in -1000..1000 with 422 at /priority', async () => {
    const server = await harness.serve();
    for (const priority of [1001, -1001, 1.5, '5', null]) {
      const problem = await expectProblem(await post(server, '/api/tasks', { ...QUICK, priority }), 422, 'validation_failed');
      expect(problem.errors!.map((error) => error.pointer), `priority ${priority}`).toEqual(['/priority']);
    }
    expect((await json(await server.api('/api/tasks'))).tasks).toEqual([]);
  });
});

describe('pausing and resuming intake', () => {
  it('while paused, accepts and queues new tasks but starts none; running tasks go on to their end', async () => {
    const server = await harness.serve({ MAX_WORKERS: '2', MAX_QUEUE: '10' });
    const all = await harness.connect(server, '/api/events');
    const dir = harness.dir();
    const running = await server.create({ type: 'gate', input: { dir } });
    const runningStream = await harness.connect(server, running.stream_url);
    await runningStream.waitFor(hasType('progress_update'), 'the gate to run');

    const paused = await post(server, '/api/queue/pause');
    expect(paused.status).toBe(200);
    expect(await json(paused)).toEqual({ paused: true, size: 0, max: 10 });
    // Pausing twice is pausing.
    expect(await json(await post(server, '/api/queue/pause'))).toEqual({ paused: true, size: 0, max: 10 });

    const first = await server.create(QUICK);
    const second = await server.create(QUICK);
    expect([first.status, second.status]).toEqual(['queued', 'queued']);
    expect(await stats(server)).toMatchObject({ paused: true, workers: { max: 2, busy: 1 }, queue: { size: 2, max: 10 } });

    // The running task finishes while paused. Its worker, and the other one, stay idle: had
    // dispatch started anything, it would have done so before the terminal event went out.
    touch(dir, 'open');
    const events = await runningStream.untilEnd('the running gate to complete while paused');
    expect(events.at(-1)!.event).toBe('task_completed');
    for (const task of [first, second]) {
      expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'queued', started_at: null, attempt: 0 });
    }
    expect(await stats(server)).toMatchObject({ paused: true, workers: { busy: 0 }, queue: { size: 2 } });
    expect(startOrder(all.events)).toEqual([running.task_id]);

    // A queued task can still be cancelled while paused; it ends at once.
    expect((await cancel(server, second.task_id)).status).toBe('cancelled');

    const resumed = await post(server, '/api/queue/resume');
    expect(resumed.status).toBe(200);
    expect(await json(resumed)).toMatchObject({ paused: false, max: 10 });
    const firstStream = await harness.connect(server, first.stream_url);
    await firstStream.untilEnd('the queued task to run after resume');
    expect(firstStream.types()).toEqual(['task_started', 'progress_update', 'task_completed']);
    expect(await stats(server)).toMatchObject({ paused: false, queue: { size: 0 } });
    expect(startOrder(all.events)).toEqual([running.task_id, first.task_id]);
    // Resuming twice is resuming.
    expect(await json(await post(server, '/api/queue/resume'))).toEqual({ paused: false, size: 0, max: 10 });
  });

  it('while paused, the queue still fills up to MAX_QUEUE, then create answers 503', async () => {
    const server = await harness.serve({ MAX_WORKERS: '2', MAX_QUEUE: '2' });
    await post(server, '/api/queue/pause');
    const tasks = [await server.create(QUICK), await server.create(QUICK)];
    const full = await post(server, '/api/tasks', QUICK);
    await expectProblem(full, 503, 'queue_full');
    expect(full.headers.get('retry-after')).toBe('1');
    expect((await json(await server.api('/api/tasks'))).tasks).toHaveLength(2);

    await post(server, '/api/queue/resume');
    for (const task of tasks) await (await harness.connect(server, task.stream_url)).untilEnd(`${task.task_id} to end`);
  });
});

describe('GET /api/tasks/stats', () => {
  it('counts tasks per status, busy workers, the queue and whether intake is paused', async () => {
    const server = await harness.serve({ MAX_WORKERS: '2', MAX_QUEUE: '7' });
    expect(await stats(server)).toEqual({
      tasks: { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 },
      workers: { max: 2, busy: 0 },
      queue: { size: 0, max: 7 },
      streams: 0,
      paused: false,
    });

    const completed = await server.create(QUICK);
    const failed = await server.create({ type: 'throws', input: {} });
    for (const task of [completed, failed]) {
      const stream = await harness.connect(server, task.stream_url);
      await stream.untilEnd(`${task.task_id} to end`);
    }
    const blockers = [await server.create({ type: 'block', input: { progress: 1 } }), await server.create({ type: 'block', input: { progress: 1 } })];
    for (const task of blockers) {
      const stream = await harness.connect(server, task.stream_url);
      await stream.waitFor(hasType('progress_update'), `${task.task_id} to run`);
      stream.close();
    }
    const queued = await server.create({ type: 'block', input: {} });
    const cancelled = await server.create({ type: 'block', input: {} });
    await cancel(server, cancelled.task_id);
    await post(server, '/api/queue/pause');

    await until(async () => (await stats(server)).streams === 0, 'the closed streams to be counted out');
    expect(await stats(server)).toEqual({
      tasks: { queued: 1, running: 2, completed: 1, failed: 1, cancelled: 1 },
      workers: { max: 2, busy: 2 },
      queue: { size: 1, max: 7 },
      streams: 0,
      paused: true,
    });
    expect((await snapshotOf(server, queued.task_id)).status).toBe('queued');
  });

  it('counts each open SSE connection once, per-task or multiplexed, and forgets it when it closes', async () => {
    const server = await harness.serve();
    const tasks = [await server.create({ type: 'block', input: {} }), await server.create({ type: 'block', input: {} })];
    const streamsNow = async () => (await stats(server)).streams;

    const one = await harness.connect(server, tasks[0].stream_url);
    expect(await streamsNow()).toBe(1);
    const everything = await harness.connect(server, '/api/events');
    expect(await streamsNow()).toBe(2);
    const chosen = await harness.connect(server, `/api/events?task_id=${tasks[0].task_id}&task_id=${tasks[1].task_id}`);
    expect(await streamsNow()).toBe(3);

    chosen.close();
    await until(async () => (await streamsNow()) === 2, 'the multiplexed stream to be counted out');
    one.close();
    everything.close();
    await until(async () => (await streamsNow()) === 0, 'every stream to be counted out');
    for (const task of tasks) await cancel(server, task.task_id);
  });
});
