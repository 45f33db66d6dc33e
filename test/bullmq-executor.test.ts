import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../src/errors.ts';
import { BullmqExecutor, type BullmqExecutorOptions } from '../src/executor/bullmq-executor.ts';
import type { ExecutionOutcome, ExecutionRequest } from '../src/executor/executor.ts';
import { projectRoot } from './helpers/process.ts';
import { deleteKeys, openRedis, RedisProxy, TEST_REDIS_URL, testPrefix } from './helpers/redis.ts';
import { until, withTimeout } from './helpers/timeout.ts';

// What only a shared queue has: several instances (BullmqExecutors on one Redis and prefix,
// some in their own processes) taking tasks from one queue, cancels that reach whichever
// instance runs the task, pause and the queue limit for all of them, an instance killed with
// SIGKILL, and Redis going away. What every executor does is in the conformance suite.

const fixture = (name: string) => new URL(`./fixtures/${name}.ts`, import.meta.url).href;
const WORKER_LOST_AFTER_MS = 4000;

type Seen =
  | { instance: string; event: 'started'; taskId: string; attempt: number }
  | { instance: string; event: 'progress'; taskId: string }
  | { instance: string; event: 'finished'; taskId: string; outcome: ExecutionOutcome };

/** Every event of every instance of one test, in arrival order. */
class Log {
  readonly seen: Seen[] = [];
  #waiters: (() => void)[] = [];

