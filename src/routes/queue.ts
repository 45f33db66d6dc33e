import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AuthEnv } from '../http/auth.ts';
import { problemDoc as problem } from '../http/problem.ts';
import type { TaskService } from '../service.ts';
import { assertAdmin } from './admin.ts';
import { json } from './responses.ts';
import { validationHook } from './validation.ts';

const QueueStateSchema = z
  .object({ paused: z.boolean(), size: z.int(), max: z.int() })
  .meta({ id: 'QueueState' });

/** POST /queue/pause and /queue/resume: intake for the whole service (admins only, with keys). */
export function queueRoutes({ service, adminOwners }: { service: TaskService; adminOwners: readonly string[] }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  for (const action of ['pause', 'resume'] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/queue/${action}`,
        operationId: `${action}Queue`,
        summary:
          action === 'pause'
            ? 'Pause intake: new tasks are accepted and queued, but none start; running tasks go on'
            : 'Resume intake: queued tasks start again',
        responses: { 200: json(QueueStateSchema, 'The queue now'), 403: problem('Not an admin owner (with API_KEYS)') },
      }),
      async (c) => {
        assertAdmin(adminOwners, c.get('caller'));
        if (action === 'pause') await service.pause();
        else await service.resume();
        const { paused, queued, maxQueue } = await service.stats();
        return c.json({ paused, size: queued, max: maxQueue }, 200);
      },
    );
  }
  return app;
}
