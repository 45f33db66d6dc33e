import type { HttpBindings } from '@hono/node-server';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { errors } from '../errors.ts';
import { retryLaterDoc } from '../http/problem.ts';

export interface HealthRoutesOptions {
  /** Ready to take tasks: the pool is up and the service is not draining. */
  isReady: () => boolean;
  /** The backends answer (Redis mode: Redis does); the service cannot work while they do not. */
  backendReachable?: () => boolean;
  metrics: Registry;
}

const status = (value: string) => ({
  'application/json': { schema: z.object({ status: z.literal(value) }) },
});

/** Probes for load balancers and orchestrators, and Prometheus metrics. */
export function healthRoutes({ isReady, backendReachable = () => true, metrics }: HealthRoutesOptions) {
  const app = new OpenAPIHono<{ Bindings: HttpBindings }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      operationId: 'health',
      summary: 'Liveness probe: the process answers',
      responses: { 200: { description: 'Alive', content: status('ok') } },
    }),
    (c) => c.json({ status: 'ok' as const }, 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/readyz',
      operationId: 'ready',
      summary: 'Readiness probe: the pool is up, the backends answer and the service is not shutting down',
      responses: {
        200: { description: 'Ready', content: status('ready') },
        503: retryLaterDoc('Shutting down, or (Redis mode) Redis does not answer', ['shutting_down', 'backend_unavailable']),
      },
    }),
    (c) => {
      if (!isReady()) throw errors.shuttingDown();
      if (!backendReachable()) throw errors.backendUnavailable();
      return c.json({ status: 'ready' as const }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics (text exposition format)',
      responses: { 200: { description: 'Metrics', content: { 'text/plain': { schema: z.string() } } } },
    }),
    async (c) => c.text(await metrics.metrics(), 200, { 'content-type': metrics.contentType }),
  );
  return app;
}
