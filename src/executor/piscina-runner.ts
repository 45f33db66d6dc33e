import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { SlotState, type WorkerData, type WorkerJob, type WorkerMessage, type WorkerOutcome } from '../../workers/protocol.ts';
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
  /**
   * A slot came back that no `finished` announced: that of a run recalled, or stopped before
   * it started, once its thread has skipped it. `free` grew: a caller that hands runs by
   * `free` must look at its queue again here, or it may wait for an event that never comes.
   */
  onFree?: (() => void) | undefined;
}

/** Why a run is being stopped before it returns. */
export type StopReason =
  | { kind: 'cancel'; reason: CancelReason }
  | { kind: 'timeout'; timeoutMs: number }
  /** The run no longer belongs to this process (its claim on it expired): end it at once. */
  | { kind: 'lost' };

/** Receives what one run reports. */
export interface RunListener {
  /** The thread started the task; its timeout counts from here. Before any `progress`. */
  started?(taskId: string): void;
  progress(taskId: string, report: ProgressReport): void;
  /** Exactly once per run, after its last `progress`, unless the run is recalled or returned. */
  finished(taskId: string, outcome: ExecutionOutcome): void;
  /**
   * The run never started and is given back (its thread died while busy with the task
   * before it): queue it again. Without this, such a run finishes as `worker_crashed`.
   */
  returned?(taskId: string): void;
}

/** Hand-offs per thread: the running task and the next one. */
export const RUNS_PER_THREAD = 2;

interface Run {
  /** This hand-off's number (WorkerJob.run): the messages of an earlier attempt do not carry it. */
  number: number;
  request: ExecutionRequest;
  listener: RunListener;
  /** The run's slot in the shared state array: see SlotState. */
  slot: number;
  abort: AbortController;
  /** Announced as started: at hand-off to an idle thread, or on the worker's `started` message. */
  started: boolean;
  stop?: StopReason;
  timeoutTimer?: unknown;
  graceTimer?: NodeJS.Timeout;
  /** The worker's return value; published only once all the messages it counts arrived. */
  outcome?: WorkerOutcome;
  /** Messages received for this run (`started` and `progress`). */
  received: number;
}

const tsxLoader = () => pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * Runs tasks on the threads of a Piscina pool: hands the input to a worker, relays its
 * progress, counts the timeout from the start, stops it cooperatively then by killing its
 * thread, and turns whatever happened into exactly one outcome. It holds no backlog.
 *
 * A thread takes up to two runs: the one it runs and the next, so it goes straight from one
 * task to the next without waiting for the main thread (callers that want that hand it up
 * to `free` runs; those that keep to `maxWorkers` runs see each start at once). A run handed
 * to a busy thread has not started: `recall` takes it back, and a cancel ends it at once.
 * Cancellation uses one shared array of slots allocated with the pool, not memory per task.
 */
export class PiscinaRunner {
  readonly #pool: Piscina;
  readonly #options: PiscinaRunnerOptions;
  readonly #clock: Clock;
  /** Runs handed to a thread and not finished, by task id. */
  readonly #runs = new Map<string, Run>();
  readonly #slots: Int32Array;
  readonly #freeSlots: number[];
  #nextRunNumber = 0;
  /** Runs taken back or stopped before they started, still with Piscina: their threads will skip them. */
  #skipping = 0;
  #closed = false;

