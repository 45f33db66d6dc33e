import { afterEach, describe, expect, it } from 'vitest';
import { cancel, expectWellFormed, Harness, ofType, snapshotOf, touch } from './helpers/harness.ts';
import { ManualClock } from './helpers/manual-clock.ts';
import type { TestServer } from './helpers/server.ts';
import type { SseEvent } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

// A cancel answered 202 wins, whatever was already stopping the task: the task ends with
// exactly one task_cancelled and never starts again. The `stall` fixture holds a stop in
// flight (it reports `stop seen`, then ignores the stop until released), so each race is
// played in a fixed order instead of being hoped for.
const harness = new Harness();
afterEach(() => harness.close());

const saw = (text: string) => (events: SseEvent[]) => events.some((event) => event.json?.data?.text === text);

/**
 * A stall task (max_attempts 2, timeout_ms 50) whose timeout is already stopping it: the
 * service's clock runs the timeout, so it fires when the test moves the clock, and only
 * once the task's code runs.
 */
async function timingOut(server: TestServer, clock: ManualClock, dir: string) {
  const task = await server.create({ type: 'stall', input: { dir }, timeout_ms: 50, max_attempts: 2, retry_backoff_ms: 0 });
  const stream = await harness.connect(server, task.stream_url);
  await stream.waitFor(saw('running'), 'the task code to run');
  clock.advance(50);
  await stream.waitFor(saw('stop seen'), 'the timeout to reach the task');
  return { task, stream };
}

/** Waits until the task has left `running`; returns its snapshot then. */
async function afterRunning(server: TestServer, taskId: string): Promise<any> {
  let snapshot: any;
  await until(async () => (snapshot = await snapshotOf(server, taskId)).status !== 'running', 'the attempt to end');
  return snapshot;
}

describe('a cancel accepted with 202 wins', () => {
  it('over a timeout already under way: one task_cancelled, never a retry', async () => {
    // The grace is long, so the thread ends only when the test releases it.
    const clock = new ManualClock();
    const server = await harness.serve({ CANCEL_GRACE_MS: '60000' }, { clock });
    const dir = harness.dir();
    const { task, stream } = await timingOut(server, clock, dir);

    const answer = await cancel(server, task.task_id);
    expect(answer).toMatchObject({ status: 'running', attempt: 1 });
    touch(dir, 'release');

    // Not back in the queue for a second attempt: ended, cancelled.
    expect(await afterRunning(server, task.task_id)).toMatchObject({ status: 'cancelled', attempt: 1, error: null });
    const events = await stream.untilEnd('the raced task to end');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'task_cancelled']);
    expect(events.at(-1)!.json.data).toEqual({ reason: 'requested' });
  });

  it('over a shutdown racing a timeout: the task ends cancelled (shutdown), not failed', async () => {
    const clock = new ManualClock();
    const server = await harness.serve({ CANCEL_GRACE_MS: '60000' }, { clock });
    const dir = harness.dir();
    const { task, stream } = await timingOut(server, clock, dir);

    const stopped = server.shutdown(1000);
    // The shutdown grace runs on the same clock: once over, running tasks are cancelled
    // (reason shutdown), in this tick, before the released task can report its end.
    clock.advance(1000);
    touch(dir, 'release');

    const events = await stream.untilEnd('the task to end in the shutdown');
    await withTimeout(stopped, 'the shutdown to finish');
    expectWellFormed(events, task.task_id);
    expect(ofType(events, 'task_started')).toHaveLength(1);
    expect(events.at(-1)!.event).toBe('task_cancelled');
    expect(events.at(-1)!.json.data).toEqual({ reason: 'shutdown' });
  });

  it('during the backoff between attempts: ends at once, and the backoff running out starts nothing', async () => {
    const clock = new ManualClock();
    const server = await harness.serve({}, { clock });
    const task = await server.create({ type: 'throws', input: {}, max_attempts: 3, retry_backoff_ms: 1000 });
    const stream = await harness.connect(server, task.stream_url);
    expect(await afterRunning(server, task.task_id)).toMatchObject({ status: 'queued', attempt: 1 });

    await cancel(server, task.task_id);
    clock.advance(10_000); // long past the backoff
    const events = await stream.untilEnd('the task cancelled between attempts to end');
    expectWellFormed(events, task.task_id);
    expect(stream.types()).toEqual(['task_started', 'task_cancelled']);
    expect(await snapshotOf(server, task.task_id)).toMatchObject({ status: 'cancelled', attempt: 1, error: null });
  });
});
