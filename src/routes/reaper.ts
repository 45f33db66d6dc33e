import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AuthEnv } from '../http/auth.ts';
import { problemDoc as problem } from '../http/problem.ts';
import type { TaskService } from '../service.ts';
import { assertAdmin } from './admin.ts';
import { json } from './responses.ts';
import { validationHook } from './validation.ts';

const ReaperStatusSchema = z
  .object({
    retention_ms: z.int().describe('How long an ended task stays readable'),
    interval_ms: z
      .int()
      .describe(
        'How often the store is also swept for expired tasks that another instance ended; 0: no periodic sweep, one timer fires at each task\'s expiry, to the millisecond',
      ),
    last_run_at: z.iso.datetime().nullable(),
    evicted_total: z.int(),
  })
  .meta({ id: 'ReaperStatus' });

export interface ReaperRoutesOptions {
  service: TaskService;
  retentionMs: number;
  adminOwners: readonly string[];
}

/** GET /reaper and POST /reaper/run: retention, and evicting expired tasks now. */
export function reaperRoutes({ service, retentionMs, adminOwners }: ReaperRoutesOptions) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/reaper',
      operationId: 'getReaper',
      summary: 'The reaper: retention, last run and evictions so far',
      responses: { 200: json(ReaperStatusSchema, 'Reaper status') },
    }),
    (c) => {
      const { lastRunAt, evictedTotal, sweepEveryMs } = service.reaperStatus;
      return c.json(
        {
          retention_ms: retentionMs,
          interval_ms: sweepEveryMs,
          last_run_at: lastRunAt === null ? null : new Date(lastRunAt).toISOString(),
          evicted_total: evictedTotal,
        },
        200,
      );
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/reaper/run',
      operationId: 'runReaper',
      summary: 'Evict every ended task whose retention is over, now',
      responses: {
        200: json(z.object({ evicted: z.int() }).meta({ id: 'ReaperRun' }), 'How many were evicted'),
        403: problem('Not an admin owner (with API_KEYS)'),
      },
    }),
    async (c) => {
      assertAdmin(adminOwners, c.get('caller'));
      return c.json({ evicted: await service.reap() }, 200);
    },
  );
  return app;
}
