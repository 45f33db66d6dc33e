import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from '../../http/auth.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { snapshot, TaskIdParams } from '../responses.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

/** POST /tasks/{task_id}/cancel */
export function cancelTaskRoute({ service, present }: { service: TaskService; present: Present }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{task_id}/cancel',
      operationId: 'cancelTask',
      summary: 'Cancel a task',
      description:
        'A queued task ends at once. A running task sees its signal abort; if it has not stopped after the grace period its thread is terminated. Either way the stream ends with one `task_cancelled`.',
      request: { params: TaskIdParams },
      responses: {
        202: snapshot('Cancellation accepted; the snapshot as of now'),
        404: problem('No such task'),
        409: problem('The task has already ended'),
      },
    }),
    async (c) => {
      const caller = c.get('caller');
      return c.json(present(caller, await service.cancel(c.req.valid('param').task_id, caller.owner), c.get('basePath')), 202);
    },
  );
  return app;
}
