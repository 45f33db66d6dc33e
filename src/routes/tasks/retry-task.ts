import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from '../../http/auth.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { createUnavailable, locatedSnapshot, TaskIdParams } from '../responses.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

/** POST /tasks/{task_id}/retry: a failed or cancelled task again, as a new task. */
export function retryTaskRoute({ service, present }: { service: TaskService; present: Present }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{task_id}/retry',
      operationId: 'retryTask',
      summary: 'Start a failed or cancelled task again, as a new task',
      description: 'The new task has the same type, input and options, and `retry_of` naming the old one.',
      request: { params: TaskIdParams },
      responses: {
        201: locatedSnapshot('The new task'),
        404: problem('No such task'),
        409: problem('The task is queued, running or completed'),
        503: createUnavailable,
      },
    }),
    async (c) => {
      const caller = c.get('caller');
      const record = await service.retry(c.req.valid('param').task_id, caller.owner);
      c.header('location', `${c.get('basePath')}/api/tasks/${record.task_id}`);
      return c.json(present(caller, record, c.get('basePath')), 201);
    },
  );
  return app;
}
