import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.ts';
import { errors } from '../errors.ts';
import type { CancelReason } from '../events.ts';
import type {
  ExecutionOutcome,
  ExecutionRequest,
  Executor,
  ExecutorEventMap,
  ExecutorStats,
  SubmitOptions,
} from './executor.ts';
import { JobQueue } from './job-queue.ts';
import { PiscinaRunner, type PiscinaRunnerOptions, type RunListener } from './piscina-runner.ts';

/** The runner's settings, plus the queue's. */
export interface PiscinaExecutorOptions extends Omit<PiscinaRunnerOptions, 'onFree'> {
  maxQueue: number;
}

interface Job {
  request: ExecutionRequest;
  /** Submission order, kept when a job handed back goes into the queue again. */
  order: number;
  /**
   * delayed: waiting out a retry's backoff, not yet in the queue. queued: in this class's
   * queue. handed: given to the runner, waiting for its thread to finish the task before
   * (still queued, as clients see it). running: started.
   */
  state: 'delayed' | 'queued' | 'handed' | 'running';
  /** While delayed: the clock's timer that queues it. */
  delayTimer?: unknown;
  /** When it was last handed to the runner (performance.now()). */
  handedAt: number;
}

/** A handed task still waiting for its thread this long after another ended is moved. */
const MOVE_WAITING_AFTER_MS = 2;

/**
 * Runs tasks on a Piscina pool, with the backlog held in this process. The backlog lives
 * here, not in Piscina: the runner holds at most two tasks per thread (the running one and
 * the next, so a thread never waits for this thread between tasks), and this class keeps
 * the order, priorities and pause, and cancels queued tasks without touching a thread. A
 * handed task that has not started is taken back when intake pauses or when a task of
 * higher priority arrives, so neither ever lets a task start out of turn.
 */
