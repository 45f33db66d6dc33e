import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { errors } from '../../errors.ts';
import type { AuthEnv } from '../../http/auth.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { snapshot, TaskIdParams } from '../responses.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

const MAX_WAIT_MS = 600_000;

/** GET /tasks/{task_id}/wait: long-poll, for clients that cannot hold a stream. */
export function waitForTaskRoute({ service, present }: { service: TaskService; present: Present }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{task_id}/wait',
      operationId: 'waitForTask',
      summary: 'Long-poll until the task ends or the timeout passes',
      description: 'For clients that cannot hold a stream. Answers with the snapshot either way: check `status`.',
      request: {
        params: TaskIdParams,
        query: z.object({
          // Only a query string is read as a number: `null` stays refused, and the spec says so.
          timeout_ms: z
            .preprocess((value) => (typeof value === 'string' ? Number(value.trim() === '' ? NaN : value) : value), z.int().min(0).max(MAX_WAIT_MS))
            .default(30_000)
            .describe('How long to wait at most'),
        }),
      },
      responses: {
        200: snapshot('The task, ended or as it is when the timeout passed'),
        400: problem('Bad timeout_ms'),
        404: problem('No such task, or it was deleted while waiting'),
      },
    }),
    async (c) => {
      const { task_id: taskId } = c.req.valid('param');
      const closed = new AbortController();
      c.env.outgoing.once('close', () => closed.abort());
      const caller = c.get('caller');
      const record = await service.waitForEnd(taskId, c.req.valid('query').timeout_ms, closed.signal, caller.owner);
      if (!record) throw errors.taskNotFound(taskId);
      return c.json(present(caller, record, c.get('basePath')), 200);
    },
  );
  return app;
}
