import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { CancelFlag, type WorkerData, type WorkerJob, type WorkerMessage, type WorkerOutcome } from '../../workers/protocol.ts';
import type { CancelReason } from '../events.ts';
import { systemClock, type Clock } from '../reaper.ts';
import type { ExecutionOutcome, ExecutionRequest, ProgressReport } from './executor.ts';

export interface PiscinaRunnerOptions {
  /** The worker entry module (workers/entry.ts, or its compiled .js). */
  workerUrl: URL;
  /** Task type → module URL, handed to every worker. */
  taskModules: Record<string, string>;
  /** Threads, so tasks running at once. */
  maxWorkers: number;
  cancelGraceMs: number;
  /** Heap limit of each worker thread (V8 old generation); V8's default when undefined. */
  workerMaxHeapMb?: number | undefined;
  logger: Logger;
  /** Runs the timeout of each run; the system clock unless a test drives time. */
  clock?: Clock;
}

/** Why a run is being stopped before it returns. */
export type StopReason =
  | { kind: 'cancel'; reason: CancelReason }
  | { kind: 'timeout'; timeoutMs: number }
  /** The run no longer belongs to this process (its claim on it expired): end it at once. */
  | { kind: 'lost' };

/** Receives what one run reports. */
export interface RunListener {
  progress(taskId: string, report: ProgressReport): void;
  /** Exactly once per run, after its last `progress`. */
  finished(taskId: string, outcome: ExecutionOutcome): void;
}

interface Run {
  request: ExecutionRequest;
  listener: RunListener;
  cancelFlag: Int32Array;
  abort: AbortController;
  stop?: StopReason;
  timeoutTimer: unknown;
  graceTimer?: NodeJS.Timeout;
  /** The worker's return value; published only once `endSeen`. */
  outcome?: WorkerOutcome;
  /** The worker's end marker arrived: no progress is still in flight. */
  endSeen: boolean;
}

const tsxLoader = () => pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * Runs one task at a time per thread of a Piscina pool: hands the input to a worker, relays
 * its progress, counts the timeout from the start, stops it cooperatively then by killing
 * its thread, and turns whatever happened into exactly one outcome. It holds no backlog:
 * callers (an in-process queue, or a BullMQ worker) start at most `maxWorkers` runs at once,
 * which keeps Piscina's own queue (slow with abort signals) empty.
 */
export class PiscinaRunner {
  readonly #pool: Piscina;
  readonly #options: PiscinaRunnerOptions;
  readonly #clock: Clock;
  /** Runs in progress, by task id. */
  readonly #runs = new Map<string, Run>();
  #closed = false;

