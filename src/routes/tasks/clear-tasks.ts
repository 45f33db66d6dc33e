import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AuthEnv } from '../../http/auth.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { json } from '../responses.ts';
import { validationHook } from '../validation.ts';

/** DELETE /tasks?status=…: delete every task (of the caller) that ended with a status. */
export function clearTasksRoute({ service }: { service: TaskService }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tasks',
      operationId: 'clearTasks',
      summary: 'Delete every task that ended with a status',
      description: 'Never touches a queued or running task. Their open streams end.',
      request: { query: z.object({ status: z.enum(['completed', 'failed', 'cancelled']) }) },
      responses: {
        200: json(z.object({ deleted: z.int() }).meta({ id: 'Cleared' }), 'How many were deleted'),
        400: problem('Missing or non-terminal status'),
      },
    }),
    async (c) => c.json({ deleted: await service.clear(c.req.valid('query').status, c.get('caller').owner) }, 200),
  );
  return app;
}
