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
import { PiscinaRunner, type RunListener } from './piscina-runner.ts';

export interface PiscinaExecutorOptions {
  /** The worker entry module (workers/entry.ts, or its compiled .js). */
  workerUrl: URL;
  /** Task type → module URL, handed to every worker. */
  taskModules: Record<string, string>;
  maxWorkers: number;
  maxQueue: number;
  cancelGraceMs: number;
  /** Heap limit of each worker thread (V8 old generation); V8's default when undefined. */
  workerMaxHeapMb?: number | undefined;
  logger: Logger;
  /** Times retry delays (submit's delayMs); the wall clock by default. */
  clock?: Clock;
}

interface Job {
  request: ExecutionRequest;
  /** Delayed: waiting out a retry's backoff, not yet in the queue. */
  state: 'delayed' | 'queued' | 'running';
  /** While delayed: the clock's timer that queues it. */
  delayTimer?: unknown;
}

/**
 * Runs tasks on a Piscina pool, with the backlog held in this process. The backlog lives
 * here, not in Piscina: the runner only ever holds as many tasks as it has threads, and this
 * class can cancel queued tasks without touching a thread.
 */
export class PiscinaExecutor extends EventEmitter<ExecutorEventMap> implements Executor {
  readonly #runner: PiscinaRunner;
  readonly #options: PiscinaExecutorOptions;
  readonly #clock: Clock;
  readonly #jobs = new Map<string, Job>();
  /** Queued jobs by priority; cancelled ones stay until popped or compacted, then skipped. */
  readonly #queue = new JobQueue<Job>();
  #queued = 0;
  #running = 0;
  #dispatchScheduled = false;
  #paused = false;
  /** This process is going away: nothing more starts (see stopStarting). */
  #stopped = false;
  #closed = false;
  /** What the runner reports about the tasks this executor started. */
  readonly #listener: RunListener = {
    progress: (taskId, report) => this.emit('progress', taskId, report),
    finished: (taskId, outcome) => this.#finished(taskId, outcome),
  };

  constructor(options: PiscinaExecutorOptions) {
    super();
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#runner = new PiscinaRunner(options);
  }

  submit(request: ExecutionRequest, { force = false, delayMs = 0 }: SubmitOptions = {}): Promise<void> {
    if (this.#closed) return Promise.reject(errors.shuttingDown());
    // Queued jobs that a free worker will take on the next dispatch are not waiting.
    const free = this.#paused ? 0 : this.#options.maxWorkers - this.#running;
    if (!force && this.#queued - free >= this.#options.maxQueue) {
      return Promise.reject(errors.queueFull(this.#options.maxQueue));
    }
    const job: Job = { request, state: 'queued' };
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
    if (job.state === 'running') return Promise.resolve(this.#runner.stop(taskId, { kind: 'cancel', reason }));
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
    return Promise.resolve();
  }

  pause(): Promise<void> {
    this.#paused = true;
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
    this.#queue.push(job, job.request.priority);
    this.#queued++;
    this.#scheduleDispatch();
  }

  #finished(taskId: string, outcome: ExecutionOutcome): void {
    if (!this.#jobs.delete(taskId)) return;
    this.#running--;
    this.emit('finished', taskId, outcome);
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
    while (this.#running < this.#options.maxWorkers && !this.#paused && !this.#stopped && !this.#closed) {
      const job = this.#queue.pop();
      if (!job) return;
      if (this.#jobs.get(job.request.taskId) !== job) continue; // cancelled while queued
      this.#queued--;
      job.state = 'running';
      this.#running++;
      this.emit('started', job.request.taskId, job.request.attempt);
      this.#runner.run(job.request, this.#listener);
    }
  }
}
