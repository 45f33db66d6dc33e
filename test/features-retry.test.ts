import { afterEach, describe, expect, it } from 'vitest';
import {
  cancel,
  expectProblem,
  expectWellFormed,
  Harness,
  hasType,
  json,
  ofType,
  post,
  snapshotOf,
  touch,
} from './helpers/harness.ts';
import { ManualClock } from './helpers/manual-clock.ts';
import type { TestServer } from './helpers/server.ts';
import type { SseEvent } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

// Retries as a client sees them: automatic attempts (max_attempts, retry_backoff_ms) on one
// task and one stream, and the manual POST /api/tasks/{id}/retry that starts a new task.
const harness = new Harness();
afterEach(() => harness.close());

const LIFECYCLE = ['task_started', 'task_completed', 'task_failed', 'task_cancelled'];
const lifecycle = (events: readonly SseEvent[]) => events.filter((event) => LIFECYCLE.includes(event.event ?? ''));
const startedData = (events: readonly SseEvent[]) => ofType(events, 'task_started').map((event) => event.json.data);

/** Waits (polling the snapshot) until a failed attempt has put the task back in the queue. */
async function untilRetryWaiting(server: TestServer, taskId: string, attempt: number): Promise<any> {
  let snapshot: any;
  await until(async () => {
    snapshot = await snapshotOf(server, taskId);
    return snapshot.status === 'queued' && snapshot.attempt === attempt;
  }, `task ${taskId} to wait for its retry after attempt ${attempt}`);
  return snapshot;
}

