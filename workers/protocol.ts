// Message shapes shared by the main thread and worker threads. Errors cross the thread
// boundary as plain data: class names and custom fields do not survive structured clone.

/** What the executor hands a worker for one task. */
export interface WorkerJob {
  taskId: string;
  /**
   * Numbers this hand-off, unique in the pool. Every message about the job carries it: a
   * thread terminated under one attempt may still deliver messages after the next attempt
   * of the same task has started, and those must not count as the new attempt's.
   */
  run: number;
  type: string;
  input: unknown;
  /** The job's slot in the pool's shared state array (WorkerData.slots): see SlotState. */
  slot: number;
}

/**
 * States of a job's slot. The pool allocates one shared Int32Array of slots once, and a
 * job borrows a slot from the moment it is handed to Piscina until its outcome is back:
 * no shared memory is allocated per task. Each transition is a compare-and-swap, so the
 * worker starting a job and the main thread recalling or cancelling it never both win.
 */
export const SlotState = {
  /** Handed to a thread, not started: the thread may still be busy with the previous job. */
  handed: 0,
  /** The worker started it (handed → running). */
  running: 1,
  /** Cancel or timeout asked for (from handed or running). */
  cancelRequested: 2,
  /** The job is over (running → finished), to release the worker's own waiter. */
  finished: 3,
  /** Taken back before it started (handed → recalled): the main thread queues it again. */
  recalled: 4,
  /**
   * Handed to an idle thread, its start already announced by the main thread: the worker
   * starts it (announced → running) without a `started` message. A stop before that
   * (announced → cancelRequested) means the worker skips it.
   */
  announced: 5,
} as const;

export type WorkerErrorCode = 'task_error' | 'invalid_result' | 'invalid_input' | 'cancelled';

/**
 * What a worker returns for one job. It never throws. `messages` counts what the worker
 * posted on its parentPort for this job (`started` and every `progress`): those travel on
 * another channel than this return value and may arrive after it, so the main thread
 * publishes the end only once it has received that many.
 */
export type WorkerOutcome =
  | { ok: true; result: unknown; messages: number }
  | { ok: false; error: { code: WorkerErrorCode; message: string }; messages: number }
  /** Never started: recalled, or cancelled while handed. */
  | { ok: false; notStarted: true; messages: 0 };

/** Messages a worker posts on its parentPort while a job runs. */
export type WorkerMessage =
  | { taskId: string; run: number; kind: 'started' }
  | {
      taskId: string;
      run: number;
      kind: 'progress';
      value: number | null;
      text: string | null;
      step: number | null;
      total_steps: number | null;
    };

/** Data the pool gives every worker thread at start. */
export interface WorkerData {
  /** Task type name → module URL whose default export is the task definition. */
  taskModules: Record<string, string>;
  /** Job slots, shared by every thread of the pool (over a SharedArrayBuffer). */
  slots: Int32Array;
}
