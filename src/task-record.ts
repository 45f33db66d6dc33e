import { z } from 'zod';
import { ProgressSchema, TaskErrorSchema, TaskStatusSchema } from './events.ts';

const instant = (what: string) => z.iso.datetime().nullable().describe(what);

/** What the service keeps about one task. Field names are the wire names. */
export const TaskRecordSchema = z.object({
  task_id: z.uuid().describe('UUIDv7: ids sort by creation'),
  type: z.string().describe('The task type'),
  status: TaskStatusSchema,
  input: z.unknown().nonoptional().describe('The input, with defaults applied'),
  progress: ProgressSchema,
  result: z.unknown().nonoptional().describe('The result; null until completed'),
  error: TaskErrorSchema.nullable().describe('Why it failed; null unless failed'),
  created_at: z.iso.datetime(),
  started_at: instant('When it started running; null while queued'),
  finished_at: instant('When it ended; null until then'),
  expires_at: instant('When an ended task is evicted; null until it ends'),
  timeout_ms: z.int().describe('Run time limit of each attempt, counted from its start'),
  priority: z.int().describe('Higher starts first; equal priorities in creation order'),
  attempt: z.int().min(0).describe('The current or last attempt; 0 before the first start'),
  max_attempts: z.int().min(1).describe('Attempts allowed for retryable failures'),
  retry_backoff_ms: z.int().min(0).describe('Base delay before a retry; doubles per attempt, with jitter'),
  labels: z.record(z.string(), z.string()).describe('Labels given at creation'),
  retry_of: z.uuid().nullable().describe('The task this one manually retries, if any'),
  owner: z.string().nullable().describe('The owner of the API key that created it; null when authentication is off'),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

/** A task as clients see it. */
export const TaskSnapshotSchema = TaskRecordSchema.extend({
  stream_url: z.string().describe('Path of the task\'s event stream'),
}).meta({ id: 'Task' });
export type TaskSnapshot = z.infer<typeof TaskSnapshotSchema>;

export const toSnapshot = (record: TaskRecord): TaskSnapshot => ({
  ...record,
  stream_url: `/api/tasks/${record.task_id}/events`,
});
