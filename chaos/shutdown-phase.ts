import { AllTasksObserver } from './all-tasks-observer.ts';
import type { Api, CreateRequest } from './api.ts';
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
}

/**
 * The service's last moments: SIGTERM while tasks are queued, running, waiting out a retry
 * backoff, ignoring cancellation, and one whose timeout falls at the moment the grace period
 * ends and the shutdown cancels it. Every task must still end with exactly one terminal
 * event — `task_cancelled` with reason `shutdown`, or the timeout, never a new attempt —
 * seen by the all-tasks stream and by its own stream before the connections close (checked
 * with every other task), and the process must exit 0.
 */
export async function shutdownPhase(options: ShutdownPhaseOptions): Promise<ShutdownFigures> {
  const { url, api, service, ledger, violations, random, scratchDir, shutdownGraceMs } = options;
  const observer = new AllTasksObserver(url, ledger, violations, random.fork(), { drops: false });
  await observer.start();
  const clients = new StreamClients(url, violations);
  const workload = new Workload({ api, ledger, clients, violations, tasks: 100, scratchDir });
  const start = async (request: CreateRequest, expect: string | undefined) => {
    const task = await workload.create(request, 'shutdown', random);
    if (!task) throw new Error(`shutdown phase: ${request.type} was not accepted`);
    task.accepted!.expect = expect;
    workload.detach(clients.watchTask(task, random.fork(), 0));
    return task;
  };
  const started = (task: TrackedTask) =>
    withDeadline(ledger.firstEvent(task.id, (event) => event.event === 'task_started'), `${task.id} to start`, 60_000);

  // Fails at once, then waits out a long backoff as `queued` when SIGTERM comes.
  const backoff = await start({ type: 'throws', input: {}, max_attempts: 3, retry_backoff_ms: 60_000, priority: 10 }, 'cancelled:shutdown');
  await started(backoff);
  // The two threads: one task that ignores cancellation, one whose timeout races the shutdown's cancel.
  const timeoutMs = shutdownGraceMs + 1000;
  const racer = await start({ type: 'spin', input: {}, timeout_ms: timeoutMs, max_attempts: 2, priority: 9 }, undefined);
  const deaf = await start({ type: 'ignore_cancel', input: {}, timeout_ms: 60_000, priority: 9 }, 'cancelled:shutdown');
  // Queued behind them.
  const queued = [
    await start({ type: 'block', input: {}, timeout_ms: 60_000 }, 'cancelled:shutdown'),
    await start({ type: 'sample', input: { steps: 3, step_ms: 20 } }, 'cancelled:shutdown'),
    await start({ type: 'sample', input: { steps: 3, step_ms: 20 } }, 'cancelled:shutdown'),
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
  for (const task of tasks) {
    if (!task.terminal) violations.add('shutdown', `${task.id} (${task.accepted!.request.type}) had no terminal event when the service exited`);
  }
  // No new attempt may start once the service is draining.
  const attempts = racer.events.filter((event) => event.event === 'task_started').length;
  if (attempts !== 1) violations.add('shutdown', `${racer.id}: the task whose timeout raced the shutdown started ${attempts} attempts`);
  return { tasks: tasks.length, exitMs };
}
