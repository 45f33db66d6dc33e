import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.ts';
import type { ExecutionOutcome, ExecutionRequest, Executor, ProgressReport } from '../../src/executor/executor.ts';
import { until } from '../helpers/timeout.ts';

export interface ExecutorLimits {
  maxWorkers: number;
  maxQueue: number;
  cancelGraceMs: number;
}

export interface ExecutorFixture {
  /** Runs the built-in task types and those of test/fixtures on real worker threads. */
  executor: Executor;
  /** Closes the executor (again, if the test did) and removes whatever it stored. */
  cleanup(): Promise<void>;
}

type Seen =
  | { kind: 'started'; attempt: number }
  | { kind: 'progress'; progress: ProgressReport }
  | { kind: 'finished'; outcome: ExecutionOutcome };

/** Thread start-up on a loaded machine can take seconds: waits allow for it. */
const WAIT_MS = 20_000;

/** Everything an executor reports, per task, in order. */
function watch(executor: Executor) {
  const seen = new Map<string, Seen[]>();
  const starts: string[] = [];
  const of = (taskId: string) => {
    let list = seen.get(taskId);
    if (!list) seen.set(taskId, (list = []));
    return list;
  };
  executor.on('started', (taskId, attempt) => {
    starts.push(taskId);
    of(taskId).push({ kind: 'started', attempt });
  });
  executor.on('progress', (taskId, progress) => void of(taskId).push({ kind: 'progress', progress }));
  executor.on('finished', (taskId, outcome) => void of(taskId).push({ kind: 'finished', outcome }));
  return {
    of,
    starts,
    kinds: (taskId: string) => of(taskId).map((entry) => entry.kind),
    outcome: (taskId: string) => {
      const finished = of(taskId).filter((entry) => entry.kind === 'finished');
      return finished.length === 1 ? finished[0]!.outcome : undefined;
    },
    started: (taskId: string) => of(taskId).some((entry) => entry.kind === 'started'),
    ended: (taskId: string) => of(taskId).some((entry) => entry.kind === 'finished'),
  };
}

let nextId = 0;
const request = (type: string, input: unknown, changes: Partial<ExecutionRequest> = {}): ExecutionRequest => ({
  taskId: `conformance-${process.pid}-${Date.now()}-${nextId++}`,
  type,
  input,
  timeoutMs: 30_000,
  priority: 0,
  attempt: 1,
  ...changes,
});

/** Each task's events obey the rules: one start per attempt first, progress, then exactly one finished, last. */
function expectWellFormed(kinds: string[]): void {
  expect(kinds.filter((kind) => kind === 'finished'), kinds.join(', ')).toHaveLength(1);
  expect(kinds.at(-1)).toBe('finished');
  if (kinds.length > 1) expect(kinds[0]).toBe('started');
}

/**
 * The behaviour every Executor must have, on real worker threads. `makeExecutor` gives a
 * fresh executor, with an empty queue, for each test.
 */