  add(entry: Seen): void {
    this.seen.push(entry);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  of(taskId: string, event?: Seen['event']): Seen[] {
    return this.seen.filter((entry) => entry.taskId === taskId && (event === undefined || entry.event === event));
  }

  /** Resolves with the first entry matching, waiting for it if needed. */
  async next(taskId: string, event: Seen['event'], label: string, ms = 20_000): Promise<Seen> {
    await withTimeout(
      (async () => {
        while (this.of(taskId, event).length === 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
      })(),
      label,
      ms,
    );
    return this.of(taskId, event)[0]!;
  }
}

let prefix: string;
let redis: Redis;
let log: Log;
let dirs: string[];
let proxy: RedisProxy | undefined;
const executors: BullmqExecutor[] = [];
const children: ChildProcess[] = [];

beforeEach(async () => {
  prefix = testPrefix('bullmq');
  redis = await openRedis();
  log = new Log();
  dirs = [];
});

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(executors.splice(0).map((executor) => executor.close()));
  await proxy?.close();
  proxy = undefined;
  await deleteKeys(redis, prefix);
  redis.disconnect();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** An instance in this process. */
async function instance(name: string, options: Partial<BullmqExecutorOptions> = {}): Promise<BullmqExecutor> {
  const executor = await BullmqExecutor.start({
    redisUrl: TEST_REDIS_URL,
    prefix,
    workerUrl: new URL('../workers/entry.ts', import.meta.url),
    taskModules: { block: fixture('block'), gate: fixture('gate') },
    maxWorkers: 1,
    maxQueue: 100,
    cancelGraceMs: 500,
    workerLostAfterMs: WORKER_LOST_AFTER_MS,
    logger: pino({ level: 'silent' }),
    ...options,
  });
  executors.push(executor);
  executor.on('started', (taskId, attempt) => log.add({ instance: name, event: 'started', taskId, attempt }));
  executor.on('progress', (taskId) => log.add({ instance: name, event: 'progress', taskId }));
  executor.on('finished', (taskId, outcome) => log.add({ instance: name, event: 'finished', taskId, outcome }));
  return executor;
}

/** An instance in a child process of its own, that a test may SIGKILL. */
async function processInstance(name: string, maxWorkers: number): Promise<ChildProcess> {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child = spawn(process.execPath, ['--import', tsx, 'test/helpers/executor-process.ts'], {
    cwd: projectRoot,
    env: {
      ...process.env,
      TEST_REDIS_URL,
      REDIS_PREFIX: prefix,
      MAX_WORKERS: String(maxWorkers),
      WORKER_LOST_AFTER_MS: String(WORKER_LOST_AFTER_MS),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const entry = JSON.parse(line) as Omit<Seen, 'instance'> | { event: 'ready' };
    if (entry.event === 'ready') ready();
    else log.add({ ...entry, instance: name } as Seen);
  });
  await withTimeout(isReady, `instance ${name} to start`, 20_000);
  return child;
}

let nextId = 0;
const request = (type: string, input: unknown, overrides: Partial<ExecutionRequest> = {}): ExecutionRequest => ({
  taskId: `task-${++nextId}-${prefix}`,
  type,
  input,
  timeoutMs: 60_000,
  priority: 0,
  attempt: 1,
  ...overrides,
});

/** A gate fixture's directory: the task returns once `open` is written there. */
function gate(): { dir: string; open: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'taskstream-gate-'));
  dirs.push(dir);
  return { dir, open: () => writeFileSync(join(dir, 'open'), '') };
}

/** Submits a task and waits until an instance has started it; returns where it runs. */
async function runningOn(executor: BullmqExecutor, task: ExecutionRequest): Promise<string> {
  await executor.submit(task);
  return (await log.next(task.taskId, 'started', `${task.taskId} to start`)).instance;
}

describe('a queue shared by several instances', () => {
  it('runs a task on whichever instance has a free worker, and reports it there', async () => {
    const a = await instance('A');
    await instance('B');
    const busy = request('block', {});
    const first = await runningOn(a, busy);
    const { dir, open } = gate();
    const task = request('gate', { dir, steps: 0 });
    const second = await runningOn(a, task);
    expect(new Set([first, second])).toEqual(new Set(['A', 'B']));
    open();
    const finished = await log.next(task.taskId, 'finished', 'the gate task to finish');
    expect(finished).toMatchObject({ instance: second, outcome: { status: 'completed', result: { steps: 0 } } });
    expect(log.of(task.taskId, 'progress').every((entry) => entry.instance === second)).toBe(true);
  });

  it('sums the worker threads of the live instances, and forgets one that closed', async () => {
    const a = await instance('A', { maxWorkers: 2 });
    const b = await instance('B', { maxWorkers: 3 });
    expect((await a.stats()).maxWorkers).toBe(5);
    expect((await b.stats()).maxWorkers).toBe(5);
    await b.close();
    expect((await a.stats()).maxWorkers).toBe(2);
  });

  it('cancels a task running on another instance: exactly one cancelled outcome, from there', async () => {
    const a = await instance('A');
    const b = await instance('B');
    const busy = request('block', {});
    const busyOn = await runningOn(a, busy);
    const task = request('block', {});
    const taskOn = await runningOn(a, task);
    const elsewhere = taskOn === 'A' ? b : a;
    expect(await elsewhere.cancel(task.taskId, 'requested')).toBe(true);
    const finished = await log.next(task.taskId, 'finished', 'the cancelled outcome');
    expect(finished).toMatchObject({ instance: taskOn, outcome: { status: 'cancelled', reason: 'requested' } });
    // Barrier: once the other task has ended too, nothing more is in flight for the first.
    await (busyOn === 'A' ? a : b).cancel(busy.taskId, 'requested');
    await log.next(busy.taskId, 'finished', 'the busy task to end');
    expect(log.of(task.taskId, 'finished')).toHaveLength(1);
    expect(log.of(task.taskId, 'started')).toHaveLength(1);
  });

  it('removes a queued task it cancels, so no instance ever starts it', async () => {
    const a = await instance('A');
    const b = await instance('B');
    await a.pause();
    const task = request('block', {});
    await a.submit(task);
    expect(await b.cancel(task.taskId, 'requested')).toBe(true);
    // Cancelled before cancel() resolved, by the instance that asked.
    expect(log.of(task.taskId, 'finished')).toEqual([
      { instance: 'B', event: 'finished', taskId: task.taskId, outcome: { status: 'cancelled', reason: 'requested' } },
    ]);
    expect(await a.cancel(task.taskId, 'requested')).toBe(false);
    await b.resume();
    const { dir, open } = gate();
    const after = request('gate', { dir });
    await runningOn(b, after);
    open();
    await log.next(after.taskId, 'finished', 'a later task to run');
    expect(log.of(task.taskId, 'started')).toEqual([]);
  });

  it('pauses and resumes every instance at once', async () => {
    const a = await instance('A');
    const b = await instance('B');
    await a.pause();
    expect(await b.stats()).toMatchObject({ paused: true });
    const task = request('block', {});
    await b.submit(task);
    await until(async () => (await a.stats()).queued === 1, 'the task to be queued');
    expect(log.of(task.taskId, 'started')).toEqual([]);
    await b.resume();
    expect(await a.stats()).toMatchObject({ paused: false });
    await log.next(task.taskId, 'started', 'the task to start after resume');
    await a.cancel(task.taskId, 'requested');
    await log.next(task.taskId, 'finished', 'the task to end');
  });

  it('holds MAX_QUEUE for the whole service, unless forced', async () => {
    const a = await instance('A', { maxQueue: 2 });
    const b = await instance('B', { maxQueue: 2 });
    await a.pause();
    await a.submit(request('block', {}));
    await b.submit(request('block', {}));
    const refused = await a.submit(request('block', {})).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'queue_full', retryAfterSeconds: expect.any(Number) });
    await b.submit(request('block', {}), { force: true });
    expect(await a.stats()).toMatchObject({ queued: 3 });
  });

