import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { TaskStatusSchema } from '../../events.ts';
import type { AuthEnv } from '../../http/auth.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { TaskSnapshotSchema } from '../../task-record.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

const TaskListSchema = z
  .object({
    tasks: z.array(TaskSnapshotSchema),
    next_cursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last'),
  })
  .meta({ id: 'TaskList' });

const LABEL_FILTER = /^[^:]{1,63}:.{0,256}$/;

const ListQuery = z.object({
  status: TaskStatusSchema.optional(),
  type: z.string().max(64).optional(),
  label: z
    .union([z.string().regex(LABEL_FILTER, 'use key:value'), z.array(z.string().regex(LABEL_FILTER, 'use key:value')).max(20)])
    .optional()
    .describe('`key:value`; repeat to require several labels'),
  limit: z.coerce.number().int().min(1).max(1000).default(50).describe('Page size'),
  cursor: z.string().max(200).optional().describe('The `next_cursor` of the previous page'),
});

/**
 * `key:value` filters → { key: value } (the first colon separates). Null when one key is
 * asked for two values: all must match, and no task has both.
 */
function labelFilter(label: string | string[] | undefined): Record<string, string> | null | undefined {
  if (label === undefined) return undefined;
  const filter = new Map<string, string>();
  for (const pair of [label].flat()) {
    const colon = pair.indexOf(':');
    const [key, value] = [pair.slice(0, colon), pair.slice(colon + 1)];
    if (filter.has(key) && filter.get(key) !== value) return null;
    filter.set(key, value);
  }
  return Object.fromEntries(filter);
}

/** GET /tasks: the caller's tasks, newest first, filtered and paged by cursor. */
export function listTasksRoute({ service, present }: { service: TaskService; present: Present }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks',
      operationId: 'listTasks',
      summary: 'List tasks, newest first',
      request: { query: ListQuery },
      responses: {
        200: { description: 'A page of tasks', content: { 'application/json': { schema: TaskListSchema } } },
        400: problem('Bad query parameter'),
      },
    }),
    async (c) => {
      const { label, ...query } = c.req.valid('query');
      const caller = c.get('caller');
      const labels = labelFilter(label);
      // Listed even when no task can match, so that a bad cursor is still refused.
      const { tasks, next_cursor } = await service.list({ ...query, labels: labels ?? undefined, owner: caller.owner });
      if (labels === null) return c.json({ tasks: [], next_cursor: null }, 200);
      return c.json({ tasks: tasks.map((task) => present(caller, task, c.get('basePath'))), next_cursor }, 200);
    },
  );
  return app;
}