export function executorConformance(name: string, makeExecutor: (limits: ExecutorLimits) => Promise<ExecutorFixture>): void {
  describe(`${name}: executor conformance`, () => {
    const fixtures: ExecutorFixture[] = [];
    const dirs: string[] = [];
    afterEach(async () => {
      await Promise.all(fixtures.splice(0).map((fixture) => fixture.cleanup()));
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    });

    async function open(limits: Partial<ExecutorLimits> = {}) {
      const fixture = await makeExecutor({ maxWorkers: 2, maxQueue: 100, cancelGraceMs: 200, ...limits });
      fixtures.push(fixture);
      return { executor: fixture.executor, seen: watch(fixture.executor) };
    }

    /** A `gate` task: reports step 0 at once, then returns once told with open(). */
    function gate() {
      const dir = mkdtempSync(join(tmpdir(), 'taskstream-conformance-'));
      dirs.push(dir);
      return { input: { dir }, open: () => writeFileSync(join(dir, 'open'), '') };
    }

    it('runs a task: started with its attempt, its progress, then one finished with the result', async () => {
      const { executor, seen } = await open();
      const task = request('sample', { steps: 3, step_ms: 0 }, { attempt: 2 });
      await executor.submit(task);
      await until(() => seen.ended(task.taskId), 'the task to finish', WAIT_MS);
      const events = seen.of(task.taskId);
      expect(events[0]).toEqual({ kind: 'started', attempt: 2 });
      expect(events.filter((entry) => entry.kind === 'progress').map((entry) => entry.kind === 'progress' && entry.progress.step)).toEqual([1, 2, 3]);
      expect(seen.outcome(task.taskId)).toEqual({ status: 'completed', result: { steps_completed: 3 } });
      expectWellFormed(seen.kinds(task.taskId));
    });

    it('reports each kind of failure as data, with its code', async () => {
      const { executor, seen } = await open();
      const tasks = {
        task_error: request('throws', { message: 'broken on purpose' }),
        invalid_result: request('bad_result', {}),
        worker_crashed: request('exits', {}),
      };
      for (const task of Object.values(tasks)) await executor.submit(task);
      for (const [code, task] of Object.entries(tasks)) {
        await until(() => seen.ended(task.taskId), `the ${code} task to finish`, WAIT_MS);
        expect(seen.outcome(task.taskId), code).toMatchObject({ status: 'failed', error: { code, message: expect.any(String) } });
        expectWellFormed(seen.kinds(task.taskId));
      }
      expect(seen.outcome(tasks.task_error.taskId)).toMatchObject({ error: { message: 'broken on purpose' } });
    });

    it('fails a task that runs past its timeout with code timeout', async () => {
      const { executor, seen } = await open({ cancelGraceMs: 100 });
      const task = request('block', {}, { timeoutMs: 300 });
      await executor.submit(task);
      await until(() => seen.ended(task.taskId), 'the timeout', WAIT_MS);
      expect(seen.outcome(task.taskId)).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
    });

    it('runs the next attempt of a task whose thread was ended mid-flood with only its own progress, to its end', async () => {
      const { executor, seen } = await open({ cancelGraceMs: 50 });
      // Both threads load flood first, so the timeout below runs out while it floods.
      const warmUps = [request('flood', { count: 1 }), request('flood', { count: 1 })];
      for (const warmUp of warmUps) await executor.submit(warmUp);
      await until(() => warmUps.every((warmUp) => seen.ended(warmUp.taskId)), 'the threads to load flood', WAIT_MS);
      // flood never looks at its signal: the timeout ends its thread while progress it
      // already posted is still on its way to this thread.
      const first = request('flood', { count: 1_000_000 }, { timeoutMs: 100 });
      const second: ExecutionRequest = { ...request('sample', { steps: 2, step_ms: 0 }), taskId: first.taskId, attempt: 2 };
      // As the service does for a retry without backoff: the next attempt goes in at once.
      let retried: Promise<void> | undefined;
      executor.on('finished', (taskId) => {
        if (taskId === first.taskId) retried ??= executor.submit(second, { force: true });
      });
      await executor.submit(first);
      await until(() => retried !== undefined, 'the first attempt to time out', WAIT_MS);
      await retried;
      const finishes = () => seen.of(first.taskId).filter((entry) => entry.kind === 'finished');
      await until(() => finishes().length === 2, 'the second attempt to finish', WAIT_MS);

      expect(finishes().map((entry) => entry.kind === 'finished' && entry.outcome)).toEqual([
        expect.objectContaining({ status: 'failed', error: expect.objectContaining({ code: 'timeout' }) }),
        { status: 'completed', result: { steps_completed: 2 } },
      ]);
      const events = seen.of(first.taskId);
      const secondStart = events.findIndex((entry) => entry.kind === 'started' && entry.attempt === 2);
      expect(events.slice(0, secondStart).filter((entry) => entry.kind === 'progress').length).toBeGreaterThan(0);
      const afterStart = events.slice(secondStart + 1);
      expect(afterStart.map((entry) => (entry.kind === 'progress' ? entry.progress.step : entry.kind))).toEqual([1, 2, 'finished']);
    });

    it('cancels a queued task at once, before cancel() resolves; it never starts', async () => {
      const { executor, seen } = await open({ maxWorkers: 1 });
      const blocker = request('block', { progress: 1 });
      await executor.submit(blocker);
      await until(() => seen.kinds(blocker.taskId).includes('progress'), 'the blocker to run', WAIT_MS);
      const queued = request('sample', { steps: 1, step_ms: 0 });
      await executor.submit(queued);

      expect(await executor.cancel(queued.taskId, 'requested')).toBe(true);
      expect(seen.of(queued.taskId)).toEqual([{ kind: 'finished', outcome: { status: 'cancelled', reason: 'requested' } }]);

      expect(await executor.cancel(blocker.taskId, 'shutdown')).toBe(true);
      await until(() => seen.ended(blocker.taskId), 'the blocker to stop', WAIT_MS);
      expect(seen.outcome(blocker.taskId)).toEqual({ status: 'cancelled', reason: 'shutdown' });
      expect(seen.kinds(blocker.taskId)).toEqual(['started', 'progress', 'finished']);
      expect(seen.started(queued.taskId)).toBe(false);
    });

    it('cancels a running task that ignores its signal by ending its thread after the grace period', async () => {
      const { executor, seen } = await open({ maxWorkers: 1, cancelGraceMs: 100 });
      const stubborn = request('ignore_cancel', {});
      await executor.submit(stubborn);
      await until(() => seen.kinds(stubborn.taskId).includes('progress'), 'the stubborn task to run', WAIT_MS);
      expect(await executor.cancel(stubborn.taskId, 'requested')).toBe(true);
      await until(() => seen.ended(stubborn.taskId), 'the thread to be ended', WAIT_MS);
      expect(seen.outcome(stubborn.taskId)).toEqual({ status: 'cancelled', reason: 'requested' });

      // The pool carries on with a fresh thread.
      const next = request('sample', { steps: 1, step_ms: 0 });
      await executor.submit(next);
      await until(() => seen.ended(next.taskId), 'a task after the ended thread', WAIT_MS);
      expect(seen.outcome(next.taskId)).toMatchObject({ status: 'completed' });
    });

    it('starts a task queued behind tasks cancelled while they waited for a fresh thread', async () => {
      const { executor, seen } = await open({ maxWorkers: 1, cancelGraceMs: 100 });
      const stubborn = request('ignore_cancel', {});
      await executor.submit(stubborn);
      await until(() => seen.kinds(stubborn.taskId).includes('progress'), 'the stubborn task to run', WAIT_MS);
      const waiting = [request('sample', { steps: 1, step_ms: 0 }), request('sample', { steps: 1, step_ms: 0 })];
      for (const task of waiting) await executor.submit(task);
      const last = request('sample', { steps: 1, step_ms: 0 });
      // Once the stubborn task's thread is ended, both waiting tasks wait for its replacement,
      // which takes a while to start: cancel them then, and queue one more task behind them.
      let submitted: Promise<unknown> | undefined;
      executor.on('finished', (taskId) => {
        if (taskId !== stubborn.taskId) return;
        setImmediate(() => {
          submitted = Promise.all([...waiting.map((task) => executor.cancel(task.taskId, 'requested')), executor.submit(last)]);
        });
      });
      expect(await executor.cancel(stubborn.taskId, 'requested')).toBe(true);
      await until(() => submitted !== undefined, 'the stubborn task to end', WAIT_MS);
      await submitted;

      await until(() => seen.ended(last.taskId), 'the task queued behind the cancelled ones to finish', WAIT_MS);
      expect(seen.outcome(last.taskId)).toEqual({ status: 'completed', result: { steps_completed: 1 } });
      for (const task of waiting) expect(seen.outcome(task.taskId)).toEqual({ status: 'cancelled', reason: 'requested' });
    });

    it('lists the tasks it holds: running here, and waiting in a queue only it holds', async () => {
      const { executor, seen } = await open({ maxWorkers: 1 });
      const blocker = request('block', { progress: 1 });
      await executor.submit(blocker);
      await until(() => seen.kinds(blocker.taskId).includes('progress'), 'the blocker to run', WAIT_MS);
      const queued = request('sample', { steps: 1, step_ms: 0 });
      await executor.submit(queued);
      const held = await executor.held();
      expect(held.running).toEqual([blocker.taskId]);
      // A queue shared with other processes is theirs too: its tasks are not this one's to end.
      expect([[], [queued.taskId]]).toContainEqual(held.waiting);

      await executor.cancel(queued.taskId, 'requested');
      await executor.cancel(blocker.taskId, 'requested');
      await until(() => seen.ended(blocker.taskId), 'the blocker to stop', WAIT_MS);
      expect(await executor.held()).toEqual({ waiting: [], running: [] });
    });

    it('answers false to a cancel of an unknown or finished task, and reports nothing', async () => {
      const { executor, seen } = await open();
      expect(await executor.cancel('no-such-task', 'requested')).toBe(false);
      const task = request('sample', { steps: 1, step_ms: 0 });
      await executor.submit(task);
      await until(() => seen.ended(task.taskId), 'the task to finish', WAIT_MS);
      expect(await executor.cancel(task.taskId, 'requested')).toBe(false);
      expect(seen.kinds(task.taskId).filter((kind) => kind === 'finished')).toHaveLength(1);
    });

    it('starts queued tasks by priority, then in submission order', async () => {
      const { executor, seen } = await open({ maxWorkers: 1 });
      const blocker = gate();
      const first = request('gate', blocker.input);
      await executor.submit(first);
      await until(() => seen.started(first.taskId), 'the gate task to start', WAIT_MS);
      const queued = [
        request('sample', { steps: 1, step_ms: 0 }, { priority: 0 }),
        request('sample', { steps: 1, step_ms: 0 }, { priority: 5 }),
        request('sample', { steps: 1, step_ms: 0 }, { priority: 1 }),
        request('sample', { steps: 1, step_ms: 0 }, { priority: 5 }),
      ];
      for (const task of queued) await executor.submit(task);
      blocker.open();
      await until(() => queued.every((task) => seen.ended(task.taskId)), 'every queued task to finish', WAIT_MS);
      expect(seen.starts).toEqual([first.taskId, queued[1]!.taskId, queued[3]!.taskId, queued[2]!.taskId, queued[0]!.taskId]);
    });

    it('refuses a submit past the queue limit with queue_full, unless forced', async () => {
      const { executor, seen } = await open({ maxWorkers: 1, maxQueue: 1 });
      const blocker = request('block', { progress: 1 });
      await executor.submit(blocker);
      await until(() => seen.kinds(blocker.taskId).includes('progress'), 'the blocker to run', WAIT_MS);
      await executor.submit(request('sample', { steps: 1, step_ms: 0 }));
      const refused = await executor.submit(request('sample', { steps: 1, step_ms: 0 })).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(AppError);
      expect((refused as AppError).code).toBe('queue_full');
      await executor.submit(request('sample', { steps: 1, step_ms: 0 }), { force: true });
      expect(await executor.stats()).toMatchObject({ queued: 2, running: 1, maxQueue: 1, maxWorkers: 1, paused: false });
    });

    it('starts nothing while paused, and everything waiting once resumed', async () => {
      const { executor, seen } = await open();
      await executor.pause();
      const tasks = [request('sample', { steps: 1, step_ms: 0 }), request('sample', { steps: 1, step_ms: 0 })];
      for (const task of tasks) await executor.submit(task);
      expect(await executor.stats()).toMatchObject({ queued: 2, running: 0, paused: true });
      expect(tasks.some((task) => seen.started(task.taskId))).toBe(false);
      await executor.resume();
      await until(() => tasks.every((task) => seen.ended(task.taskId)), 'both tasks to run once resumed', WAIT_MS);
      expect((await executor.stats()).paused).toBe(false);
    });

    it('holds a delayed task until its delay has passed, outside the queue, and cancels it while it waits', async () => {
      const { executor, seen } = await open();
      const delayed = request('sample', { steps: 1, step_ms: 0 });
      const submittedAt = Date.now();
      await executor.submit(delayed, { delayMs: 400 });
      expect((await executor.stats()).queued).toBe(0);
      let startedAt = 0;
      executor.once('started', () => (startedAt = Date.now()));
      await until(() => seen.ended(delayed.taskId), 'the delayed task to run', WAIT_MS);
      expect(startedAt - submittedAt).toBeGreaterThanOrEqual(400);
      expect(seen.outcome(delayed.taskId)).toMatchObject({ status: 'completed' });

      const cancelled = request('sample', { steps: 1, step_ms: 0 });
      await executor.submit(cancelled, { delayMs: 60_000 });
      expect(await executor.cancel(cancelled.taskId, 'requested')).toBe(true);
      expect(seen.of(cancelled.taskId)).toEqual([{ kind: 'finished', outcome: { status: 'cancelled', reason: 'requested' } }]);
    });

    it('reports exactly one finished per task, after its last progress, for many tasks at once', async () => {
      const { executor, seen } = await open({ maxWorkers: 2 });
      const tasks = Array.from({ length: 12 }, (_, i) => request('sample', { steps: 5, step_ms: 0, ...(i % 4 === 3 ? { fail_at_step: 3 } : {}) }));
      await Promise.all(tasks.map((task) => executor.submit(task)));
      await until(() => tasks.every((task) => seen.ended(task.taskId)), 'all twelve tasks to finish', WAIT_MS);
      for (const task of tasks) expectWellFormed(seen.kinds(task.taskId));
      expect(tasks.map((task) => seen.outcome(task.taskId)!.status)).toEqual(
        tasks.map((_, i) => (i % 4 === 3 ? 'failed' : 'completed')),
      );
    });

    it('refuses work once closed, and closes more than once', async () => {
      const { executor } = await open();
      await executor.close();
      await executor.close();
      const refused = await executor.submit(request('sample', {})).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect((refused as AppError).code).toBe('shutting_down');
    });
  });
}
