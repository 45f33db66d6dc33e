import { AllTasksObserver } from './all-tasks-observer.ts';
import { Api, type CreateRequest } from './api.ts';
import { sleep, withDeadline } from './deadline.ts';
import type { Ledger, TrackedTask } from './ledger.ts';
import type { Random } from './random.ts';
import type { ServiceProcess } from './service-process.ts';
import { StreamClients } from './stream-clients.ts';
import type { Violations } from './violations.ts';
import { Workload } from './workload.ts';

export interface ShutdownFigures {
  /** Tasks queued, running or between attempts when SIGTERM arrived. */
  tasks: number;
  /** From SIGTERM to the process's exit. */
  exitMs: number | undefined;
}

export interface ShutdownPhaseOptions {
  url: string;
  api: Api;
  service: ServiceProcess;
  ledger: Ledger;
  violations: Violations;
  random: Random;
  scratchDir: string;
  /** The service's SHUTDOWN_GRACE_MS. */
  shutdownGraceMs: number;
  /**
   * Redis mode: starts another process of the service on the same Redis. Queued tasks are
   * then not the stopped process's to end: the new one must find them and end them when
   * cancelled, and its all-tasks stream must go on from the last event sent before.
   */
  restart?: (() => ServiceProcess) | undefined;
}

/**
 * The service's last moments: SIGTERM while tasks are queued, running, waiting out a retry
 * backoff, ignoring cancellation, and one whose timeout falls at the moment the grace period
 * ends and the shutdown cancels it. Every task must still end with exactly one terminal
 * event — `task_cancelled` with reason `shutdown`, or the timeout, never a new attempt —
 * seen by the all-tasks stream and by its own stream before the connections close (checked
 * with every other task), and the process must exit 0. In Redis mode the queued ones (and
 * the one waiting out its backoff) outlive the process instead: see `restart`.
 */
export async function shutdownPhase(options: ShutdownPhaseOptions): Promise<ShutdownFigures> {
  const { url, api, service, ledger, violations, random, scratchDir, shutdownGraceMs } = options;
  const observer = new AllTasksObserver(url, ledger, violations, random.fork(), { drops: false });
  await observer.start();
  const clients = new StreamClients(url, violations);
  const workload = new Workload({ api, ledger, clients, violations, tasks: 100, scratchDir });
  const durable = options.restart !== undefined;
  const start = async (request: CreateRequest, expect: string | undefined, survives = false) => {
    const task = await workload.create(request, 'shutdown', random);
    if (!task) throw new Error(`shutdown phase: ${request.type} was not accepted`);
    const outlives = durable && survives;
    task.accepted!.expect = outlives ? undefined : expect;
    // A survivor's own stream ends with its process, before the task does.
    if (!outlives) workload.detach(clients.watchTask(task, random.fork(), 0));
    return task;
  };
  const started = (task: TrackedTask) =>
    withDeadline(ledger.firstEvent(task.id, (event) => event.event === 'task_started'), `${task.id} to start`, 60_000);

  // Fails at once, then waits out a long backoff as `queued` when SIGTERM comes.
  const backoff = await start({ type: 'throws', input: {}, max_attempts: 3, retry_backoff_ms: 60_000, priority: 10 }, 'cancelled:shutdown', true);
  await started(backoff);
  // The two threads: one task that ignores cancellation, one whose timeout races the shutdown's cancel.
  const timeoutMs = shutdownGraceMs + 1000;
  const racer = await start({ type: 'spin', input: {}, timeout_ms: timeoutMs, max_attempts: 2, priority: 9 }, undefined);
  const deaf = await start({ type: 'ignore_cancel', input: {}, timeout_ms: 60_000, priority: 9 }, 'cancelled:shutdown');
  // Queued behind them.
  const queued = [
    await start({ type: 'block', input: {}, timeout_ms: 60_000 }, 'cancelled:shutdown', true),
    await start({ type: 'sample', input: { steps: 3, step_ms: 20 } }, 'cancelled:shutdown', true),
    await start({ type: 'sample', input: { steps: 3, step_ms: 20 } }, 'cancelled:shutdown', true),
  ];
  const tasks = [backoff, racer, deaf, ...queued];

  const racerStart = await started(racer);
  await started(deaf);
  // The grace period ends (and the shutdown cancels the racer) within a few ms of its timeout.
  if (racerStart) await sleep(Math.max(0, racerStart.timestamp + timeoutMs - shutdownGraceMs + random.int(-15, 15) - Date.now()));
  const sigtermAt = performance.now();
  observer.expectEnd();
  service.terminate();

  let exitMs: number | undefined;
  try {
    // Its exit code is checked with the run's end.
    await withDeadline(service.exited, 'the service to exit after SIGTERM', shutdownGraceMs + 30_000);
    exitMs = performance.now() - sigtermAt;
    await withDeadline(observer.finished(), 'the all-tasks stream to end', 10_000);
    await workload.settle(10_000);
  } catch (error) {
    violations.add('shutdown', (error as Error).message);
  }
  if (options.restart) {
    await afterRestart(options.restart(), [backoff, ...queued], observer.lastPosition, options);
  }
  for (const task of tasks) {
    if (!task.terminal) violations.add('shutdown', `${task.id} (${task.accepted!.request.type}) had no terminal event when the service exited`);
  }
  // No new attempt may start once the service is draining.
  const attempts = racer.events.filter((event) => event.event === 'task_started').length;
  if (attempts !== 1) violations.add('shutdown', `${racer.id}: the task whose timeout raced the shutdown started ${attempts} attempts`);
  return { tasks: tasks.length, exitMs };
}

/**
 * Redis mode: the tasks queued when the process stopped are found by the next one (queued,
 * or already running there), which ends them when cancelled; its all-tasks stream resumes
 * from the last position the stopped process sent. Then it is stopped too.
 */
async function afterRestart(
  next: ServiceProcess,
  survivors: TrackedTask[],
  lastPosition: number | undefined,
  { ledger, violations, random, scratchDir }: ShutdownPhaseOptions,
): Promise<void> {
  try {
    const url = await withDeadline(next.url, 'the restarted service to listen', 60_000);
    const api = new Api(url, violations);
    const observer = new AllTasksObserver(url, ledger, violations, random.fork(), { drops: false, after: lastPosition });
    await observer.start();
    const workload = new Workload({ api, ledger, clients: new StreamClients(url, violations), violations, tasks: 100, scratchDir });
    for (const task of survivors) {
      const type = task.accepted!.request.type;
      if (task.terminal) {
        violations.add('restart', `${task.id} (${type}) ended ${task.terminal.event} before the restart`);
        continue;
      }
      // Kept: queued, or already taken by the new process (it runs what it finds queued).
      const answer = await api.get(task.id);
      if (answer.status !== 200 || !['queued', 'running', 'completed'].includes(answer.body?.status)) {
        violations.add('restart', `${task.id} (${type}) is ${answer.status} ${answer.body?.status ?? ''} after the restart`);
      }
      await workload.cancel(task, 'restart');
    }
    for (const task of survivors) {
      await withDeadline(ledger.ended(task.id), `the end of ${task.id} after the restart`, 30_000).catch((error: Error) =>
        violations.add('restart', error.message),
      );
    }
    observer.expectEnd();
    next.terminate();
    const code = await withDeadline(next.exited, 'the restarted service to exit', 60_000);
    if (code !== 0) violations.add('restart', `the restarted service exited ${code}`);
    await withDeadline(observer.finished(), 'the restarted all-tasks stream to end', 10_000);
  } catch (error) {
    violations.add('restart', (error as Error).message);
    next.child.kill('SIGKILL');
  }
}
