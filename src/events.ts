import { z } from 'zod';

export const TaskStatusSchema = z
  .enum(['queued', 'running', 'completed', 'failed', 'cancelled'])
  .meta({ id: 'TaskStatus' });
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'cancelled']);
export const isTerminal = (status: TaskStatus): boolean => TERMINAL_STATUSES.has(status);

/** Failures worth another attempt; a bad result or bad input would fail the same way again. */
export const RETRYABLE_ERRORS: ReadonlySet<string> = new Set(['task_error', 'timeout', 'worker_crashed', 'worker_lost']);

/**
 * Why a task failed: a task's own failure, never an HTTP error. `worker_lost`: the process
 * running it died (with several instances, another one noticed).
 */
export const TaskErrorCodeSchema = z
  .enum(['task_error', 'invalid_result', 'invalid_input', 'timeout', 'worker_crashed', 'worker_lost'])
  .meta({ id: 'TaskErrorCode' });
export type TaskErrorCode = z.infer<typeof TaskErrorCodeSchema>;

export const TaskErrorSchema = z
  .object({ code: TaskErrorCodeSchema, message: z.string() })
  .meta({ id: 'TaskError' });
export type TaskError = z.infer<typeof TaskErrorSchema>;

export const ProgressSchema = z
  .object({
    value: z.number().min(0).max(1).nullable().describe('Fraction done, 0..1; null when unknown'),
    text: z.string().nullable().describe('A short human-readable note'),
    step: z.int().min(0).nullable().describe('Steps done, when the task counts steps'),
    total_steps: z.int().min(0).nullable().describe('Steps in all, when known'),
    eta_ms: z
      .int()
      .min(0)
      .nullable()
      .describe('Estimated time left, from the observed progress rate; null until it can be estimated'),
  })
  .meta({ id: 'Progress' });
export type Progress = z.infer<typeof ProgressSchema>;

export const CancelReasonSchema = z
  .enum(['requested', 'shutdown'])
  .describe('`requested`: a client cancelled it; `shutdown`: the service stopped');
export type CancelReason = z.infer<typeof CancelReasonSchema>;

/** Each event type and the shape of its `data`. Wire names and code names are the same. */
export const TaskStartedDataSchema = z
  .object({
    attempt: z.int().min(1).describe('1 for the first run, 2 for the first retry, …'),
    max_attempts: z.int().min(1),
    previous_error: TaskErrorSchema.optional().describe('On a retry: why the previous attempt failed'),
  })
  .meta({ id: 'TaskStartedData' });

export const EventDataSchemas = {
  task_started: TaskStartedDataSchema,
  progress_update: ProgressSchema,
  task_completed: z.object({ result: z.unknown().nonoptional() }).meta({ id: 'TaskCompletedData' }),
  task_failed: z.object({ error: TaskErrorSchema }).meta({ id: 'TaskFailedData' }),
  task_cancelled: z.object({ reason: CancelReasonSchema }).meta({ id: 'TaskCancelledData' }),
} as const;

export type EventType = keyof typeof EventDataSchemas;
export type EventData<T extends EventType> = z.infer<(typeof EventDataSchemas)[T]>;

export const TERMINAL_EVENTS: ReadonlySet<EventType> = new Set([
  'task_completed',
  'task_failed',
  'task_cancelled',
]);

export const isTerminalEvent = (event: { event_type: string }): boolean =>
  TERMINAL_EVENTS.has(event.event_type as EventType);

const envelope = <T extends EventType>(type: T) =>
  z
    .object({
      event_type: z.literal(type),
      task_id: z.uuid(),
      seq: z.int().min(1).describe('Per-task sequence, from 1; also the SSE `id:`'),
      timestamp: z.iso.datetime(),
      data: EventDataSchemas[type],
    })
    .meta({ id: `${type.replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase())}Event` });

export const TaskEventSchema = z
  .discriminatedUnion('event_type', [
    envelope('task_started'),
    envelope('progress_update'),
    envelope('task_completed'),
    envelope('task_failed'),
    envelope('task_cancelled'),
  ])
  .meta({ id: 'TaskEvent' });
export type TaskEvent = z.infer<typeof TaskEventSchema>;

/** An event before the broker numbers it. */
export type NewTaskEvent = {
  [T in EventType]: { event_type: T; task_id: string; timestamp: string; data: EventData<T> };
}[EventType];
