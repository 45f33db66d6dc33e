import { z } from 'zod';
import { TaskSnapshotSchema } from '../task-record.ts';

/** The path parameter of every route on one task. */
export const TaskIdParams = z.object({
  task_id: z.string().describe('The task id').meta({ param: { name: 'task_id', in: 'path' } }),
});

/** A JSON response, for a route's `responses`. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** A task snapshot response, for a route's `responses`. */
export const snapshot = (description: string) => json(TaskSnapshotSchema, description);

/** A snapshot of a new task, named in `Location`. */
export const createdSnapshot = (description: string, location: string) => ({
  ...snapshot(description),
  headers: { Location: { schema: { type: 'string' as const }, description: location } },
});
