import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { CancelFlag, type WorkerData, type WorkerJob, type WorkerMessage, type WorkerOutcome } from '../../workers/protocol.ts';
import { errors } from '../errors.ts';
import type { CancelReason } from '../events.ts';
import type { ExecutionOutcome, ExecutionRequest, Executor, ExecutorEventMap, SubmitOptions } from './executor.ts';
import { JobQueue } from './job-queue.ts';

export interface PiscinaExecutorOptions {
  /** The worker entry module (workers/entry.ts, or its compiled .js). */
  workerUrl: URL;
  /** Task type → module URL, handed to every worker. */
  taskModules: Record<string, string>;
  maxWorkers: number;
  maxQueue: number;
  cancelGraceMs: number;
  logger: Logger;
}

type StopReason = { kind: 'cancel'; reason: CancelReason } | { kind: 'timeout'; timeoutMs: number };

interface Job {
  request: ExecutionRequest;
  state: 'queued' | 'running';
  cancelFlag: Int32Array;
  abort: AbortController;
  stop?: StopReason;
  timeoutTimer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  /** The worker's return value; published only once `endSeen`. */
  outcome?: WorkerOutcome;
  /** The worker's end marker arrived: no progress is still in flight. */
  endSeen: boolean;
}

const tsxLoader = () => pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * Runs tasks on a Piscina pool. The backlog lives here, not in Piscina: Piscina only ever
 * holds as many tasks as it has threads, which keeps its own queue (slow with abort signals)
 * empty and lets this class cancel queued tasks without touching a thread.
 */
export class PiscinaExecutor extends EventEmitter<ExecutorEventMap> implements Executor {
  readonly #pool: Piscina;
  readonly #options: PiscinaExecutorOptions;
  readonly #jobs = new Map<string, Job>();
  /** Queued jobs by priority; cancelled ones stay until popped or compacted, then skipped. */
  readonly #queue = new JobQueue<Job>();
  #queued = 0;
  #running = 0;
  #dispatchScheduled = false;
  #paused = false;
  #closed = false;

