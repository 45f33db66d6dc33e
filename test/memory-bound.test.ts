import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem, Harness, json, post, snapshotOf } from './helpers/harness.ts';
import type { TestServer } from './helpers/server.ts';
import { withTimeout } from './helpers/timeout.ts';

// MAX_RETAINED_BYTES through a real server: large inputs and results (the `batch` type,
// whose `uppercase` result is as large as its input), the gauge, which tasks go first, and
// when create is refused. Runs in memory and in Redis mode (see vitest.config.ts).
const harness = new Harness();
afterEach(() => harness.close());

const MiB = 1024 * 1024;
const BOUND = 4 * MiB;

/** A batch of `count` items of `chars` characters each: the result is as large as the input. */
const large = (count: number, chars: number, itemMs = 0) => ({
  type: 'batch',
  input: { items: Array.from({ length: count }, (_, i) => `${i}`.padEnd(chars, 'x')), operation: 'uppercase', item_ms: itemMs },
});

/** Runs for minutes (one item a minute), so it stays queued or running until cancelled. */
const longRunning = () => large(3, 100_000, 60_000);

async function retainedBytes(server: TestServer): Promise<number> {
  const text = await (await server.api('/metrics')).text();
  const line = /^taskstream_retained_bytes (\d+)$/m.exec(text);
  expect(line, 'taskstream_retained_bytes in /metrics').not.toBeNull();
  return Number(line![1]);
}

async function runToEnd(server: TestServer, body: unknown): Promise<any> {
  const task = await server.create(body);
  const ended = await json(await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=20000`));
  expect(ended.status, `task ${task.task_id}`).toBe('completed');
  return task;
}

const statusOf = async (server: TestServer, taskId: string) => (await server.api(`/api/tasks/${taskId}`)).status;

describe('MAX_RETAINED_BYTES', () => {
  it('keeps the bytes held within the bound by evicting the oldest ended tasks first', async () => {
    const server = await harness.serve({ MAX_RETAINED_BYTES: String(BOUND), MAX_WORKERS: '1' });
    // About 1 MiB each once ended: input and result in the record, the result in the
    // task's log, both in the all-tasks log.
    const tasks: any[] = [];
    let most = 0;
    for (let i = 0; i < 10; i++) {
      tasks.push(await runToEnd(server, large(3, 80_000)));
      const held = await retainedBytes(server);
      expect(held, `after task ${i + 1}`).toBeLessThanOrEqual(BOUND);
      most = Math.max(most, held);
    }
    // The gauge counts what is really held: at the bound, more than two tasks' worth.
    expect(most).toBeGreaterThan(BOUND / 2);

    const readable = await Promise.all(tasks.map((task) => statusOf(server, task.task_id)));
    // The oldest went first: the tasks still kept are the newest ones, with no gap.
    const kept = readable.filter((status) => status === 200).length;
    expect(readable).toEqual([...Array(10 - kept).fill(404), ...Array(kept).fill(200)]);
    expect(kept).toBeGreaterThanOrEqual(1);
    expect(kept).toBeLessThan(5);
    // By bytes, not by count: MAX_RETAINED_TASKS is far away.
    const stats = await json(await server.api('/api/tasks/stats'));
    expect(stats.tasks.completed).toBe(kept);
    // The newest one's result is whole.
    const newest = await snapshotOf(server, tasks.at(-1).task_id);
    expect(newest.result.items[1].output).toBe('1'.padEnd(80_000, 'X'));
  });

  it('never evicts a queued or running task, and refuses create with 503 only when none of those kept has ended', async () => {
    const server = await harness.serve({ MAX_RETAINED_BYTES: String(BOUND), MAX_WORKERS: '1' });
    const ended = await runToEnd(server, large(3, 80_000));
    const waiting: any[] = [await server.create(longRunning()), await server.create(longRunning())];
    // There was room: nothing had to go.
    expect(await statusOf(server, ended.task_id)).toBe(200);

    let refused: Response | undefined;
    for (let i = 0; i < 30 && !refused; i++) {
      const response = await post(server, '/api/tasks', longRunning());
      if (response.status === 201) waiting.push(await json(response));
      else refused = response;
    }
    expect(refused, 'a create refused once the bound is reached').toBeDefined();
    const problem = await expectProblem(refused!, 503, 'too_many_tasks');
    expect(problem.detail).toContain(String(BOUND));
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    // The ended task made room before anything was refused; every queued or running one is kept.
    expect(await statusOf(server, ended.task_id)).toBe(404);
    expect(waiting.length).toBeGreaterThan(3);
    for (const task of waiting) expect(['queued', 'running']).toContain((await snapshotOf(server, task.task_id)).status);
    expect(await retainedBytes(server)).toBeLessThanOrEqual(BOUND);

    // Once one of them has ended, it can go, and the next create fits.
    const cancelled = waiting.pop();
    expect((await post(server, `/api/tasks/${cancelled.task_id}/cancel`)).status).toBe(202);
    await withTimeout(
      (async () => {
        while ((await snapshotOf(server, cancelled.task_id)).status !== 'cancelled') await new Promise((r) => setTimeout(r, 10));
      })(),
      'the cancelled task to end',
    );
    const accepted = await post(server, '/api/tasks', longRunning());
    expect(accepted.status).toBe(201);
    expect(await statusOf(server, cancelled.task_id)).toBe(404);
    for (const task of waiting) expect(await statusOf(server, task.task_id)).toBe(200);
    expect(await retainedBytes(server)).toBeLessThanOrEqual(BOUND);
  });

  it('trims the all-tasks log to a quarter of the bound: a resume from a trimmed position gets resync', async () => {
    const server = await harness.serve({ MAX_RETAINED_BYTES: String(BOUND), MAX_WORKERS: '1' });
    const live = await harness.connect(server, '/api/events');
    await runToEnd(server, { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const [mark] = await live.waitFor((events) => events.some((event) => event.event === 'task_completed'), 'the first task\'s events');
    live.close();
    const firstAfter = async () => {
      const resumed = await harness.connect(server, `/api/events?last_event_id=${mark!.id}`);
      const [event] = await resumed.waitFor((events) => events.length > 0, 'the first event after the resume point');
      resumed.close();
      return event!;
    };
    expect((await firstAfter()).event, 'all that followed the mark is kept').toBe('task_started');
    // 1.2 MiB of events: task_created with the input, task_completed with the result, more
    // than the all-tasks log's quarter (1 MiB) of the bound.
    await runToEnd(server, large(6, 100_000));
    const event = await firstAfter();
    expect(event.event).toBe('resync');
    expect(event.json).toEqual({ event_type: 'resync' });
  });
});