describe('automatic retries', () => {
  it('default to one attempt: the first failure is final', async () => {
    const server = await harness.serve();
    const task = await server.create({ type: 'throws', input: { message: 'once' } });
    expect(task).toMatchObject({ attempt: 0, max_attempts: 1, retry_backoff_ms: 1000, retry_of: null, status: 'queued' });
    const stream = await harness.connect(server, task.stream_url);
    const events = await stream.untilEnd('the failing task to end');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'task_failed']);
    expect(events[0]!.json.data).toEqual({ attempt: 1, max_attempts: 1 });
    expect(await snapshotOf(server, task.task_id)).toMatchObject({
      status: 'failed',
      attempt: 1,
      max_attempts: 1,
      error: { code: 'task_error', message: 'once' },
    });
  });

  it('retry task_error until an attempt succeeds: a task_started per attempt, one terminal event', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const dir = harness.dir();
    const task = await server.create({
      type: 'flaky',
      input: { dir, failures: 2 },
      max_attempts: 3,
      retry_backoff_ms: 0,
    });
    expect(task).toMatchObject({ attempt: 0, max_attempts: 3, retry_backoff_ms: 0 });
    const stream = await harness.connect(server, task.stream_url);
    await stream.waitFor((events) => ofType(events, 'task_started').length === 3, 'the third attempt to start');

    // The third run waits for its gate: the snapshot is that of a running third attempt, with
    // nothing left over from the failed ones.
    const running = await snapshotOf(server, task.task_id);
    expect(running).toMatchObject({ status: 'running', attempt: 3, max_attempts: 3, error: null, result: null });
    expect(running.progress).toEqual({ value: null, text: null, step: null, total_steps: null, eta_ms: null });

    touch(dir, 'open');
    const events = await stream.untilEnd('the flaky task to complete');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual([
      'task_started',
      'progress_update',
      'task_started',
      'progress_update',
      'task_started',
      'progress_update',
      'task_completed',
    ]);
    expect(startedData(events)).toEqual([
      { attempt: 1, max_attempts: 3 },
      { attempt: 2, max_attempts: 3, previous_error: { code: 'task_error', message: 'run 1 failed' } },
      { attempt: 3, max_attempts: 3, previous_error: { code: 'task_error', message: 'run 2 failed' } },
    ]);
    expect(ofType(events, 'progress_update').map((event) => event.json.data.text)).toEqual([
      'run 1 half way',
      'run 2 half way',
      'run 3 done',
    ]);
    expect(events.at(-1)!.json.data).toEqual({ result: { runs: 3 } });
    const done = await snapshotOf(server, task.task_id);
    expect(done).toMatchObject({ status: 'completed', attempt: 3, error: null, result: { runs: 3 } });
    // started_at is the first attempt's start.
    expect(Date.parse(done.started_at)).toBeLessThanOrEqual(Date.parse(events[0]!.json.timestamp));
  });

  it('retry timeout and worker_crashed, and fail with the last attempt\'s error once attempts run out', async () => {
    const server = await harness.serve({ MAX_WORKERS: '2', CANCEL_GRACE_MS: '200' });
    const timesOut = await server.create({
      type: 'block',
      input: {},
      timeout_ms: 200,
      max_attempts: 2,
      retry_backoff_ms: 0,
    });
    const crashes = await server.create({ type: 'exits', input: {}, max_attempts: 3, retry_backoff_ms: 0 });
    const cases = [
      { task: timesOut, code: 'timeout', attempts: 2 },
      { task: crashes, code: 'worker_crashed', attempts: 3 },
    ];
    const streams = await Promise.all(cases.map(({ task }) => harness.connect(server, task.stream_url)));
    for (const [index, { task, code, attempts }] of cases.entries()) {
      const events = await streams[index]!.untilEnd(`the ${code} task to end`, 20_000);
      expectWellFormed(events, task.task_id);
      expect(lifecycle(events).map((event) => event.event)).toEqual([
        ...Array<string>(attempts).fill('task_started'),
        'task_failed',
      ]);
      expect(startedData(events)).toEqual(
        Array.from({ length: attempts }, (_, i) => ({
          attempt: i + 1,
          max_attempts: attempts,
          ...(i === 0 ? {} : { previous_error: { code, message: expect.any(String) } }),
        })),
      );
      expect(events.at(-1)!.json.data.error.code).toBe(code);
      expect(await snapshotOf(server, task.task_id)).toMatchObject({
        status: 'failed',
        attempt: attempts,
        max_attempts: attempts,
        error: { code },
      });
    }
  });

  it('never retry invalid_result', async () => {
    const server = await harness.serve();
    const task = await server.create({ type: 'bad_result', input: {}, max_attempts: 5, retry_backoff_ms: 0 });
    const stream = await harness.connect(server, task.stream_url);
    const events = await stream.untilEnd('the bad_result task to end');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'task_failed']);
    expect(events.at(-1)!.json.data.error.code).toBe('invalid_result');
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'failed', attempt: 1, max_attempts: 5 });
  });

  it('never retry a cancelled attempt', async () => {
    const server = await harness.serve();
    const task = await server.create({ type: 'block', input: { progress: 1 }, max_attempts: 5, retry_backoff_ms: 0 });
    const stream = await harness.connect(server, task.stream_url);
    await stream.waitFor(hasType('progress_update'), 'the blocker to run');
    await cancel(server, task.task_id);
    const events = await stream.untilEnd('the cancelled task to end');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'cancelled', attempt: 1, error: null });
  });

  it('wait the backoff before each retry, doubling per attempt, with at most half of it random', async () => {
    // The service's clock drives retry timers: nothing starts until the test moves it.
    const clock = new ManualClock();
    const server = await harness.serve({}, { clock });
    const task = await server.create({ type: 'throws', input: { message: 'again' }, max_attempts: 3, retry_backoff_ms: 1000 });
    const stream = await harness.connect(server, task.stream_url);

    // Before attempt 2: between 500 and 1000 ms.
    const waiting = await untilRetryWaiting(server, task.task_id, 1);
    expect(waiting).toMatchObject({ error: { code: 'task_error', message: 'again' }, finished_at: null, expires_at: null });
    clock.advance(499);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'queued', attempt: 1 });
    expect(ofType(stream.events, 'task_started')).toHaveLength(1);
    clock.advance(501);
    await stream.waitFor((events) => ofType(events, 'task_started').length === 2, 'attempt 2 once 1000 ms passed');

    // Before attempt 3: between 1000 and 2000 ms.
    await untilRetryWaiting(server, task.task_id, 2);
    clock.advance(999);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'queued', attempt: 2 });
    expect(ofType(stream.events, 'task_started')).toHaveLength(2);
    clock.advance(1001);

    const events = await stream.untilEnd('the last attempt to fail');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'task_started', 'task_started', 'task_failed']);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'failed', attempt: 3, error: { code: 'task_error' } });
  });

  it('a cancel between attempts ends the task at once, with no further start', async () => {
    const server = await harness.serve();
    const task = await server.create({ type: 'throws', input: {}, max_attempts: 3, retry_backoff_ms: 3_600_000 });
    const stream = await harness.connect(server, task.stream_url);
    await untilRetryWaiting(server, task.task_id, 1);

    // A long-poll does not count a failed attempt as the end.
    const early = await json(await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=0`));
    expect(early).toMatchObject({ status: 'queued', attempt: 1 });

    const answer = await cancel(server, task.task_id);
    expect(answer).toMatchObject({ status: 'cancelled', attempt: 1 });
    const events = await stream.untilEnd('the cancelled task to end');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'task_cancelled']);
    // A cancelled task carries no error, even if an earlier attempt failed.
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'cancelled', attempt: 1, error: null });
    const stats = await json(await server.api('/api/tasks/stats'));
    expect(stats.tasks).toMatchObject({ queued: 0, cancelled: 1 });
  });

  it('GET …/wait answers only once the last attempt has ended', async () => {
    const server = await harness.serve();
    const task = await server.create({ type: 'exits', input: {}, max_attempts: 2, retry_backoff_ms: 0 });
    const response = await withTimeout(
      server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=60000`),
      'the long-poll on a retried task',
      30_000,
    );
    expect(response.status).toBe(200);
    expect(await json(response)).toMatchObject({ status: 'failed', attempt: 2, error: { code: 'worker_crashed' } });
  });

  it('refuse max_attempts outside 1..20 and retry_backoff_ms outside 0..3600000 with 422 at the field', async () => {
    const server = await harness.serve();
    const cases: [Record<string, unknown>, string][] = [
      [{ max_attempts: 0 }, '/max_attempts'],
      [{ max_attempts: 21 }, '/max_attempts'],
      [{ max_attempts: 1.5 }, '/max_attempts'],
      [{ max_attempts: '3' }, '/max_attempts'],
      [{ retry_backoff_ms: -1 }, '/retry_backoff_ms'],
      [{ retry_backoff_ms: 3_600_001 }, '/retry_backoff_ms'],
      [{ retry_backoff_ms: 0.5 }, '/retry_backoff_ms'],
    ];
    for (const [options, pointer] of cases) {
      const problem = await expectProblem(
        await post(server, '/api/tasks', { type: 'sample', input: {}, ...options }),
        422,
        'validation_failed',
      );
      expect(problem.errors!.map((error) => error.pointer), JSON.stringify(options)).toEqual([pointer]);
    }
    const edges = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 }, max_attempts: 20, retry_backoff_ms: 3_600_000 });
    expect(edges).toMatchObject({ max_attempts: 20, retry_backoff_ms: 3_600_000 });
    expect((await json(await server.api('/api/tasks'))).tasks).toHaveLength(1);
  });
});