  it('starts a delayed task no sooner than asked, and cancels it before it starts', async () => {
    const a = await instance('A');
    const { dir, open } = gate();
    open();
    const delayed = request('gate', { dir });
    const submittedAt = Date.now();
    await a.submit(delayed, { delayMs: 700 });
    expect(await a.stats()).toMatchObject({ queued: 0 });
    await log.next(delayed.taskId, 'finished', 'the delayed task to run');
    const started = log.seen.indexOf(log.of(delayed.taskId, 'started')[0]!);
    expect(started).toBeGreaterThanOrEqual(0);
    expect(Date.now() - submittedAt).toBeGreaterThanOrEqual(700);

    const cancelled = request('block', {});
    await a.submit(cancelled, { delayMs: 60_000 });
    expect(await a.cancel(cancelled.taskId, 'requested')).toBe(true);
    expect(log.of(cancelled.taskId)).toEqual([
      { instance: 'A', event: 'finished', taskId: cancelled.taskId, outcome: { status: 'cancelled', reason: 'requested' } },
    ]);
  });

  it('starts higher priorities first across the service', async () => {
    const a = await instance('A');
    await a.pause();
    const { dir, open } = gate();
    open();
    const low = request('gate', { dir }, { priority: -5 });
    const normal = request('gate', { dir });
    const high = request('gate', { dir }, { priority: 7 });
    for (const task of [low, normal, high]) await a.submit(task);
    await a.resume();
    await log.next(low.taskId, 'finished', 'the last task to finish');
    const order = log.seen.filter((entry) => entry.event === 'started').map((entry) => entry.taskId);
    expect(order).toEqual([high.taskId, normal.taskId, low.taskId]);
  });
});

describe('an instance that goes away', () => {
  it('holds only the tasks it runs, and once it stops starting, leaves the queue to the others', async () => {
    const a = await instance('A', { maxWorkers: 2 });
    const running = request('block', {});
    expect(await runningOn(a, running)).toBe('A');
    await a.stopStarting();
    const { dir, open } = gate();
    open();
    const queued = request('gate', { dir });
    await a.submit(queued);
    expect(await a.held()).toEqual({ waiting: [], running: [running.taskId] });
    const b = await instance('B');
    expect(await log.next(queued.taskId, 'finished', 'the queued task to run on B')).toMatchObject({
      instance: 'B',
      outcome: { status: 'completed' },
    });
    expect(await b.held()).toEqual({ waiting: [], running: [] });
    await a.cancel(running.taskId, 'shutdown');
    await log.next(running.taskId, 'finished', 'the running task to end');
    expect(await a.held()).toEqual({ waiting: [], running: [] });
  });
});

