import type { EventEmitter } from 'node:events';
import type { CancelReason, Progress, TaskError } from '../events.ts';

/** Progress as a task reports it; the service adds the estimate of time left. */
export type ProgressReport = Omit<Progress, 'eta_ms'>;

export interface ExecutionRequest {
  taskId: string;
  type: string;
  input: unknown;
  /** Run time limit, counted from the start. */
  timeoutMs: number;
  /** Higher starts first; equal priorities start in submission order. */
  priority: number;
  /** Which attempt this run is (1 for the first). Carried as is and reported in `started`. */
  attempt: number;
}

export interface SubmitOptions {
  /** Queue even past the queue limit (a retry of a task that was already accepted). */
  force?: boolean;
  /**
   * Start no sooner than this long from now (a retry's backoff). The delay is kept by the
   * executor, so in a shared queue it survives the process that asked for it. A delayed
   * task is not counted as queued in stats(), and cancel() reaches it.
   */
  delayMs?: number;
}

/** How a task ended. */
export type ExecutionOutcome =
  | { status: 'completed'; result: unknown }
  | { status: 'failed'; error: TaskError }
  | { status: 'cancelled'; reason: CancelReason };

export interface ExecutorStats {
  /** Tasks waiting for a worker, in the whole (possibly shared) queue; delayed ones excluded. */
  queued: number;
  /** Tasks running, on every process that shares the queue. */
  running: number;
  maxQueue: number;
  /** Worker threads, summed over every live process that shares the queue. */
  maxWorkers: number;
  paused: boolean;
}

/**
 * What an executor reports, on the process where it happened. For each submitted task:
 * `started` (once per attempt), then any number of `progress`, then exactly one
 * `finished`, after its last `progress`; a task cancelled before it started has only
 * `finished`. A task whose process died mid-run is reported by another process as
 * `finished` with error code `worker_lost`.
 */
export interface ExecutorEventMap {
  started: [taskId: string, attempt: number];
  progress: [taskId: string, progress: ProgressReport];
  finished: [taskId: string, outcome: ExecutionOutcome];
}

/**
 * Runs tasks: holds the queue, starts tasks in priority order as workers free up, enforces
 * timeouts (counted from the start) and cancellation (cooperative through the task's
 * signal, then its thread is terminated after the grace period). Knows nothing of the
 * lifecycle: the service decides retries and what an outcome means.
 * Implementations: PiscinaExecutor (in this process), BullmqExecutor (a queue shared in Redis).
 */
export interface Executor extends EventEmitter<ExecutorEventMap> {
  /**
   * Queues a task. Rejects with AppError `queue_full` when no more may wait (unless
   * `force`), `shutting_down` once closed.
   */
  submit(request: ExecutionRequest, options?: SubmitOptions): Promise<void>;
  /**
   * Cancels a task wherever it is: a queued or delayed one finishes (`cancelled`) at once,
   * before this resolves; a running one, on whichever process runs it, sees its signal abort
   * and, after the grace period, loses its thread, then finishes `cancelled` there. A task
   * already past its end, or unknown, is left alone. Resolves whether the task was found.
   */
  cancel(taskId: string, reason: CancelReason): Promise<boolean>;
  /**
   * The tasks this process must see ended before it stops: those waiting in a queue or delay
   * only it holds, and those running on its threads. Tasks waiting in a queue shared with
   * other processes are not listed: another process will run them.
   */
  held(): Promise<{ waiting: string[]; running: string[] }>;
  /** Figures of the whole queue (a round trip for a shared one). */
  stats(): Promise<ExecutorStats>;
  /**
   * This process is going away: it starts no more tasks (ones waiting in a shared queue are
   * left to the other processes); the ones it runs go on.
   */
  stopStarting(): Promise<void>;
  /** Stops starting queued tasks, for every process sharing the queue; running ones go on. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stops accepting tasks and ends this process's workers. Idempotent. */
  close(): Promise<void>;
}