describe('POST /api/tasks/{id}/retry', () => {
  it('starts a failed task again as a new task: same type, input and options, retry_of naming it', async () => {
    const server = await harness.serve();
    const options = { priority: 7, timeout_ms: 5000, max_attempts: 1, retry_backoff_ms: 10, labels: { team: 'core' } };
    const first = await server.create({ type: 'throws', input: { message: 'try me' }, ...options });
    await (await harness.connect(server, first.stream_url)).untilEnd('the first task to fail');
    const failed = await snapshotOf(server, first.task_id);
    expect(failed.status).toBe('failed');

    const response = await post(server, `/api/tasks/${first.task_id}/retry`);
    const retry = await json(response);
    expect(response.status, JSON.stringify(retry)).toBe(201);
    expect(response.headers.get('location')).toBe(`/api/tasks/${retry.task_id}`);
    expect(retry.task_id).not.toBe(first.task_id);
    expect(retry).toMatchObject({
      type: 'throws',
      input: { message: 'try me' },
      ...options,
      status: 'queued',
      attempt: 0,
      error: null,
      started_at: null,
      retry_of: first.task_id,
      stream_url: `/api/tasks/${retry.task_id}/events`,
    });
    const stream = await harness.connect(server, retry.stream_url);
    const events = await stream.untilEnd('the retry to fail as well');
    expectWellFormed(events, retry.task_id);
    expect(events.at(-1)!.json.data.error).toEqual({ code: 'task_error', message: 'try me' });

    // The old task is as it was; a retry of the retry names the retry.
    expect(await snapshotOf(server, first.task_id)).toEqual(failed);
    const again = await post(server, `/api/tasks/${retry.task_id}/retry`);
    expect(again.status).toBe(201);
    expect((await json(again)).retry_of).toBe(retry.task_id);
  });

  it('starts a cancelled task again, whether it was cancelled queued or running', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const running = await server.create({ type: 'block', input: { progress: 1 } });
    await (await harness.connect(server, running.stream_url)).waitFor(hasType('progress_update'), 'the blocker to run');
    const queued = await server.create({ type: 'block', input: { progress: 1 } });
    expect((await cancel(server, queued.task_id)).status).toBe('cancelled');
    await cancel(server, running.task_id);
    await (await harness.connect(server, running.stream_url)).untilEnd('the running blocker to be cancelled');

    for (const old of [queued, running]) {
      const response = await post(server, `/api/tasks/${old.task_id}/retry`);
      const retry = await json(response);
      expect(response.status, JSON.stringify(retry)).toBe(201);
      expect(retry).toMatchObject({ type: 'block', input: { progress: 1 }, retry_of: old.task_id });
      const stream = await harness.connect(server, retry.stream_url);
      await stream.waitFor(hasType('progress_update'), `the retry of ${old.task_id} to run`);
      await cancel(server, retry.task_id);
      await stream.untilEnd('the retry to be cancelled');
      expect(stream.types()).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    }
  });

  it('answers 409 task_not_retryable for a completed, running or queued task (also between attempts), 404 for an unknown one', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1' });
    const completed = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    await (await harness.connect(server, completed.stream_url)).untilEnd('the sample task to complete');
    const betweenAttempts = await server.create({ type: 'throws', input: {}, max_attempts: 2, retry_backoff_ms: 3_600_000 });
    await untilRetryWaiting(server, betweenAttempts.task_id, 1);
    const running = await server.create({ type: 'block', input: { progress: 1 } });
    await (await harness.connect(server, running.stream_url)).waitFor(hasType('progress_update'), 'the blocker to run');
    const queued = await server.create({ type: 'block', input: {} });

    for (const [task, status] of [
      [completed, 'completed'],
      [running, 'running'],
      [queued, 'queued'],
      [betweenAttempts, 'queued'],
    ] as const) {
      const problem = await expectProblem(await post(server, `/api/tasks/${task.task_id}/retry`), 409, 'task_not_retryable');
      expect(problem.detail).toContain(status);
    }
    await expectProblem(await post(server, '/api/tasks/0190a5f4-0000-7000-8000-000000000000/retry'), 404, 'task_not_found');
    // Nothing was created.
    expect((await json(await server.api('/api/tasks'))).tasks).toHaveLength(4);
  });

  it('answers 503 queue_full when no more tasks may wait, and creates nothing', async () => {
    const server = await harness.serve({ MAX_WORKERS: '1', MAX_QUEUE: '1' });
    const failed = await server.create({ type: 'throws', input: {} });
    await (await harness.connect(server, failed.stream_url)).untilEnd('the task to fail');
    await post(server, '/api/queue/pause');
    await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const response = await post(server, `/api/tasks/${failed.task_id}/retry`);
    await expectProblem(response, 503, 'queue_full');
    expect(response.headers.get('retry-after')).toBe('1');
    expect((await json(await server.api('/api/tasks'))).tasks).toHaveLength(2);
  });
});
