import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { TaskStatusSchema } from '../../events.ts';
import type { AuthEnv } from '../../http/auth.ts';
import type { SseHub } from '../../http/sse.ts';
import type { TaskService } from '../../service.ts';
import { json } from '../responses.ts';
import { validationHook } from '../validation.ts';

const StatsSchema = z
  .object({
    tasks: z.object(Object.fromEntries(TaskStatusSchema.options.map((status) => [status, z.int()])) as Record<
      z.infer<typeof TaskStatusSchema>,
      z.ZodInt
    >),
    workers: z.object({ max: z.int(), busy: z.int() }),
    queue: z.object({ size: z.int(), max: z.int() }),
    streams: z.int().describe('Open SSE streams'),
    paused: z.boolean().describe('Whether intake is paused (tasks are accepted but none start)'),
  })
  .meta({ id: 'Stats' });

/** GET /tasks/stats: the caller's tasks per status, and the workers, queue and streams. */
export function taskStatsRoute({ service, hub }: { service: TaskService; hub: SseHub }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/stats',
      operationId: 'getStats',
      summary: 'Counts per status, workers, queue, streams and intake',
      responses: { 200: json(StatsSchema, 'Current figures') },
    }),
    async (c) => {
      const { owner } = c.get('caller');
      const [stats, tasks] = await Promise.all([service.stats(), service.taskCounts(owner)]);
      return c.json(
        {
          tasks,
          workers: { max: stats.maxWorkers, busy: stats.running },
          queue: { size: stats.queued, max: stats.maxQueue },
          streams: hub.streamsOf(owner),
          paused: stats.paused,
        },
        200,
      );
    },
  );
  return app;
}
