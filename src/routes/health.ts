import type { HttpBindings } from '@hono/node-server';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';

/** Liveness: the process answers HTTP. */
export function healthRoutes() {
  const app = new OpenAPIHono<{ Bindings: HttpBindings }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      operationId: 'health',
      summary: 'Liveness probe',
      responses: {
        200: {
          description: 'The service is up',
          content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } },
        },
      },
    }),
    (c) => c.json({ status: 'ok' as const }, 200),
  );
  return app;
}