  constructor(options: PiscinaRunnerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    const workerData: WorkerData = { taskModules: options.taskModules };
    // Node 20 cannot load a .ts worker or a .ts task module by itself: give the thread tsx
    // unless it inherits it.
    const typeScript = [options.workerUrl.href, ...Object.values(options.taskModules)].some((url) => /\.[cm]?ts$/.test(url));
    const needsLoader = typeScript && !process.execArgv.some((arg) => arg.includes('tsx'));
    this.#pool = new Piscina({
      filename: options.workerUrl.href,
      minThreads: options.maxWorkers,
      maxThreads: options.maxWorkers,
      idleTimeout: 60_000,
      concurrentTasksPerWorker: 1,
      workerData,
      // A thread past its limit is terminated: its task fails as worker_crashed, the pool replaces it.
      ...(options.workerMaxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: options.workerMaxHeapMb } }),
      ...(needsLoader ? { execArgv: [...process.execArgv, '--import', tsxLoader()] } : {}),
    });
    this.#pool.on('message', (message: WorkerMessage) => this.#onMessage(message));
    // Without a listener, an error in an idle worker would crash the process.
    this.#pool.on('error', (error: unknown) => options.logger.error({ err: error }, 'worker pool error'));
  }

  /** Runs in progress. */
  get running(): number {
    return this.#runs.size;
  }

  has(taskId: string): boolean {
    return this.#runs.has(taskId);
  }

  /**
   * Starts a task on a thread now. The timeout counts from here: queue time is not run time.
   * The caller keeps runs at or below `maxWorkers` and never runs one task twice at once.
   */
  run(request: ExecutionRequest, listener: RunListener): void {
    const run: Run = {
      request,
      listener,
      cancelFlag: new Int32Array(new SharedArrayBuffer(4)),
      abort: new AbortController(),
      timeoutTimer: this.#clock.setTimeout(
        () => this.stop(request.taskId, { kind: 'timeout', timeoutMs: request.timeoutMs }),
        request.timeoutMs,
      ),
      endSeen: false,
    };
    this.#runs.set(request.taskId, run);
    const payload: WorkerJob = {
      taskId: request.taskId,
      type: request.type,
      input: request.input,
      cancelFlag: run.cancelFlag,
    };
    this.#pool.run(payload, { signal: run.abort.signal }).then(
      (outcome: WorkerOutcome) => {
        run.outcome = outcome;
        if (run.endSeen) this.#finish(run);
      },
      (error: unknown) => {
        // Either we terminated the thread, or the thread died.
        if (!run.abort.signal.aborted) {
          this.#options.logger.warn({ err: error, taskId: request.taskId }, 'worker thread died');
        }
        this.#finish(run, run.abort.signal.aborted ? undefined : error);
      },
    );
  }

  /**
   * Cancel or timeout: asks the task through shared memory, then terminates its thread after
   * the grace period. `lost` terminates at once. The first stop decides the outcome, except
   * that a cancel outranks a timeout already under way: the run then ends cancelled.
   * Returns false if the task is not running here.
   */
  stop(taskId: string, stop: StopReason): boolean {
    const run = this.#runs.get(taskId);
    if (!run) return false;
    if (run.stop && stop.kind !== 'lost') {
      // The thread is already asked to stop and its grace timer runs: only the outcome changes.
      if (run.stop.kind === 'timeout' && stop.kind === 'cancel') run.stop = stop;
      return true;
    }
    run.stop ??= stop;
    this.#clock.clearTimeout(run.timeoutTimer);
    if (stop.kind === 'lost') {
      clearTimeout(run.graceTimer);
      run.abort.abort();
      return true;
    }
    Atomics.store(run.cancelFlag, 0, CancelFlag.cancelRequested);
    Atomics.notify(run.cancelFlag, 0);
    // Piscina terminates the thread on abort: no finally runs in the worker.
    run.graceTimer = setTimeout(() => run.abort.abort(), this.#options.cancelGraceMs);
    return true;
  }

  /** Ends every thread; runs still in progress end without an outcome. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const run of this.#runs.values()) {
      this.#clock.clearTimeout(run.timeoutTimer);
      clearTimeout(run.graceTimer);
    }
    this.#runs.clear();
    await this.#pool.destroy();
  }

  #onMessage(message: WorkerMessage): void {
    const run = this.#runs.get(message.taskId);
    if (!run) return;
    if (message.kind === 'progress') {
      const { value, text, step, total_steps } = message;
      run.listener.progress(message.taskId, { value, text, step, total_steps });
    } else if (message.kind === 'end') {
      run.endSeen = true;
      if (run.outcome) this.#finish(run);
    }
  }

  #finish(run: Run, crash?: unknown): void {
    const { taskId } = run.request;
    if (this.#runs.get(taskId) !== run) return;
    this.#runs.delete(taskId);
    this.#clock.clearTimeout(run.timeoutTimer);
    clearTimeout(run.graceTimer);
    run.listener.finished(taskId, outcomeOf(run, crash));
  }
}

function outcomeOf(run: Run, crash: unknown): ExecutionOutcome {
  // Once a stop was asked for, it decides the outcome, whatever the task did after.
  if (run.stop?.kind === 'cancel') return { status: 'cancelled', reason: run.stop.reason };
  if (run.stop?.kind === 'timeout') {
    return {
      status: 'failed',
      error: { code: 'timeout', message: `The task did not finish within ${run.stop.timeoutMs} ms` },
    };
  }
  if (run.stop?.kind === 'lost') {
    return { status: 'failed', error: { code: 'worker_lost', message: 'The task was taken from this instance' } };
  }
  if (crash !== undefined || !run.outcome) {
    const detail = crash instanceof Error ? `: ${crash.message}` : '';
    return { status: 'failed', error: { code: 'worker_crashed', message: `The worker thread died${detail}` } };
  }
  const outcome = run.outcome;
  if (outcome.ok) return { status: 'completed', result: outcome.result };
  // A task that aborts itself without being cancelled has simply failed.
  const code = outcome.error.code === 'cancelled' ? 'task_error' : outcome.error.code;
  return { status: 'failed', error: { code, message: outcome.error.message } };
}
