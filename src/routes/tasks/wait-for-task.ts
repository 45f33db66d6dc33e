import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { errors } from '../../errors.ts';
import type { AuthEnv } from '../../http/auth.ts';
import type { SseHub } from '../../http/sse.ts';
import { problemDoc as problem, retryLaterDoc as retryLater } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import { snapshot, TaskIdParams } from '../responses.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

const MAX_WAIT_MS = 600_000;

/** GET /tasks/{task_id}/wait: long-poll, for clients that cannot hold a stream. */
export function waitForTaskRoute({ service, present, hub }: { service: TaskService; present: Present; hub: SseHub }) {
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
        429: retryLater('MAX_STREAMS or MAX_STREAMS_PER_OWNER streams and long polls are open', ['too_many_streams']),
      },
    }),
    async (c) => {
      const { task_id: taskId } = c.req.valid('param');
      const caller = c.get('caller');
      // A long poll holds a connection as long as a stream: it takes a place among them (429
      // past the limits) until it answers or its client goes away.
      const release = hub.holdLongPoll(caller.owner);
      const outgoing = c.env.outgoing;
      const closed = new AbortController();
      const onClose = () => closed.abort();
      outgoing.once('close', onClose);
      // The client may be gone already, its 'close' past: then there is nobody to wait for.
      if (outgoing.closed || outgoing.destroyed) closed.abort();
      try {
        const record = await service.waitForEnd(taskId, c.req.valid('query').timeout_ms, closed.signal, caller.owner);
        if (!record) throw errors.taskNotFound(taskId);
        return c.json(present(caller, record, c.get('basePath')), 200);
      } finally {
        outgoing.off('close', onClose);
        release();
      }
    },
  );
  return app;
}
