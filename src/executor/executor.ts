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
}

export interface SubmitOptions {
  /** Queue even past the queue limit (a retry of a task that was already accepted). */
  force?: boolean;
}

/** How a task ended. */
export type ExecutionOutcome =
  | { status: 'completed'; result: unknown }
  | { status: 'failed'; error: TaskError }
  | { status: 'cancelled'; reason: CancelReason };

export interface ExecutorEventMap {
  started: [taskId: string];
  progress: [taskId: string, progress: ProgressReport];
  /** Exactly once per submitted task, after its last `progress`. */
  finished: [taskId: string, outcome: ExecutionOutcome];
}

/**
 * Runs tasks: holds the queue, starts tasks in order as workers free up, enforces timeouts
 * and cancellation. Implementations: PiscinaExecutor.
 */
export interface Executor extends EventEmitter<ExecutorEventMap> {
  /** Queues a task. Throws AppError `queue_full` when no more may wait. */
  submit(request: ExecutionRequest, options?: SubmitOptions): void;
  /**
   * Cancels a task: a queued one finishes at once; a running one sees its signal abort and,
   * after the grace period, loses its thread. Returns false if the task is not here.
   */
  cancel(taskId: string, reason: CancelReason): boolean;
  readonly stats: { queued: number; running: number; maxQueue: number; maxWorkers: number; paused: boolean };
  /** Stops starting queued tasks; running ones go on. */
  pause(): void;
  resume(): void;
  /** Stops accepting tasks and ends the workers. Idempotent. */
  close(): Promise<void>;
}
