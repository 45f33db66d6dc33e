import { z } from 'zod';
import { retryLaterDoc } from '../http/problem.ts';
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

/** A task snapshot whose URL is named in `Location` (a new task, or the replay of a create). */
export const locatedSnapshot = (description: string) => ({
  ...snapshot(description),
  headers: { Location: { $ref: '#/components/headers/Location' } },
});

/** Why a create (or a retry, which creates) is refused for now: each with Retry-After. */
export const createUnavailable = retryLaterDoc(
  '`queue_full`: MAX_QUEUE tasks are already waiting; `too_many_tasks`: MAX_RETAINED_TASKS tasks are kept, or the task does not fit in MAX_RETAINED_BYTES, and none of those kept has ended; `shutting_down`: the service is stopping. Nothing was created.',
  ['queue_full', 'too_many_tasks', 'shutting_down'],
);