describe('an instance that dies', () => {
  it(`reports its running tasks worker_lost from another instance within WORKER_LOST_AFTER_MS, never running them twice`, async () => {
    await processInstance('doomed', 2);
    const a = await instance('A');
    const busy = request('block', {});
    // The doomed instance may take this one; whichever does, A ends up with one busy worker.
    await a.submit(busy);
    const tasks = [request('block', {}), request('block', {})];
    for (const task of tasks) await a.submit(task);
    await until(() => log.seen.filter((entry) => entry.event === 'started').length === 3, 'all three tasks to start');
    const onDoomed = log.seen.filter((entry) => entry.event === 'started' && entry.instance === 'doomed').map((entry) => entry.taskId);
    expect(onDoomed).toHaveLength(2);

    const killedAt = Date.now();
    children[0]!.kill('SIGKILL');
    const lost = await Promise.all(
      onDoomed.map((taskId) => log.next(taskId, 'finished', `${taskId} to be reported lost`, WORKER_LOST_AFTER_MS + 10_000)),
    );
    const recoveryMs = Date.now() - killedAt;
    console.log(`worker_lost reported ${recoveryMs} ms after SIGKILL (WORKER_LOST_AFTER_MS=${WORKER_LOST_AFTER_MS})`);
    expect(recoveryMs).toBeLessThanOrEqual(WORKER_LOST_AFTER_MS + 1000);
    for (const finished of lost) {
      expect(finished).toMatchObject({ instance: 'A', outcome: { status: 'failed', error: { code: 'worker_lost' } } });
    }

    // Its next attempt runs (the job left no trace that would block the same id), once.
    const [retried] = onDoomed;
    const { dir, open } = gate();
    open();
    const busyOnA = log.seen.find((entry) => entry.event === 'started' && entry.instance === 'A')!.taskId;
    await a.cancel(busyOnA, 'requested');
    await a.submit(request('gate', { dir }, { taskId: retried, attempt: 2 }));
    await until(() => log.of(retried!, 'finished').length === 2, 'the second attempt to finish');
    expect(log.of(retried!, 'started').map((entry) => [entry.instance, (entry as { attempt: number }).attempt])).toEqual([
      ['doomed', 1],
      ['A', 2],
    ]);
    expect(log.of(retried!, 'finished')[1]).toMatchObject({ outcome: { status: 'completed' } });
  }, 60_000);
});

describe('Redis going away', () => {
  it('refuses with backend_unavailable while it is away, and carries on when it is back', async () => {
    proxy = await RedisProxy.start();
    const a = await instance('A', { redisUrl: proxy.url });
    const { dir, open } = gate();
    const accepted = request('gate', { dir });
    await runningOn(a, accepted);

    await proxy.cut();
    const refusal = await withTimeout(
      a.submit(request('block', {})).then(
        () => undefined,
        (error: unknown) => error,
      ),
      'submit to fail while Redis is away',
    );
    expect(refusal).toMatchObject({ code: 'backend_unavailable', retryAfterSeconds: expect.any(Number) });
    await expect(withTimeout(a.stats(), 'stats to fail while Redis is away')).rejects.toMatchObject({ code: 'backend_unavailable' });

    await proxy.restore();
    // The task accepted before the outage finishes once Redis is back.
    open();
    const finished = await log.next(accepted.taskId, 'finished', 'the accepted task to finish', 30_000);
    expect(finished).toMatchObject({ outcome: { status: 'completed' } });
    await until(
      () => a.submit(request('gate', { dir })).then(() => true, () => false),
      'submit to succeed again',
      20_000,
    );
  }, 60_000);
});