  constructor(options: PiscinaRunnerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    const slotCount = RUNS_PER_THREAD * options.maxWorkers;
    this.#slots = new Int32Array(new SharedArrayBuffer(4 * slotCount));
    this.#freeSlots = Array.from({ length: slotCount }, (_, index) => slotCount - 1 - index);
    const workerData: WorkerData = { taskModules: options.taskModules, slots: this.#slots };
    // Node 20 cannot load a .ts worker or a .ts task module by itself: give the thread tsx
    // unless it inherits it.
    const typeScript = [options.workerUrl.href, ...Object.values(options.taskModules)].some((url) => /\.[cm]?ts$/.test(url));
    const needsLoader = typeScript && !process.execArgv.some((arg) => arg.includes('tsx'));
    this.#pool = new Piscina({
      filename: options.workerUrl.href,
      minThreads: options.maxWorkers,
      maxThreads: options.maxWorkers,
      idleTimeout: 60_000,
      concurrentTasksPerWorker: RUNS_PER_THREAD,
      // Piscina's own balancer never gives a second task with an abort signal to a busy
      // thread; this one does, preferring an idle thread. The worker runs them one by one.
      loadBalancer: (_task, workers) => {
        let candidate: (typeof workers)[number] | null = null;
        for (const worker of workers) {
          if (worker.currentUsage === 0) return worker;
          if (worker.currentUsage < RUNS_PER_THREAD && (!candidate || worker.currentUsage < candidate.currentUsage)) {
            candidate = worker;
          }
        }
        return candidate;
      },
      workerData,
      // A thread past its limit is terminated: its task fails as worker_crashed, the pool replaces it.
      ...(options.workerMaxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: options.workerMaxHeapMb } }),
      ...(needsLoader ? { execArgv: [...process.execArgv, '--import', tsxLoader()] } : {}),
    });
    this.#pool.on('message', (message: WorkerMessage) => this.#onMessage(message));
    // Without a listener, an error in an idle worker would crash the process.
    this.#pool.on('error', (error: unknown) => options.logger.error({ err: error }, 'worker pool error'));
  }

  /** Runs handed and not finished (started or waiting for their thread). */
  get running(): number {
    return this.#runs.size;
  }

  /** Runs that may be handed now. */
  get free(): number {
    return this.#freeSlots.length;
  }

  has(taskId: string): boolean {
    return this.#runs.has(taskId);
  }

  /**
   * Hands a task to a thread: it starts at once on an idle thread, or right after the task
   * its thread is running. The caller hands at most `free` runs and never one task twice.
   */
  run(request: ExecutionRequest, listener: RunListener): void {
    const slot = this.#freeSlots.pop();
    if (slot === undefined) throw new Error('PiscinaRunner.run: no free thread (check `free` first)');
    // Fewer runs than threads, counting those still to be skipped: a thread is idle (the
    // balancer prefers it), so the task starts now, as far as anyone can tell. It is
    // announced here, and the slot tells the worker not to send a `started` message.
    const idleThread = this.#runs.size + this.#skipping < this.#options.maxWorkers;
    Atomics.store(this.#slots, slot, idleThread ? SlotState.announced : SlotState.handed);
    const number = this.#nextRunNumber++;
    const run: Run = { number, request, listener, slot, abort: new AbortController(), started: false, received: 0 };
    this.#runs.set(request.taskId, run);
    const payload: WorkerJob = { taskId: request.taskId, run: number, type: request.type, input: request.input, slot };
    this.#pool.run(payload, { signal: run.abort.signal }).then(
      (outcome: WorkerOutcome) => this.#onOutcome(run, outcome),
      (error: unknown) => this.#onRunFailed(run, error),
    );
    if (idleThread) this.#onStarted(run);
  }

  /**
   * Takes back a run that is waiting for its busy thread; no listener hears of it again.
   * False if it started (or is not here).
   */
  recall(taskId: string): boolean {
    const run = this.#runs.get(taskId);
    if (!run || run.started || !this.#takeBack(run, SlotState.recalled)) return false;
    this.#runs.delete(taskId);
    this.#skipping++;
    return true;
  }

  /**
   * Cancel or timeout: asks the task through shared memory, then terminates its thread after
   * the grace period. `lost` terminates at once. A run not yet started ends at once. The
   * first stop decides the outcome, except that a cancel outranks a timeout already under
   * way: the run then ends cancelled. Returns false if the task is not running here.
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
    if (this.#takeBack(run, SlotState.cancelRequested)) {
      // Its thread will skip it; the slot comes back with that answer.
      this.#skipping++;
      this.#finish(run);
      return true;
    }
    if (stop.kind === 'lost') {
      clearTimeout(run.graceTimer);
      run.abort.abort();
      return true;
    }
    Atomics.store(this.#slots, run.slot, SlotState.cancelRequested);
    Atomics.notify(this.#slots, run.slot);
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

  /** Marks a run's slot `to` if its thread has not started it; false if it has. */
  #takeBack(run: Run, to: number): boolean {
    return Atomics.compareExchange(this.#slots, run.slot, SlotState.handed, to) === SlotState.handed;
  }

  #onStarted(run: Run): void {
    run.started = true;
    const { taskId, timeoutMs } = run.request;
    run.listener.started?.(taskId);
    // The timeout counts from here: queue time, and time waiting for the thread, is not run
    // time. A stop asked for while the start was on its way is already under way.
    if (!run.stop) run.timeoutTimer = this.#clock.setTimeout(() => this.stop(taskId, { kind: 'timeout', timeoutMs }), timeoutMs);
  }

  #onMessage(message: WorkerMessage): void {
    const run = this.#runs.get(message.taskId);
    // Piscina rejects a run as soon as it aborts it, but the terminated thread still delivers
    // what it had posted (Node drains a worker's port when it exits), possibly once the next
    // attempt of the task runs here: counted as that attempt's, they would push its count
    // past the one its outcome gives, and it would never finish.
    if (!run || run.number !== message.run) return;
    run.received++;
    if (message.kind === 'started') {
      if (!run.started) this.#onStarted(run);
    } else {
      const { value, text, step, total_steps } = message;
      run.listener.progress(message.taskId, { value, text, step, total_steps });
    }
    if (run.outcome && run.received === run.outcome.messages) this.#finish(run);
  }

  #onOutcome(run: Run, outcome: WorkerOutcome): void {
    if (this.#runs.get(run.request.taskId) !== run) {
      // Recalled, or ended before it started: the thread skipped it and gives the slot back.
      if (!this.#closed) this.#skipped(run);
      return;
    }
    run.outcome = outcome;
    if (run.received === outcome.messages) this.#finish(run);
  }

  #onRunFailed(run: Run, error: unknown): void {
    if (this.#runs.get(run.request.taskId) !== run) {
      if (!this.#closed) this.#skipped(run);
      return;
    }
    if (!run.started && this.#takeBack(run, SlotState.recalled)) {
      // Its thread died (or was terminated for the task before it) before starting it.
      this.#runs.delete(run.request.taskId);
      this.#freeSlots.push(run.slot);
      if (run.listener.returned) {
        run.listener.returned(run.request.taskId);
        return;
      }
      this.#report(run, error);
      return;
    }
    // Either we terminated the thread, or the thread died.
    if (!run.abort.signal.aborted) {
      this.#options.logger.warn({ err: error, taskId: run.request.taskId }, 'worker thread died');
    }
    // It had started, but the thread died before its `started` message came through.
    if (!run.started) this.#onStarted(run);
    this.#finish(run, run.abort.signal.aborted ? undefined : (error ?? new Error('thread ended')));
  }

  /** A run recalled or stopped before it started is back from its thread: its slot is free. */
  #skipped(run: Run): void {
    this.#skipping--;
    this.#freeSlots.push(run.slot);
    this.#options.onFree?.();
  }

  #finish(run: Run, crash?: unknown): void {
    const { taskId } = run.request;
    if (this.#runs.get(taskId) !== run) return;
    this.#runs.delete(taskId);
    // The slot is free once the thread is done with it: at once, unless a skip is on its way.
    if (run.outcome || run.abort.signal.aborted || crash !== undefined) this.#freeSlots.push(run.slot);
    this.#report(run, crash);
  }

  #report(run: Run, crash: unknown): void {
    this.#clock.clearTimeout(run.timeoutTimer);
    clearTimeout(run.graceTimer);
    run.listener.finished(run.request.taskId, outcomeOf(run, crash));
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
  const outcome = run.outcome;
  if (crash !== undefined || !outcome || 'notStarted' in outcome) {
    const detail = crash instanceof Error ? `: ${crash.message}` : '';
    return { status: 'failed', error: { code: 'worker_crashed', message: `The worker thread died${detail}` } };
  }
  if (outcome.ok) return { status: 'completed', result: outcome.result };
  // A task that aborts itself without being cancelled has simply failed.
  const code = outcome.error.code === 'cancelled' ? 'task_error' : outcome.error.code;
  return { status: 'failed', error: { code, message: outcome.error.message } };
}
