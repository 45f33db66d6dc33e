import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from '../../http/auth.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { snapshot, TaskIdParams } from '../responses.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

/** GET and DELETE /tasks/{task_id}: read a task, delete an ended one. */
export function taskRoute({ service, present }: { service: TaskService; present: Present }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{task_id}',
      operationId: 'getTask',
      summary: 'Read a task',
      request: { params: TaskIdParams },
      responses: { 200: snapshot('The task'), 404: problem('No such task (or evicted)') },
    }),
    async (c) => {
      const caller = c.get('caller');
      return c.json(present(caller, await service.get(c.req.valid('param').task_id, caller.owner), c.get('basePath')), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tasks/{task_id}',
      operationId: 'deleteTask',
      summary: 'Delete an ended task',
      request: { params: TaskIdParams },
      responses: {
        204: { description: 'Deleted; its open streams end' },
        404: problem('No such task'),
        409: problem('The task is still queued or running: cancel it first'),
      },
    }),
    async (c) => {
      await service.remove(c.req.valid('param').task_id, c.get('caller').owner);
      return c.body(null, 204);
    },
  );
  return app;
}