  constructor(options: PiscinaExecutorOptions) {
    super();
    this.#options = options;
    const workerData: WorkerData = { taskModules: options.taskModules };
    // Node 20 cannot load a .ts worker by itself: give the thread tsx unless it inherits it.
    const needsLoader =
      options.workerUrl.pathname.endsWith('.ts') && !process.execArgv.some((arg) => arg.includes('tsx'));
    this.#pool = new Piscina({
      filename: options.workerUrl.href,
      minThreads: options.maxWorkers,
      maxThreads: options.maxWorkers,
      idleTimeout: 60_000,
      concurrentTasksPerWorker: 1,
      workerData,
      ...(needsLoader ? { execArgv: [...process.execArgv, '--import', tsxLoader()] } : {}),
    });
    this.#pool.on('message', (message: WorkerMessage) => this.#onMessage(message));
    // Without a listener, an error in an idle worker would crash the process.
    this.#pool.on('error', (error: unknown) => options.logger.error({ err: error }, 'worker pool error'));
  }

  submit(request: ExecutionRequest, { force = false }: SubmitOptions = {}): void {
    if (this.#closed) throw errors.shuttingDown();
    // Queued jobs that a free worker will take on the next dispatch are not waiting.
    const free = this.#paused ? 0 : this.#options.maxWorkers - this.#running;
    if (!force && this.#queued - free >= this.#options.maxQueue) {
      throw errors.queueFull(this.#options.maxQueue);
    }
    const job: Job = {
      request,
      state: 'queued',
      cancelFlag: new Int32Array(new SharedArrayBuffer(4)),
      abort: new AbortController(),
      endSeen: false,
    };
    this.#jobs.set(request.taskId, job);
    this.#queue.push(job, request.priority);
    this.#queued++;
    this.#scheduleDispatch();
  }

  cancel(taskId: string, reason: CancelReason): boolean {
    const job = this.#jobs.get(taskId);
    if (!job) return false;
    if (job.state === 'queued') {
      // Left in the queue; #dispatch skips jobs that are no longer in #jobs.
      this.#jobs.delete(taskId);
      this.#queued--;
      if (this.#queue.size > 2 * this.#queued + 1024) {
        this.#queue.retain((queued) => this.#jobs.get(queued.request.taskId) === queued);
      }
      this.emit('finished', taskId, { status: 'cancelled', reason });
      return true;
    }
    this.#stop(job, { kind: 'cancel', reason });
    return true;
  }

  get stats() {
    return {
      queued: this.#queued,
      running: this.#running,
      maxQueue: this.#options.maxQueue,
      maxWorkers: this.#options.maxWorkers,
      paused: this.#paused,
    };
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#scheduleDispatch();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#jobs.values()) {
      clearTimeout(job.timeoutTimer);
      clearTimeout(job.graceTimer);
    }
    await this.#pool.destroy();
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
    while (this.#running < this.#options.maxWorkers && !this.#paused && !this.#closed) {
      const job = this.#queue.pop();
      if (!job) return;
      if (this.#jobs.get(job.request.taskId) !== job) continue; // cancelled while queued
      this.#queued--;
      this.#start(job);
    }
  }

  #start(job: Job): void {
    const { request } = job;
    job.state = 'running';
    this.#running++;
    this.emit('started', request.taskId);
    // The timeout counts from here, not from submit: queue time is not run time.
    job.timeoutTimer = setTimeout(() => this.#stop(job, { kind: 'timeout', timeoutMs: request.timeoutMs }), request.timeoutMs);
    const payload: WorkerJob = {
      taskId: request.taskId,
      type: request.type,
      input: request.input,
      cancelFlag: job.cancelFlag,
    };
    this.#pool.run(payload, { signal: job.abort.signal }).then(
      (outcome: WorkerOutcome) => {
        job.outcome = outcome;
        if (job.endSeen) this.#finish(job);
      },
      (error: unknown) => {
        // Either we terminated the thread after the grace period, or the thread died.
        if (!job.abort.signal.aborted) {
          this.#options.logger.warn({ err: error, taskId: request.taskId }, 'worker thread died');
        }
        this.#finish(job, job.abort.signal.aborted ? undefined : error);
      },
    );
  }

  /** Cancel or timeout: ask the task through shared memory, then terminate after the grace. */
  #stop(job: Job, stop: StopReason): void {
    if (job.stop) return;
    job.stop = stop;
    clearTimeout(job.timeoutTimer);
    Atomics.store(job.cancelFlag, 0, CancelFlag.cancelRequested);
    Atomics.notify(job.cancelFlag, 0);
    // Piscina terminates the thread on abort: no finally runs in the worker.
    job.graceTimer = setTimeout(() => job.abort.abort(), this.#options.cancelGraceMs);
  }

  #onMessage(message: WorkerMessage): void {
    const job = this.#jobs.get(message.taskId);
    if (!job || job.state !== 'running') return;
    if (message.kind === 'progress') {
      const { value, text, step, total_steps } = message;
      this.emit('progress', message.taskId, { value, text, step, total_steps });
    } else if (message.kind === 'end') {
      job.endSeen = true;
      if (job.outcome) this.#finish(job);
    }
  }

  #finish(job: Job, crash?: unknown): void {
    const { taskId } = job.request;
    if (this.#jobs.get(taskId) !== job) return;
    this.#jobs.delete(taskId);
    clearTimeout(job.timeoutTimer);
    clearTimeout(job.graceTimer);
    this.#running--;
    this.emit('finished', taskId, outcomeOf(job, crash));
    this.#scheduleDispatch();
  }
}

function outcomeOf(job: Job, crash: unknown): ExecutionOutcome {
  // Once a stop was asked for, it decides the outcome, whatever the task did after.
  if (job.stop?.kind === 'cancel') return { status: 'cancelled', reason: job.stop.reason };
  if (job.stop?.kind === 'timeout') {
    return {
      status: 'failed',
      error: { code: 'timeout', message: `The task did not finish within ${job.stop.timeoutMs} ms` },
    };
  }
  if (crash !== undefined || !job.outcome) {
    const detail = crash instanceof Error ? `: ${crash.message}` : '';
    return { status: 'failed', error: { code: 'worker_crashed', message: `The worker thread died${detail}` } };
  }
  const outcome = job.outcome;
  if (outcome.ok) return { status: 'completed', result: outcome.result };
  // A task that aborts itself without being cancelled has simply failed.
  const code = outcome.error.code === 'cancelled' ? 'task_error' : outcome.error.code;
  return { status: 'failed', error: { code, message: outcome.error.message } };
}
