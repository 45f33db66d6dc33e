import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Reaper } from '../src/reaper.ts';
import { ManualClock } from './helpers/manual-clock.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

/** A response's JSON body, untyped: tests assert its shape. */
const json = (response: Response): Promise<any> => response.json();

describe('Reaper with a manual clock', () => {
  function reaperWith(clock: ManualClock, known?: Set<string>) {
    const evicted: { taskId: string; at: number }[] = [];
    const reaper = new Reaper({
      clock,
      evict: (taskId) => {
        evicted.push({ taskId, at: clock.now() });
        return known ? known.delete(taskId) : true;
      },
    });
    return { reaper, evicted, ids: () => evicted.map((entry) => entry.taskId) };
  }

  it('evicts exactly at expiresAt, not a millisecond before', () => {
    const clock = new ManualClock();
    const start = clock.now();
    const { reaper, evicted, ids } = reaperWith(clock);
    reaper.schedule('a', start + 1000);
    expect(reaper.pending).toBe(1);

    clock.advance(999);
    expect(ids()).toEqual([]);
    clock.advance(1);
    expect(evicted).toEqual([{ taskId: 'a', at: start + 1000 }]);
    expect(reaper.status).toEqual({ lastRunAt: start + 1000, evictedTotal: 1, pending: 0 });

    clock.advance(10_000_000);
    expect(ids()).toEqual(['a']);
    expect(clock.pending).toBe(0);
  });

  it('evicts an already expired task on the next turn of the clock', () => {
    const clock = new ManualClock();
    const { reaper, ids } = reaperWith(clock);
    reaper.schedule('late', clock.now() - 5);
    clock.advance(0);
    expect(ids()).toEqual(['late']);
  });

  it('evicts many tasks in expiry order, each at its own time, with one timer at a time', () => {
    const clock = new ManualClock();
    const start = clock.now();
    const { reaper, evicted } = reaperWith(clock);
    // Expiries 5, 15, 15, 25, 35, 35, ... ms after start: finish order, some at the same instant.
    const due = Array.from({ length: 200 }, (_, i) => ({ taskId: `t${i}`, expiresAt: start + 5 + 10 * Math.ceil(i / 2) }));
    for (const { taskId, expiresAt } of due) reaper.schedule(taskId, expiresAt);
    expect(reaper.pending).toBe(due.length);
    expect(clock.pending).toBe(1);

    for (let elapsed = 0; elapsed <= 1100; elapsed += 7) {
      clock.advance(elapsed === 0 ? 0 : 7);
      const expected = due.filter((entry) => entry.expiresAt <= clock.now()).map((entry) => entry.taskId);
      expect(evicted.map((entry) => entry.taskId), `at +${clock.now() - start} ms`).toEqual(expected);
      expect(clock.pending).toBeLessThanOrEqual(1);
    }
    // Each was evicted at its expiry exactly, not at the next multiple of some sweep period.
    expect(evicted).toEqual(due.map(({ taskId, expiresAt }) => ({ taskId, at: expiresAt })));
    expect(reaper.status).toMatchObject({ evictedTotal: due.length, pending: 0 });
    expect(clock.pending).toBe(0);
  });

  it('picks up tasks scheduled after earlier ones were evicted', () => {
    const clock = new ManualClock();
    const start = clock.now();
    const { reaper, evicted } = reaperWith(clock);
    reaper.schedule('first', start + 100);
    clock.advance(150);
    reaper.schedule('second', clock.now() + 100);
    clock.advance(99);
    expect(evicted.map((entry) => entry.taskId)).toEqual(['first']);
    clock.advance(1);
    expect(evicted).toEqual([
      { taskId: 'first', at: start + 100 },
      { taskId: 'second', at: start + 250 },
    ]);
  });

  it('counts only tasks that were still there', () => {
    const clock = new ManualClock();
    const known = new Set(['kept', 'other']);
    const { reaper, ids } = reaperWith(clock, known);
    known.delete('kept'); // deleted by a client before its retention ran out
    reaper.schedule('kept', clock.now() + 10);
    reaper.schedule('other', clock.now() + 20);
    clock.advance(20);
    expect(ids()).toEqual(['kept', 'other']);
    expect(reaper.status).toMatchObject({ evictedTotal: 1, pending: 0 });
  });

  it('sweep() evicts what is due now and leaves the rest to the timer', async () => {
    const clock = new ManualClock();
    const start = clock.now();
    const { reaper, evicted } = reaperWith(clock);
    reaper.schedule('a', start + 10);
    reaper.schedule('b', start + 20);
    expect(await reaper.sweep()).toBe(0);
    clock.advance(5);
    expect(await reaper.sweep()).toBe(0);
    expect(evicted).toEqual([]);
    clock.advance(15);
    expect(evicted).toEqual([
      { taskId: 'a', at: start + 10 },
      { taskId: 'b', at: start + 20 },
    ]);
    expect(await reaper.sweep()).toBe(0);
  });

  it('also sweeps the store every sweepEveryMs, for tasks another process ended', async () => {
    const clock = new ManualClock();
    const inStore = new Set(['ended-elsewhere']);
    const evicted: string[] = [];
    const reaper = new Reaper({
      clock,
      sweepEveryMs: 1000,
      evict: async (taskId) => (evicted.push(taskId), inStore.delete(taskId)),
      expired: async () => [...inStore],
    });
    clock.advance(999);
    expect(evicted).toEqual([]);
    clock.advance(1);
    await until(() => evicted.length === 1, 'the first periodic sweep');
    expect(evicted).toEqual(['ended-elsewhere']);
    expect(reaper.status).toMatchObject({ evictedTotal: 1 });
    expect(reaper.sweepEveryMs).toBe(1000);

    await until(() => clock.pending === 1, 'the next sweep to be set');
    reaper.close();
    expect(clock.pending).toBe(0);
  });

  it('close() stops it: nothing is evicted afterwards and no timer is left', () => {
    const clock = new ManualClock();
    const { reaper, ids } = reaperWith(clock);
    reaper.schedule('a', clock.now() + 10);
    reaper.schedule('b', clock.now() + 20);
    clock.advance(10);
    expect(ids()).toEqual(['a']);

    reaper.close();
    expect(clock.pending).toBe(0);
    reaper.schedule('c', clock.now() + 5);
    expect(clock.pending).toBe(0);
    clock.advance(1_000_000);
    expect(ids()).toEqual(['a']);
    reaper.close(); // idempotent
  });
});

