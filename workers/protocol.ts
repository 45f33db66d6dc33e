// Message shapes shared by the main thread and worker threads. Errors cross the thread
// boundary as plain data: class names and custom fields do not survive structured clone.

/** What the executor hands a worker for one task. */
export interface WorkerJob {
  taskId: string;
  type: string;
  input: unknown;
  /** Shared with the main thread: see CancelFlag. */
  cancelFlag: Int32Array;
}

/** Values of a job's cancel flag (index 0). */
export const CancelFlag = {
  running: 0,
  cancelRequested: 1,
  /** Set by the worker when the job is over, to release its own waiter. */
  finished: 2,
} as const;

export type WorkerErrorCode = 'task_error' | 'invalid_result' | 'invalid_input' | 'cancelled';

/** What a worker returns for one task. It never throws. */
export type WorkerOutcome =
  | { ok: true; result: unknown }
  | { ok: false; error: { code: WorkerErrorCode; message: string } };

/**
 * Messages a worker posts on its parentPort while a task runs. They travel on a different
 * channel than the task's return value, so `end` marks the last one: the main thread waits
 * for it before it publishes the terminal event.
 */
export type WorkerMessage =
  | {
      taskId: string;
      kind: 'progress';
      value: number | null;
      text: string | null;
      step: number | null;
      total_steps: number | null;
    }
  | { taskId: string; kind: 'end' };

/** Data the pool gives every worker thread at start. */
export interface WorkerData {
  /** Task type name → module URL whose default export is the task definition. */
  taskModules: Record<string, string>;
}