export class PiscinaExecutor extends EventEmitter<ExecutorEventMap> implements Executor {
  readonly #runner: PiscinaRunner;
  readonly #options: PiscinaExecutorOptions;
  readonly #clock: Clock;
  readonly #jobs = new Map<string, Job>();
  /** Queued jobs by priority; cancelled ones stay until popped or compacted, then skipped. */
  readonly #queue = new JobQueue<Job>();
  /** Jobs handed to the runner that have not started. */
  readonly #handed = new Set<Job>();
  #queued = 0;
  #running = 0;
  #nextOrder = 0;
  #dispatchScheduled = false;
  #paused = false;
  /** This process is going away: nothing more starts (see stopStarting). */
  #stopped = false;
  #closed = false;
  /** What the runner reports about the tasks this executor started. */
  readonly #listener: RunListener = {
    started: (taskId) => this.#started(taskId),
    progress: (taskId, report) => this.emit('progress', taskId, report),
    finished: (taskId, outcome) => this.#finished(taskId, outcome),
    returned: (taskId) => {
      const job = this.#jobs.get(taskId);
      if (job) this.#requeue(job);
    },
  };

  constructor(options: PiscinaExecutorOptions) {
    super();
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    // A slot coming back from a run its thread skipped may be the only one: dispatch then too.
    this.#runner = new PiscinaRunner({ ...options, onFree: () => this.#scheduleDispatch() });
  }

  submit(request: ExecutionRequest, { force = false, delayMs = 0 }: SubmitOptions = {}): Promise<void> {
    if (this.#closed) return Promise.reject(errors.shuttingDown());
    // Queued jobs that a free worker will take on the next dispatch are not waiting.
    const free = this.#paused ? 0 : this.#options.maxWorkers - this.#running;
    if (!force && this.#queued - free >= this.#options.maxQueue) {
      return Promise.reject(errors.queueFull(this.#options.maxQueue));
    }
    const job: Job = { request, order: this.#nextOrder++, state: 'queued', handedAt: 0 };
    this.#jobs.set(request.taskId, job);
    if (delayMs > 0) {
      job.state = 'delayed';
      job.delayTimer = this.#clock.setTimeout(() => {
        job.delayTimer = undefined;
        if (this.#jobs.get(request.taskId) === job && !this.#closed) this.#enqueue(job);
      }, delayMs);
    } else {
      this.#enqueue(job);
    }
    return Promise.resolve();
  }

  cancel(taskId: string, reason: CancelReason): Promise<boolean> {
    const job = this.#jobs.get(taskId);
    if (!job) return Promise.resolve(false);
    // A handed task that has not started ends at once, through the runner's `finished`.
    if (job.state === 'running' || job.state === 'handed') {
      return Promise.resolve(this.#runner.stop(taskId, { kind: 'cancel', reason }));
    }
    this.#jobs.delete(taskId);
    if (job.state === 'delayed') {
      this.#clock.clearTimeout(job.delayTimer);
    } else {
      // Left in the queue; #dispatch skips jobs that are no longer in #jobs.
      this.#queued--;
      if (this.#queue.size > 2 * this.#queued + 1024) {
        this.#queue.retain((queued) => this.#jobs.get(queued.request.taskId) === queued);
      }
    }
    this.emit('finished', taskId, { status: 'cancelled', reason });
    return Promise.resolve(true);
  }

  held(): Promise<{ waiting: string[]; running: string[] }> {
    const waiting: string[] = [];
    const running: string[] = [];
    for (const [taskId, job] of this.#jobs) (job.state === 'running' ? running : waiting).push(taskId);
    return Promise.resolve({ waiting, running });
  }

  stats(): Promise<ExecutorStats> {
    return Promise.resolve({
      queued: this.#queued,
      running: this.#running,
      maxQueue: this.#options.maxQueue,
      maxWorkers: this.#options.maxWorkers,
      paused: this.#paused,
    });
  }

  stopStarting(): Promise<void> {
    this.#stopped = true;
    for (const handed of [...this.#handed]) this.#recall(handed);
    return Promise.resolve();
  }

  pause(): Promise<void> {
    this.#paused = true;
    for (const handed of [...this.#handed]) this.#recall(handed);
    return Promise.resolve();
  }

  resume(): Promise<void> {
    this.#paused = false;
    this.#scheduleDispatch();
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#jobs.values()) if (job.state === 'delayed') this.#clock.clearTimeout(job.delayTimer);
    await this.#runner.close();
  }

  #enqueue(job: Job): void {
    job.state = 'queued';
    this.#queue.push(job, job.request.priority, job.order);
    this.#queued++;
    // A task handed ahead of this one but of lower priority must not start before it.
    for (const handed of this.#handed) {
      if (handed.request.priority < job.request.priority && this.#recall(handed)) break;
    }
    this.#scheduleDispatch();
  }

  #started(taskId: string): void {
    const job = this.#jobs.get(taskId);
    if (job?.state !== 'handed') return;
    this.#handed.delete(job);
    job.state = 'running';
    this.#queued--;
    this.#running++;
    this.emit('started', taskId, job.request.attempt);
  }

  #finished(taskId: string, outcome: ExecutionOutcome): void {
    const job = this.#jobs.get(taskId);
    if (!job) return;
    this.#jobs.delete(taskId);
    // A handed task cancelled before its thread started it ends as a queued one does.
    if (job.state === 'handed') {
      this.#handed.delete(job);
      this.#queued--;
    } else {
      this.#running--;
    }
    this.emit('finished', taskId, outcome);
    // A thread may be idle now while a task waits behind a long one on another thread: take
    // that task back, so the next dispatch hands it to the idle thread.
    const stale = performance.now() - MOVE_WAITING_AFTER_MS;
    for (const handed of this.#handed) {
      if (handed.handedAt < stale && this.#recall(handed)) break;
    }
    this.#scheduleDispatch();
  }

  /** Takes a handed task back into the queue, in its place, if its thread has not started it. */
  #recall(job: Job): boolean {
    if (!this.#runner.recall(job.request.taskId)) return false;
    this.#requeue(job);
    return true;
  }

  #requeue(job: Job): void {
    this.#handed.delete(job);
    job.state = 'queued';
    this.#queue.push(job, job.request.priority, job.order);
    this.#scheduleDispatch();
  }

  /** Dispatch once per tick, so a burst of submits starts tasks in one pass. */
  #scheduleDispatch(): void {
    if (this.#dispatchScheduled) return;
    this.#dispatchScheduled = true;
    queueMicrotask(() => {
      this.#dispatchScheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#runner.free > 0 && !this.#paused && !this.#stopped && !this.#closed) {
      const job = this.#queue.pop();
      if (!job) return;
      if (this.#jobs.get(job.request.taskId) !== job || job.state !== 'queued') continue; // cancelled while queued
      job.state = 'handed';
      job.handedAt = performance.now();
      this.#handed.add(job);
      this.#runner.run(job.request, this.#listener);
    }
  }
}