describe('the reaper in the service, with a manual clock', () => {
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

  const RETENTION_MS = 600_000;
  const read = (taskId: string) => server!.api(`/api/tasks/${taskId}`);

  async function runToEnd(body: unknown): Promise<any> {
    const task = await server!.create(body);
    const stream = await connect(task.stream_url);
    await stream.untilEnd(`${task.task_id} to end`);
    return json(await read(task.task_id));
  }

  it('keeps an ended task until finished_at + RETENTION_MS, then it is gone (read, stream, list)', async () => {
    const clock = new ManualClock();
    server = await startTestServer({ RETENTION_MS: String(RETENTION_MS) }, { clock });
    const all = await connect('/api/events');

    const task = await runToEnd({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(task.status).toBe('completed');
    expect(task.finished_at).toBe(new Date(clock.now()).toISOString());
    expect(Date.parse(task.expires_at) - Date.parse(task.finished_at)).toBe(RETENTION_MS);

    clock.advance(RETENTION_MS - 1);
    expect((await read(task.task_id)).status).toBe(200);
    // A late subscriber still gets the whole story.
    const late = await connect(task.stream_url);
    expect(late.response.status).toBe(200);
    expect((await late.untilEnd()).map((event) => event.event)).toEqual(['task_started', 'progress_update', 'task_completed']);

    clock.advance(1);
    const gone = await read(task.task_id);
    expect(gone.status).toBe(404);
    expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await json(gone)).code).toBe('task_not_found');
    const stream = await server.api(task.stream_url, { headers: { accept: 'text/event-stream' } });
    expect(stream.status).toBe(404);
    expect(stream.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    await stream.body?.cancel();
    expect((await json(await server.api('/api/tasks'))).tasks).toEqual([]);

    // Open streams hear about it.
    await all.waitFor((events) => events.some((event) => event.event === 'task_removed'), 'task_removed on /api/events');
    expect(all.events.at(-1)!.json).toMatchObject({ task_id: task.task_id, data: { reason: 'evicted' } });

    const reaper = await json(await server.api('/api/reaper'));
    expect(reaper).toMatchObject({ retention_ms: RETENTION_MS, evicted_total: 1, last_run_at: task.expires_at });
  });

  it('counts retention from each task\'s own end, evicting in finish order', async () => {
    const clock = new ManualClock();
    server = await startTestServer({ RETENTION_MS: String(RETENTION_MS) }, { clock });
    const first = await runToEnd({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    clock.advance(1000);
    const second = await runToEnd({ type: 'throws', input: {} });
    clock.advance(1000);
    const third = await runToEnd({ type: 'sample', input: { steps: 1, step_ms: 0, fail_at_step: 1 } });
    expect([first.status, second.status, third.status]).toEqual(['completed', 'failed', 'failed']);
    expect(Date.parse(second.expires_at) - Date.parse(first.expires_at)).toBe(1000);

    const statuses = async () => Promise.all([first, second, third].map(async (task) => (await read(task.task_id)).status));
    clock.advance(RETENTION_MS - 2000);
    expect(await statuses()).toEqual([404, 200, 200]);
    clock.advance(999);
    expect(await statuses()).toEqual([404, 200, 200]);
    clock.advance(1);
    expect(await statuses()).toEqual([404, 404, 200]);
    clock.advance(1000);
    expect(await statuses()).toEqual([404, 404, 404]);
  });

  it('never evicts a queued or running task, however far the clock moves, and keeps its stream open', async () => {
    const clock = new ManualClock();
    // The clock also runs task timeouts: these two may run longer than the clock moves.
    const longest = String(2_147_483_647);
    server = await startTestServer(
      { RETENTION_MS: String(RETENTION_MS), MAX_WORKERS: '1', CANCEL_GRACE_MS: '100', TASK_TIMEOUT_MS: longest, MAX_TASK_TIMEOUT_MS: longest },
      { clock },
    );
    const running = await server.create({ type: 'block', input: { progress: 1 } });
    const stream = await connect(running.stream_url);
    await stream.waitFor((events) => events.some((event) => event.event === 'progress_update'), 'the blocked task to report progress');
    const queued = await server.create({ type: 'block', input: {} });

    clock.advance(100 * RETENTION_MS);
    expect(await server.service.reap()).toBe(0);
    const [runningNow, queuedNow] = await Promise.all([running, queued].map(async (task) => json(await read(task.task_id))));
    expect(runningNow).toMatchObject({ status: 'running', expires_at: null, finished_at: null });
    expect(queuedNow).toMatchObject({ status: 'queued', expires_at: null, finished_at: null });

    // The stream was not ended by the clock: it still carries the task's end.
    expect((await server.api(`/api/tasks/${running.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
    const events = await stream.untilEnd('the cancelled task\'s stream to end');
    expect(events.map((event) => event.event)).toEqual(['task_started', 'progress_update', 'task_cancelled']);

    // Retention counts from the end, not from creation.
    const cancelled = await json(await read(running.task_id));
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.finished_at).toBe(new Date(clock.now()).toISOString());
    expect(Date.parse(cancelled.expires_at)).toBe(clock.now() + RETENTION_MS);
    clock.advance(RETENTION_MS - 1);
    expect((await read(running.task_id)).status).toBe(200);
    clock.advance(1);
    expect((await read(running.task_id)).status).toBe(404);
    // The other one never ended: still there.
    expect((await read(queued.task_id)).status).toBe(200);
  });
});

describe('the reaper in real time', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('evicts a task RETENTION_MS after it ends, not before', async () => {
    server = await startTestServer({ RETENTION_MS: '300' });
    const dir = mkdtempSync(join(tmpdir(), 'taskstream-reaper-'));
    try {
      const task = await server.create({ type: 'gate', input: { dir } });
      // A long poll answers with the final snapshot the moment the task ends, however soon
      // the reaper comes after: the expiry is always there to check.
      const waiting = server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=60000`);
      await until(() => server!.hub.longPolls === 1, 'the long poll to wait');
      writeFileSync(join(dir, 'open'), '');
      const response = await withTimeout(waiting, 'the long poll to answer at the end');
      expect(response.status).toBe(200);
      const snapshot = await json(response);
      expect(snapshot.status).toBe('completed');
      expect(Date.parse(snapshot.expires_at) - Date.parse(snapshot.finished_at)).toBe(300);

      let goneAt = 0;
      await until(async () => {
        const read = await server!.api(`/api/tasks/${task.task_id}`);
        if (read.status === 200) return false;
        expect(read.status).toBe(404);
        goneAt = Date.now();
        return true;
      }, 'the task to be evicted');
      // Not before its expiry, and by its timer (not some later sweep).
      expect(goneAt).toBeGreaterThanOrEqual(Date.parse(snapshot.expires_at));
      expect(goneAt - Date.parse(snapshot.expires_at)).toBeLessThan(5000);
      expect((await server.api(task.stream_url)).status).toBe(404);
      expect((await json(await server.api('/api/reaper'))).evicted_total).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with RETENTION_MS=0 evicts a task as soon as it ends, after its live stream got the terminal event', async () => {
    server = await startTestServer({ RETENTION_MS: '0', CANCEL_GRACE_MS: '200' });
    const task = await server.create({ type: 'block', input: { progress: 1 } });
    const stream = await SseClient.connect(`${server.url}${task.stream_url}`);
    try {
      await stream.waitFor((events) => events.some((event) => event.event === 'progress_update'), 'the task to block');
      expect((await server.api(`/api/tasks/${task.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
      const events = await stream.untilEnd();
      expect(events.map((event) => event.event)).toEqual(['task_started', 'progress_update', 'task_cancelled']);
    } finally {
      stream.close();
    }
    await until(async () => (await server!.api(`/api/tasks/${task.task_id}`)).status === 404, 'the task to be evicted');
    expect((await server.api(task.stream_url)).status).toBe(404);
  });
});
